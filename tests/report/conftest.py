"""A small synthetic run folder for the report tests (bench/bench_report.py's generator: real
turn-taking rules on drawn IPUs, tables through the contract, a real FLAC per recording), with
WebDataset shards written by webdataset's own TarWriter so the dataset card can be loaded."""
from __future__ import annotations

import importlib.util
import io
import json

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import ROOT


def _bench():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "bench_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_shards(out) -> dict:
    """One sample per recording in {split}-000000.tar, as the shards stage names them, and index.json."""
    import pandas as pd
    import webdataset as wds

    recs = pd.read_parquet(out / "tables" / "recordings.parquet")
    index: dict = {}
    writers = {}
    for rid, split in zip(recs.recording_id, recs.split):
        name = f"{split}-000000.tar"
        if name not in writers:
            writers[name] = wds.TarWriter(str(out / "shards" / name))
            index[name] = {"split": split, "samples": []}
        buf = io.BytesIO()
        sf.write(buf, np.zeros((2400, 2), dtype="float32"), 24000, format="FLAC")
        key = f"{rid}_w0000"
        writers[name].write({"__key__": key, "flac": buf.getvalue(),
                             "json": json.dumps({"recording_id": rid, "words": [{"word": "yeah"}]}).encode(),
                             "labels.npy": np.zeros((2, 5, 3), dtype=np.uint8), "text.npy": np.zeros((2, 3), dtype=np.int32)})
        index[name]["samples"].append({"key": key, "duration": 0.1})
    for w in writers.values():
        w.close()
    (out / "shards" / "index.json").write_text(json.dumps(index))
    return index


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory):
    out = _bench().synthesize(tmp_path_factory.mktemp("synthetic") / "corpus", recordings=10, minutes=1.5,
                              seed=3, audio_seconds=3.0)
    write_shards(out)
    return out
