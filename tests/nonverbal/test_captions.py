"""Whisper's captions as a second opinion on non-verbal sounds: the caption parser, the span
widening, and the embedded Whisper base (real weights) captioning a real laugh and not real speech."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from duplexcorpus.nonverbal.captions import WhisperCaptions, caption_type, grow_span
from duplexcorpus.nonverbal.detect import tag_nonverbal_ipus
from duplexcorpus.records import Event, Segment, Word
from tests.conftest import realdata


@pytest.mark.parametrize("text, kind", [
    ("[laughter]", "laughter"), ("(laughing)", "laughter"), ("(笑)", "laughter"), ("[LAUGHS]", "laughter"),
    ("哈哈", "laughter"), ("Ha ha ha.", "laughter"), ("Ha-ha!", "laughter"), ("Hehehe", "laughter"),
    ("*coughs*", "cough"), ("(咳嗽)", "cough"), ("[sighs]", "sigh"), ("(breathing heavily)", "breath"),
    ("[Music]", None), ("(音)", None), ("( 無法 寫 寫", None), ("Right.", None), ("Mm-hmm.", None),
    ("Ha.", None), ("Right. [laughter]", None), ("", None), ("Okay, that makes sense", None),
])
def test_a_caption_names_its_sound_and_words_are_speech(text, kind):
    assert caption_type(text) == kind


def test_a_captioned_span_grows_over_its_own_sound_up_to_the_neighbours():
    sound = np.zeros(100, bool)
    sound[10:30] = sound[33:40] = sound[60:70] = True  # a 3-frame gap, then a 20-frame gap
    assert grow_span(20, 25, sound, 0, 100, bridge=5) == (10, 40)
    assert grow_span(20, 25, sound, 0, 100, bridge=3) == (10, 30)  # gaps of `bridge` frames end it
    assert grow_span(20, 25, sound, 15, 36, bridge=5) == (15, 36)  # never into the neighbouring IPUs
    assert grow_span(50, 55, sound, 0, 100, bridge=5) == (50, 55)  # nothing sounding next to it


@pytest.fixture(scope="module")
def captioner():
    return WhisperCaptions("embedded:whisper-base", threads=2)


def _read16k(path) -> np.ndarray:
    audio, sr = sf.read(path, always_2d=True, dtype="float32")
    return soxr.resample(audio.mean(axis=1), sr, 16000).astype(np.float32)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_whisper_captions_a_real_laugh_and_not_real_speech(captioner, language):
    laugh = _read16k(realdata("laughter_isolated_whisper_timestamped", "laugh1.mp3"))
    speech = _read16k(realdata("en_read_librispeech_1995-1837-0001", "1995-1837-0001.wav")
                      if language == "en" else realdata("zh_read_aishell1_BAC009S0724W0121", "BAC009S0724W0121.wav"))
    noise = np.random.default_rng(0).standard_normal(len(laugh)).astype(np.float32) * 0.003
    got = captioner.captions([laugh, laugh * 0.3 + noise, speech], language)
    assert [caption_type(c.text) for c in got] == ["laughter", "laughter", None], [c.text for c in got]
    assert all(0 < c.confidence <= 1 for c in got)


def test_a_captioned_laugh_outweighs_the_listener_token_asr_wrote_for_it():
    seg = Segment("r", 1, "B", 2.0, 2.8, 0.9, attributes={"text": "Right."})
    words = [Word(1, "Right.", 2.1, 2.6, 0.4, "en", speaker_id="B", segment_start=2.0)]
    yamnet = Event("r", "laughter", 1, 2.0, 2.8, 0.6, "yamnet", {}, "B")
    caption = Event("r", "laughter", 1, 2.0, 3.4, 0.5, "whisper_caption", {"caption": "(laughs)"}, "B")
    assert "nonverbal" not in tag_nonverbal_ipus([seg], [yamnet], words, 0.8)[0].attributes  # words win
    assert tag_nonverbal_ipus([seg], [caption], words, 0.8)[0].attributes["nonverbal"] == "laughter"


def test_whisper_s_own_silence_rule_drops_an_unsure_caption_of_a_likely_silence():
    from duplexcorpus.nonverbal.captions import Caption

    assert Caption("(laughs)", -1.3, 0.7).silent()  # both: Whisper's transcribe would skip the window
    assert not Caption("(laughs)", -1.3, 0.4).silent()  # unsure, but speech-like sound is there
    assert not Caption("(laughs)", -0.8, 0.9).silent()  # sure of the caption
    assert Caption("(laughs)", -0.8, 0.0).confidence == pytest.approx(np.exp(-0.8), abs=1e-4)
