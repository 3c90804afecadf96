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
