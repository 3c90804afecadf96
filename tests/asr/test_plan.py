"""Clip planning on hand-made IPUs: packing, listener tokens apart, long IPUs cut, clip <->
recording time, given utterances, the decoding order, and the clip audio read from a file."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from duplexcorpus.asr.plan import (ClipPlan, batch_order, channel_clips, clip_audio, clip_audios, group_ipus,
                                   utterance_clip)


def rounded(rows: list[tuple]) -> list[tuple]:
    return [tuple(round(v, 9) for v in row) for row in rows]


def test_group_ipus_packs_long_ipus_and_keeps_short_ones_apart():
    spans = [(0.0, 2.0), (3.0, 3.5), (4.0, 6.0)]
    # (0, 2) needs 2.2 s with padding, (4, 6) 2.5 s more with the gap: 4.7 s fit in 5
    assert group_ipus(spans, 5.0, 1.0, 0.1, 0.3) == [([(0.0, 2.0), (4.0, 6.0)], False), ([(3.0, 3.5)], True)]
    assert group_ipus(spans, 4.0, 1.0, 0.1, 0.3) == [([(0.0, 2.0)], False), ([(3.0, 3.5)], True),
                                                     ([(4.0, 6.0)], False)]


def test_group_ipus_cuts_an_ipu_longer_than_a_clip():
    assert group_ipus([(0.0, 10.0)], 4.2, 1.0, 0.1, 0.3) == [([(0.0, 4.0)], False), ([(4.0, 8.0)], False),
                                                             ([(8.0, 10.0)], False)]


def test_channel_clips_are_packed_with_the_filler_prompt_for_short_ipus():
    plans = channel_clips(3, 1, [(1.0, 3.0), (4.0, 4.5)], "en", "P", "F", max_clip=28.0, short_ipu=1.0,
                          pad=0.25, gap=0.5)
    assert plans == [ClipPlan(3, 1, 0.75, 3.25, [(1.0, 3.0)], "en", "P", packed=True),
                     ClipPlan(3, 1, 3.75, 4.75, [(4.0, 4.5)], "en", "F", packed=True)]


def test_a_packed_clip_maps_to_and_from_recording_time():
    plan = ClipPlan(0, 0, 9.9, 20.5, [(10.0, 10.5), (20.0, 20.4)], "en", None, packed=True)
    assert rounded(plan.layout(0.1, 0.3)) == [(0.0, 9.9, 10.6), (1.0, 19.9, 20.5)]
    assert rounded(plan.to_clip_spans(0.1, 0.3)) == [(0.1, 0.6), (1.1, 1.5)]
    assert plan.to_recording(0.35, 0.1, 0.3) == pytest.approx(10.25)
    assert plan.to_recording(1.3, 0.1, 0.3) == pytest.approx(20.2)
    assert plan.to_recording(0.8, 0.1, 0.3) == pytest.approx(10.6)  # in the gap: the nearer edge
    assert plan.to_recording(0.95, 0.1, 0.3) == pytest.approx(19.9)


def test_an_unpacked_clip_is_one_piece_at_its_real_position():
    plan = ClipPlan(0, 0, -0.1, 4.0, [(0.05, 1.0), (2.0, 3.85)], "en", None)
    assert plan.layout(0.15, 0.3) == [(0.0, 0.0, 4.0)]
    assert plan.to_clip_spans(0.15, 0.3) == [(0.05, 1.0), (2.0, 3.85)]
    assert plan.to_recording(2.5, 0.15, 0.3) == 2.5
    assert plan.to_recording(5.0, 0.15, 0.3) == 4.0


def test_utterance_clip_covers_the_ipus_that_reach_into_the_utterance():
    ipus = [(1.0, 2.0), (2.5, 3.0), (8.0, 9.0)]
    clip = utterance_clip(0, 4, 1, 1.2, 3.1, "hello there", ipus, "en", 0.15)
    assert clip == ClipPlan(0, 1, 0.9, 3.15, [(1.05, 2.0), (2.5, 3.0)], "en", None, "hello there", "transcript", 4)
    alone = utterance_clip(0, 0, 1, 5.0, 6.0, "hm", ipus, None, 0.15)  # no IPU there: the utterance itself
    assert (alone.start, alone.end, alone.spans) == (4.85, 6.15, [(5.0, 6.0)])


def test_batch_order_groups_language_prompt_and_role_longest_first():
    def p(lang, prompt, role, length):
        return ClipPlan(0, 0, 0.0, length, [(0.0, length)], lang, prompt, role=role)

    plans = [p(None, None, "asr", 5), p("zh", "Z", "asr", 3), p("en", None, "transcript", 2), p("en", None, "asr", 1),
             p("en", None, "asr", 4), p("en", "F", "asr", 9)]
    assert [(x.language, x.prompt, x.role, x.end) for x in batch_order(plans)] == [
        ("en", None, "asr", 4), ("en", None, "asr", 1), ("en", None, "transcript", 2), ("en", "F", "asr", 9),
        ("zh", "Z", "asr", 3), (None, None, "asr", 5)]


@pytest.fixture()
def track(tmp_path):
    """4 s of stereo 16 kHz, channel 1 loud noise; channel 0 either +-0.1 (a constant -20 dB) or a
    ramp (every sample tells where it came from)."""
    sr = 16_000
    n = 4 * sr
    ch0 = np.where(np.arange(n) % 2, 0.1, -0.1).astype(np.float32)
    ramp = (np.arange(n) / n).astype(np.float32)
    ch1 = (np.random.default_rng(0).standard_normal(n) * 0.5).astype(np.float32)
    path = tmp_path / "analysis.wav"
    sf.write(path, np.stack([ch0, ch1], axis=1), sr, subtype="FLOAT")
    ramp_path = tmp_path / "ramp.wav"
    sf.write(ramp_path, np.stack([ramp, ch1], axis=1), sr, subtype="FLOAT")
    return str(path), str(ramp_path), ch0, ramp, sr


def test_clip_audio_lays_out_the_pieces_and_zeroes_the_rest(track):
    _, ramp_path, _, ramp, sr = track
    plan = ClipPlan(0, 0, 0.45, 1.65, [(0.5, 0.7), (1.5, 1.6)], "en", None, packed=True)
    x, _ = clip_audio(ramp_path, 0, plan, 0.05, 0.1, 4.0)
    # pieces: 0.45 .. 0.75 at 0, a 0.1 s gap, 1.45 .. 1.65 at 0.4 s
    assert len(x) == int(0.6 * sr)
    np.testing.assert_array_equal(x[: int(0.3 * sr)], ramp[int(0.45 * sr): int(0.75 * sr)])
    assert not x[int(0.3 * sr): int(0.4 * sr)].any()
    np.testing.assert_array_equal(x[int(0.4 * sr):], ramp[int(1.45 * sr): int(1.65 * sr)])


def test_clip_audio_silences_what_is_outside_the_ipus_at_real_positions(track):
    _, ramp_path, _, ramp, sr = track
    plan = ClipPlan(0, 0, 0.35, 2.0, [(0.5, 0.7), (1.8, 1.85)], "en", None, "text", "transcript")
    x, _ = clip_audio(ramp_path, 0, plan, 0.15, 0.3, 4.0)
    assert len(x) == int(round(1.65 * sr))
    kept = np.zeros(len(x), bool)
    kept[0: int(0.5 * sr)] = True  # 0.35 .. 0.85: the first IPU with its padding
    kept[int(1.3 * sr):] = True  # 1.65 .. 2.0
    np.testing.assert_array_equal(x[kept], ramp[int(0.35 * sr): int(2.0 * sr)][kept])
    assert not x[~kept].any()


def test_clip_audio_noise_floor_is_the_channel_level_around_its_pieces(track):
    path, _, _, _, _ = track
    plan = ClipPlan(0, 0, 0.45, 1.65, [(0.5, 0.7), (1.5, 1.6)], "en", None, packed=True)
    _, floor = clip_audio(path, 0, plan, 0.05, 0.1, 4.0)
    assert floor == pytest.approx(-20.0, abs=1e-3)
    audios, floors = clip_audios([plan, plan], [(path, 4.0), (path, 4.0)], 0.05, 0.1)
    assert len(audios) == 2 and floors == [floor, floor]
