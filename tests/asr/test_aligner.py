"""The text aligner: given text + spans of a channel -> Word records in recording time. With a fake
engine (fast: the plumbing from clip to recording time), and with Whisper base against the exact
espeak word truth (slow)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from duplexcorpus.asr.aligner import TextAligner, TextToAlign
from duplexcorpus.asr.engine import Decoded, WordTiming
from duplexcorpus.config import AsrConfig, load_workflow
from tests.conftest import ROOT, SAMPLES


class FakeEngine:
    """Places every word of the text evenly over the clip's first IPU (clip time), as cross-attention
    would; records what it was asked."""

    device = "cpu"

    def __init__(self, first_ipu: tuple[float, float]):
        self.first_ipu = first_ipu
        self.calls: list = []

    def run(self, clips):
        self.calls.append(clips)
        out = []
        for c in clips:
            tokens = c.text.split()
            a, b = self.first_ipu
            step = (b - a) / len(tokens)
            words = [WordTiming(t, a + i * step, a + (i + 1) * step, 0.5) for i, t in enumerate(tokens)]
            out.append(Decoded(c.text, c.language, 1.0, 0.0, 0.0, words))
        return out


@pytest.fixture()
def speech_track(tmp_path):
    """3 s of stereo 16 kHz: channel 1 speaks (+-0.1) 1.0 .. 1.5 s, silent elsewhere."""
    x = np.zeros((3 * 16_000, 2), np.float32)
    x[16_000: 24_000, 1] = np.where(np.arange(8_000) % 2, 0.1, -0.1)
    path = tmp_path / "analysis.wav"
    sf.write(path, x, 16_000, subtype="FLOAT")
    return str(path)


def test_align_gives_recording_time_words_inside_the_spans(speech_track):
    cfg = AsrConfig(pad=0.25, batch_size=2)
    fake = FakeEngine((0.2, 0.8))  # clip starts at 0.75 s: 0.95 .. 1.55 s, a little off the speech
    aligner = TextAligner(cfg, fake)
    req = TextToAlign(speech_track, 3.0, 1, ((1.0, 1.5),), "hello there", "en")
    out = aligner.align([req, req, req])
    assert [len(c) for c in fake.calls] == [2, 1]  # batch_size clips per engine call
    clip = fake.calls[0][0]
    assert (clip.language, clip.prompt, clip.text, len(clip.audio)) == ("en", None, "hello there", 16_000)
    assert out[0] == out[1] == out[2]
    words = out[0]
    assert [(w["word"], w["channel"], w["language"], w["source"], w["score"], w["interpolated"]) for w in words] == [
        ("hello", 1, "en", "human", 0.5, False), ("there", 1, "en", "human", 0.5, False)]
    assert words[0]["start"] == 1.0 and words[-1]["end"] == 1.5  # snapped onto the speech
    assert words[0]["end"] == pytest.approx(1.25, abs=0.07) and words[0]["end"] == words[1]["start"]


def test_align_refuses_text_longer_than_a_whisper_clip(speech_track):
    aligner = TextAligner(AsrConfig(), FakeEngine((0.0, 1.0)))
    with pytest.raises(ValueError, match="30 s"):
        aligner.align([TextToAlign(speech_track, 40.0, 0, ((1.0, 2.0), (30.0, 31.0)), "a b", "en")])


def test_clip_words_use_cross_attention_without_a_ctc_aligner():
    aligner = TextAligner(AsrConfig(), FakeEngine((0.0, 1.0)))
    d = Decoded("台灣", "zh", 1.0, 0.0, 0.0, [WordTiming("台", 0.1, 0.2, 0.81234), WordTiming("灣", 0.2, 0.3, 0.5)])
    assert aligner.clip_words(d, np.zeros(16_000, np.float32), "台湾") == [
        {"word": "台", "start": 0.1, "end": 0.2, "score": 0.8123}, {"word": "湾", "start": 0.2, "end": 0.3, "score": 0.5}]


@pytest.mark.slow
def test_whisper_aligns_given_text_close_to_the_truth():
    wf = load_workflow(ROOT / "workflows" / "samples.yaml")
    aligner = TextAligner.load(wf.asr)
    audio = SAMPLES / "audio" / "en_support_clean.flac"  # 16 kHz already: stands in for the analysis track
    duration = sf.info(audio).duration
    timeline = next(t for t in json.loads((SAMPLES / "truth" / "timeline.json").read_text())
                    if t["recording_id"] == "en_support_clean")
    utts = [u for u in timeline["utterances"] if u["kind"] == "turn" and not u["truncated"]][:4]
    requests = [TextToAlign(str(audio), duration, u["channel"], ((u["start"], u["end"]),), u["written"], "en")
                for u in utts]
    truth = pd.read_parquet(SAMPLES / "truth" / "words.parquet")
    truth = truth[truth.recording_id == "en_support_clean"]
    errors = []
    for u, words in zip(utts, aligner.align(requests)):
        assert [w["word"] for w in words] == u["written"].split()
        assert all(u["start"] <= w["start"] <= w["end"] <= u["end"] for w in words)
        t = truth[(truth.channel == u["channel"]) & (truth.start >= u["start"] - 1e-3) & (truth.end <= u["end"] + 1e-3)]
        if len(t) == len(words):
            errors += [abs(a - w["start"]) for a, w in zip(t.sort_values("start").start, words)]
    assert len(errors) >= 20
    assert np.median(errors) <= 0.05
