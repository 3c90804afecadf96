"""rebuild(OUT): tables, samples and shards again from a finished run's cache alone."""
from __future__ import annotations

import filecmp
import shutil

import pandas as pd

from duplexcorpus.runfolder import RunFolder
from duplexcorpus.runner import rebuild
from duplexcorpus.stages.tracks import TracksStage


def test_rebuild_from_the_cache_gives_the_same_corpus_without_the_input(sample_run, tmp_path):
    copy = tmp_path / "moved"
    shutil.copytree(sample_run.out, copy, symlinks=True)
    shutil.rmtree(copy / "shards")
    shutil.rmtree(copy / "tables")
    (copy / "tables").mkdir()
    shutil.copy(sample_run.out / "tables" / "quarantine.parquet", copy / "tables")  # what discovery found
    spec = RunFolder(copy).spec
    spec["input"] = str(tmp_path / "gone")  # the input folder is not needed
    (copy / "run.json").write_text(__import__("json").dumps(spec))
    result = rebuild(copy)
    assert result.recordings == sample_run.recordings and result.quarantined == sample_run.quarantined
    for table in ("recordings", "segments", "words", "events", "quarantine"):
        pd.testing.assert_frame_equal(pd.read_parquet(sample_run.out / "tables" / f"{table}.parquet"),
                                      pd.read_parquet(copy / "tables" / f"{table}.parquet"))
    for tar in sorted((sample_run.out / "shards").glob("*.tar")):
        assert filecmp.cmp(tar, copy / "shards" / tar.name, shallow=False), tar.name
    run = RunFolder(copy)
    rid = run.frame("recordings").recording_id.iloc[0]
    assert run.path(rid, TracksStage.AUDIO).is_relative_to(copy)  # a moved folder reads its own cache
    assert set(run.speakers(rid).values()) <= set(run.frame("segments").speaker_id)
