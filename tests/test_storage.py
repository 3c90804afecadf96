"""outputs.json names each recording's stage folders relative to OUT, so a run folder can be moved
or copied; runs written with absolute paths are still found under the moved OUT."""
from __future__ import annotations

import json
import shutil

from duplexcorpus.storage import stage_outputs, write_stage_outputs


def test_stage_outputs_follow_a_moved_run_folder(tmp_path):
    out = tmp_path / "a" / "out"
    folder = out / "cache" / "tracks" / "rec1" / "0123abcd"
    folder.mkdir(parents=True)
    (folder / "audio.flac").write_bytes(b"x")
    write_stage_outputs(out, {"rec1": {"tracks": str(folder)}})
    assert json.loads((out / "outputs.json").read_text()) == {"rec1": {"tracks": "cache/tracks/rec1/0123abcd"}}

    moved = tmp_path / "b" / "out"
    shutil.move(str(out), str(moved))
    assert stage_outputs(moved)["rec1"]["tracks"] == moved / "cache" / "tracks" / "rec1" / "0123abcd"
    assert (stage_outputs(moved)["rec1"]["tracks"] / "audio.flac").exists()

    # a run written before the paths were relative: absolute, pointing where OUT used to be
    (moved / "outputs.json").write_text(json.dumps({"rec1": {"tracks": str(folder)}}))
    assert stage_outputs(moved)["rec1"]["tracks"] == moved / "cache" / "tracks" / "rec1" / "0123abcd"


def test_outputs_get_the_mode_a_plain_write_would(tmp_path):
    """Temp files are 0600 and temp dirs 0700; renamed into place they must follow the umask so a
    team can share a corpus. Checked in a child process with a group-friendly umask."""
    import stat
    import subprocess
    import sys

    code = f"""
import os; os.umask(0o002)
from pathlib import Path
import pyarrow as pa
from duplexcorpus import contract
from duplexcorpus.storage import StageCache, atomic_path, write_json
out = Path({str(tmp_path)!r})
write_json(out / "stats.json", {{"a": 1}})
with atomic_path(out / "shards" / "train-000000.tar") as tmp:
    tmp.write_bytes(b"tar")
cache = StageCache(out / "cache")
t = cache.begin("tracks", "rec", "k")
(t / "audio.flac").write_bytes(b"x")
cache.commit(t, "tracks", "rec", "k", {{}})
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "stats.json") == 0o664
    assert mode(tmp_path / "shards" / "train-000000.tar") == 0o664
    assert mode(tmp_path / "cache" / "tracks" / "rec" / "k") == 0o775
    assert mode(tmp_path / "cache" / "tracks" / "rec" / "k" / "audio.flac") == 0o664
