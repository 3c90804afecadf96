"""One reader for a finished run folder (OUT): what review, exports, evaluation and `rebuild` read.

    run = RunFolder(out)
    run.workflow                           # the workflow the run used (run.json)
    run.frame("segments")                  # a table, checked against the contract, as pandas
    run.path("rec1", TracksStage.AUDIO)    # a stage output of one recording, by the stage's constant
    run.speakers("rec1")                   # channel -> speaker id

Nothing outside this module and the runner names a file under OUT: a renamed table or stage output
is one edit, and a corpus copied or moved elsewhere is still read correctly (outputs.json is
relative to OUT).
"""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from duplexcorpus import contract
from duplexcorpus.config import Workflow, workflow_from_dict
from duplexcorpus.stages.base import Output, WorkItem
from duplexcorpus.stages.ingest import IngestStage
from duplexcorpus.storage import stage_outputs

RUN_SPEC = "run.json"  # input, metadata and the workflow of the run
TABLES_DIR = "tables"


class RunFolder:
    def __init__(self, out: str | Path):
        self.out = Path(out)

    # -- what the run was -----------------------------------------------------------------------
    @cached_property
    def spec(self) -> dict[str, Any]:
        return json.loads((self.out / RUN_SPEC).read_text())

    @cached_property
    def workflow(self) -> Workflow:
        return workflow_from_dict(self.spec["workflow"])

    # -- tables ---------------------------------------------------------------------------------
    def table_path(self, name: str) -> Path:
        return self.out / TABLES_DIR / f"{name}.parquet"

    def table(self, name: str) -> pa.Table:
        return contract.read_table(self.table_path(name), name)

    def frame(self, name: str) -> pd.DataFrame:
        return self.table(name).to_pandas()

    def speakers(self, recording_id: str) -> dict[int, str]:
        """channel -> speaker id of one recording (the channel map in recordings.parquet)."""
        recs = self.frame("recordings").set_index("recording_id")
        return {int(c["channel"]): c["speaker_id"] for c in recs.loc[recording_id, "channels"]}

    # -- stage outputs --------------------------------------------------------------------------
    @cached_property
    def stage_dirs(self) -> dict[str, dict[str, Path]]:
        return stage_outputs(self.out)

    def path(self, recording_id: str, output: Output) -> Path:
        return self.stage_dirs[recording_id][output.stage] / output.file

    def read(self, recording_id: str, output: Output) -> Any:
        return output.read(self.path(recording_id, output))

    def items(self) -> list[WorkItem]:
        """The accepted recordings as the runner last left them (outputs, cache keys, ingest record),
        so later steps (re-sharding after review) reuse the cache without the input folder."""
        items = []
        for rid, stages in sorted(self.stage_dirs.items()):
            item = WorkItem(input={"recording_id": rid, "paths": []},
                            outputs={s: str(p) for s, p in stages.items()},
                            keys={s: p.name for s, p in stages.items()})
            item.recording = IngestStage.RECORDING.read(stages["ingest"] / IngestStage.RECORDING.file)
            item.input = {"recording_id": rid, "paths": list(item.recording["source_paths"])}
            items.append(item)
        return items
