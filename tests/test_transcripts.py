"""Given transcripts in STM, TextGrid, JSON and CSV map onto a recording's channels."""
import json

import pytest

from duplexcorpus.records import ChannelInfo, Recording
from duplexcorpus.transcripts import TranscriptError, find_transcript, read_transcript
from tests.conftest import realdata


def _rec(channels=2, rid="call1", duration=30.0):
    chans = tuple(ChannelInfo(c, f"spk{c}", f"/x/{rid}.wav", c) for c in range(channels))
    return Recording(rid, (f"/x/{rid}.wav",), ("0",), "0", "wav", 16000, channels, duration, chans,
                     "en", None, None, None)


def test_stm_channels_are_one_based(tmp_path):
    p = tmp_path / "call1.stm"
    p.write_text(";; comment\ncall1 1 A 0.5 2.0 <o,f0,male> hello there\ncall1 2 B 2.5 3.0 yeah\n")
    utts = read_transcript(p, _rec())
    assert [(u.channel, u.start, u.end, u.text) for u in utts] == [(0, 0.5, 2.0, "hello there"), (1, 2.5, 3.0, "yeah")]


def test_real_pyannote_stm_on_a_mono_call():
    stm = realdata("en_tel_pyannote_sample", "sample.stm")
    utts = read_transcript(stm, _rec(1, "sample", 30.0))
    assert len(utts) == 13 and all(u.channel == 0 for u in utts)
    assert "diane" in " ".join(u.text for u in utts).lower()


def test_textgrid_tiers_name_speakers(tmp_path):
    from praatio import textgrid

    tg = textgrid.Textgrid()
    tg.addTier(textgrid.IntervalTier("spk1", [(1.0, 2.0, "mm hmm"), (4.0, 5.5, "sure thing")], 0, 30))
    tg.addTier(textgrid.IntervalTier("ch0", [(0.2, 3.0, "so what do you think")], 0, 30))
    path = tmp_path / "call1.TextGrid"
    tg.save(str(path), format="long_textgrid", includeBlankSpaces=False)
    utts = read_transcript(path, _rec())
    assert [(u.channel, u.text) for u in utts] == [(0, "so what do you think"), (1, "mm hmm"), (1, "sure thing")]


def test_json_and_csv(tmp_path):
    j = tmp_path / "t.json"
    j.write_text(json.dumps({"utterances": [{"speaker": "spk1", "start": 1, "end": 2, "text": "对"}]}, ensure_ascii=False))
    assert [(u.channel, u.text) for u in read_transcript(j, _rec())] == [(1, "对")]
    c = tmp_path / "t.csv"
    c.write_text("recording_id,channel,start,end,text\ncall1,0,0.5,1.5,hi\nother,1,0,1,not mine\n")
    assert [(u.channel, u.text) for u in read_transcript(c, _rec())] == [(0, "hi")]


@pytest.mark.parametrize("content,message", [
    ("call1 3 C 0.5 2.0 hello", "outside"),
    ("call1 1 A 2.0 1.0 backwards", "not after"),
    ("call1 1 A 99.0 100.0 late", "after the recording"),
    ("call1 1 A", "needs"),
])
def test_bad_stm_lines_are_specific_errors(tmp_path, content, message):
    p = tmp_path / "call1.stm"
    p.write_text(content + "\n")
    with pytest.raises(TranscriptError, match=message):
        read_transcript(p, _rec())


def test_sidecar_transcript_is_found_beside_the_audio(tmp_path):
    (tmp_path / "call1.stm").write_text("call1 1 A 0 1 hi\n")
    rec = _rec()
    rec = Recording(**{**rec.__dict__, "source_paths": (str(tmp_path / "call1.wav"),)})
    assert find_transcript(rec, None) == tmp_path / "call1.stm"
