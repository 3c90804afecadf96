"""A run killed with SIGKILL and re-run ends with the same tables and shards as an uninterrupted run."""
import filecmp
import os
import signal
import subprocess
import sys
import time

import pandas as pd

from tests.conftest import ROOT, SAMPLES


def _cli(out, **kw):
    cmd = [sys.executable, "-m", "duplexcorpus.cli", "run", str(SAMPLES / "audio"), "--out", str(out),
           "--workflow", str(ROOT / "workflows" / "samples.yaml"), "--quiet"]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, **kw)


def test_sigkill_then_resume_matches_uninterrupted_run(sample_run, tmp_path):
    out = tmp_path / "killed"
    proc = _cli(out)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once some (not all) VAD outputs are committed
        if any((out / "cache" / "vad").glob("*/*/_SUCCESS")):
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "shards").exists() or not list((out / "shards").glob("*.tar")), "killed before the end"
    resumed = _cli(out)
    output = resumed.communicate(timeout=600)[0].decode()
    assert resumed.returncode == 0, output
    for table in ("recordings", "segments", "words", "events", "quarantine"):
        a = pd.read_parquet(sample_run.out / "tables" / f"{table}.parquet")
        b = pd.read_parquet(out / "tables" / f"{table}.parquet")
        if table == "quarantine":
            a, b = a.drop(columns="input"), b.drop(columns="input")
        pd.testing.assert_frame_equal(a.drop(columns=[c for c in ("source_paths", "channels") if c in a]),
                                      b.drop(columns=[c for c in ("source_paths", "channels") if c in b]))
    shards = sorted(p.name for p in (sample_run.out / "shards").glob("*.tar"))
    assert shards == sorted(p.name for p in (out / "shards").glob("*.tar"))
    for name in shards:
        assert filecmp.cmp(sample_run.out / "shards" / name, out / "shards" / name, shallow=False), name
    # no duplicates: one committed output per (stage, accepted recording), none for quarantined
    # ones, and no partial output of the killed run left behind
    accepted = set(pd.read_parquet(out / "tables" / "recordings.parquet").recording_id)
    for stage_dir in (out / "cache").iterdir():
        for rec_dir in stage_dir.iterdir():
            committed = [d for d in rec_dir.iterdir() if (d / "_SUCCESS").exists()]
            assert len(committed) == (1 if rec_dir.name in accepted else 0), rec_dir
            assert not [d for d in rec_dir.iterdir() if d.name.startswith(".")], rec_dir
