"""Discovery, manifest and metadata problems: each becomes a quarantine row with a specific code and
a message naming the file or line; nothing is dropped silently and nothing crashes the run."""
import os

import numpy as np
import pytest
import soundfile as sf

from duplexcorpus.config import Workflow
from duplexcorpus.inputs import InputError, discover

SR = 16000


def _audio(path, seconds=1.0, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal((int(seconds * SR), channels))).astype(np.float32), SR)


def _find(folder_or_manifest, **kw):
    return discover(folder_or_manifest, Workflow().input, **kw)


def _problem(found, code):
    hits = [p for p in found.problems if p[1] == code]
    assert len(hits) == 1, found.problems
    return hits[0]


def test_symlink_loop_is_listed_not_skipped(tmp_path):
    _audio(tmp_path / "good.flac")
    os.symlink("loop.wav", tmp_path / "loop.wav")
    found = _find(tmp_path)
    inp, code, reason = _problem(found, "symlink_loop")
    assert inp.endswith("loop.wav") and "loop.wav: symbolic link loop" in reason
    assert [i.recording_id for i in found.inputs] == ["good"]


def test_dangling_symlink_is_broken_link(tmp_path):
    os.symlink("nowhere.flac", tmp_path / "call.flac")
    _, _, reason = _problem(_find(tmp_path), "broken_link")
    assert "call.flac: symbolic link to 'nowhere.flac', which does not exist" in reason


def test_named_pipe_with_an_audio_name_is_not_a_file(tmp_path):
    os.mkfifo(tmp_path / "live.wav")
    _, _, reason = _problem(_find(tmp_path), "not_a_file")
    assert "live.wav: not a regular file (a named pipe)" in reason


def test_non_utf8_file_name_is_quarantined_with_a_printable_name(tmp_path):
    _audio(tmp_path / "tmp.flac")
    os.rename(os.fsencode(tmp_path / "tmp.flac"), os.fsencode(tmp_path) + b"/caf\xe9.flac")
    found = _find(tmp_path)
    inp, _, reason = _problem(found, "non_utf8_name")
    assert inp.endswith("caf\\xe9.flac") and "caf\\xe9.flac: the file name is not valid UTF-8" in reason
    inp.encode("utf-8"), reason.encode("utf-8")  # storable in the tables
    assert found.inputs == []


def test_manifest_naming_missing_files_names_the_line(tmp_path):
    _audio(tmp_path / "a.flac")
    (tmp_path / "m.csv").write_text("path,recording_id\na.flac,a\nmissing.flac,b\n")
    found = _find(tmp_path / "m.csv")
    inp, _, reason = _problem(found, "missing_file")
    assert inp.endswith("missing.flac") and "line 3 names" in reason and "missing.flac: file does not exist" in reason
    assert [i.recording_id for i in found.inputs] == ["a"]


def test_manifest_missing_channel_file_quarantines_its_recording(tmp_path):
    _audio(tmp_path / "a0.flac", channels=1)
    (tmp_path / "m.csv").write_text("path,recording_id,channel\na0.flac,call,0\na1.flac,call,1\n")
    found = _find(tmp_path / "m.csv")
    inp, _, reason = _problem(found, "missing_file")
    assert "a0.flac" in inp and "a1.flac" in inp and "line 3" in reason and found.inputs == []


def test_manifest_malformed_line_is_named(tmp_path):
    _audio(tmp_path / "a.flac")
    _audio(tmp_path / "b.flac")
    (tmp_path / "m.csv").write_text("path,recording_id,channel\na.flac,a,0\nb.flac,b,zero\nc.flac,c,0,extra\n")
    found = _find(tmp_path / "m.csv")
    problems = {p[0].rsplit("/", 1)[-1]: p for p in found.problems}
    assert problems["m.csv:4"][1] == "metadata" and "line 4: 4 fields, the header has 3" in problems["m.csv:4"][2]
    assert problems["b.flac"][1] == "metadata" and "line 3: channel 'zero' is not a channel number" in problems["b.flac"][2]
    assert [i.recording_id for i in found.inputs] == ["a"]


def _folder_with_metadata(tmp_path, text: bytes | str):
    for rid in ("a", "b"):
        _audio(tmp_path / f"{rid}.flac", seed=ord(rid))
    path = tmp_path / "metadata.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return tmp_path


HEADER = "recording_id,channel,speaker_id\n"


@pytest.mark.parametrize("body, line, words", [
    ("a,0,alice\nb,0,bob,extra\n", 3, "4 fields, the header has 3"),
    ("a,0,alice\nb,left,bob\n", 3, "channel 'left' is not a channel number"),
    ("a,0,alice\nb,0,bob\nb,0,carol\n", 4, "recording 'b' channel 0 is already described on line 3"),
    (b"a,0,alice\nb,0,b\xf6b\n", 3, "byte 0xf6 is not UTF-8"),
], ids=["ragged_row", "bad_channel", "duplicate_row", "not_utf8"])
def test_malformed_metadata_line_quarantines_that_recording_and_names_the_line(tmp_path, body, line, words):
    folder = _folder_with_metadata(tmp_path, HEADER.encode() + (body if isinstance(body, bytes) else body.encode()))
    found = _find(folder)
    inp, _, reason = _problem(found, "metadata")
    assert inp.endswith("b.flac") and f"metadata.csv line {line}: " in reason and words in reason
    (good,) = found.inputs
    assert good.recording_id == "a" and good.speakers[0]["speaker_id"] == "alice"


def test_malformed_metadata_line_naming_no_recording_is_listed(tmp_path):
    folder = _folder_with_metadata(tmp_path, HEADER + ",0,nobody\n")
    inp, _, reason = _problem(_find(folder), "metadata")
    assert inp.endswith("metadata.csv:2") and "line 2: recording_id is empty" in reason


def test_metadata_without_a_recording_id_column_stops_with_line_1(tmp_path):
    folder = _folder_with_metadata(tmp_path, "id,channel\na,0\n")
    with pytest.raises(InputError, match=r"metadata.csv line 1: metadata needs a 'recording_id' column"):
        _find(folder)


def test_metadata_row_for_a_file_that_is_not_there_is_listed(tmp_path):
    folder = _folder_with_metadata(tmp_path, HEADER + "a,0,alice\nb,0,bob\nghost,1,casper\n")
    found = _find(folder)
    inp, _, reason = _problem(found, "metadata_without_audio")
    assert inp.endswith("metadata.csv:4") and "line 4 describes recording 'ghost' channel 1" in reason
    assert [i.recording_id for i in found.inputs] == ["a", "b"]


def test_good_samples_discover_without_problems():
    from tests.conftest import SAMPLES

    found = _find(SAMPLES / "audio")
    assert found.problems == [] and len(found.inputs) == 15
