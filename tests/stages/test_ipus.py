"""IPU building blocks on hand-made frames: hysteresis, runs, bridging, boundary snapping."""
from __future__ import annotations

import numpy as np
import pytest

from duplexcorpus.audio import frame_energy_db, noise_floor_db
from duplexcorpus.stages.ipus import FINE_HOP_S, bridge, hysteresis, runs, smoothed_db, snap, trim_edge


def test_hysteresis_opens_at_onset_and_closes_below_offset():
    probs = np.array([0.1, 0.45, 0.6, 0.4, 0.36, 0.34, 0.45, 0.55, 0.2])
    assert hysteresis(probs, onset=0.5, offset=0.35).tolist() == [0, 0, 1, 1, 1, 0, 0, 1, 0]


def test_runs_are_half_open_index_spans():
    assert runs(np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], bool)) == [(0, 2), (4, 5), (6, 9)]
    assert runs(np.zeros(4, bool)) == []


def test_bridge_joins_only_gaps_shorter_than_the_limit():
    assert bridge([(0, 10), (13, 20), (25, 30)], max_gap=4) == [(0, 20), (25, 30)]
    assert bridge([(0, 10), (14, 20)], max_gap=4) == [(0, 10), (14, 20)]


@pytest.fixture
def envelope():
    """8 ms frames: quiet, loud from frame 50 to 99, quiet again."""
    e = np.full(200, -60.0)
    e[50:100] = -10.0
    return e


def test_snap_moves_an_early_start_to_the_first_loud_frame(envelope):
    assert snap(40 * FINE_HOP_S, envelope, -30.0, 0.25, is_start=True) == pytest.approx(50 * FINE_HOP_S)


def test_snap_extends_a_late_start_back_to_where_speech_begins(envelope):
    assert snap(60 * FINE_HOP_S, envelope, -30.0, 0.25, is_start=True) == pytest.approx(50 * FINE_HOP_S)


def test_snap_ends_at_the_last_loud_frame_either_way(envelope):
    assert snap(110 * FINE_HOP_S, envelope, -30.0, 0.25, is_start=False) == pytest.approx(100 * FINE_HOP_S)
    assert snap(90 * FINE_HOP_S, envelope, -30.0, 0.25, is_start=False) == pytest.approx(100 * FINE_HOP_S)


def test_snap_never_moves_further_than_its_range(envelope):
    far = 10 * FINE_HOP_S  # 40 frames before the onset, range 0.1 s = 12 frames: nothing loud in reach
    assert snap(far, envelope, -30.0, 0.1, is_start=True) == far


def test_a_soft_tail_in_noise_is_kept_by_the_smoothed_envelope():
    """At 10-17 dB SNR a word's soft ending sits a few dB above the noise. On the 8 ms envelope
    noise alone reaches floor + 5 dB, so a threshold that noise never crosses also cuts the tail;
    averaged over 24 ms the noise hardly moves and floor + 3 dB (as much speech power as noise
    power) finds the tail's end."""
    rate, rng = 16_000, np.random.default_rng(7)
    noise = rng.standard_normal(4 * rate) * 0.01
    speech = np.zeros_like(noise)
    speech[rate: rate + rate // 2] = rng.standard_normal(rate // 2) * 0.1  # 1.0-1.5 s: 20 dB over the noise
    speech[rate + rate // 2: rate + rate // 2 + 1920] = rng.standard_normal(1920) * 0.0122  # 1.5-1.62 s: +3.9 dB in all
    hop = int(FINE_HOP_S * rate)
    raw = frame_energy_db(noise + speech, hop)
    vad_end = 1.6  # the VAD frame grid put the end near the tail's end

    smooth = smoothed_db(raw, 3)
    thr = noise_floor_db(smooth) + 3.0
    end = trim_edge(snap(vad_end, smooth, thr, 0.25, is_start=False), raw, thr, False, 3)
    assert abs(end - 1.62) <= 0.03  # the tail's end, not the loud part's

    unsmoothed = snap(vad_end, raw, noise_floor_db(raw) + 6.0, 0.25, is_start=False)
    assert unsmoothed < 1.53  # the same tail lost on the raw envelope


def test_a_sharp_edge_stays_where_it_is_after_smoothing():
    e = np.array([[-60.0, -60.0, -60.0, 0.0, 0.0, -60.0, -60.0, -60.0], [-30.0] * 8])
    smooth = smoothed_db(e, 3)
    assert smooth.shape == e.shape and np.allclose(smooth[1], -30.0)
    thr = -20.0  # loud: frames 3 and 4; the centred average also lifts frames 2 and 5 over thr
    assert smooth[0, 2] > thr and smooth[0, 5] > thr
    start = snap(0.0, smooth[0], thr, 0.25, is_start=True)
    end = snap(7 * FINE_HOP_S, smooth[0], thr, 0.25, is_start=False)
    assert start == pytest.approx(2 * FINE_HOP_S) and end == pytest.approx(6 * FINE_HOP_S)
    assert trim_edge(start, e[0], thr, True, 3) == pytest.approx(3 * FINE_HOP_S)
    assert trim_edge(end, e[0], thr, False, 3) == pytest.approx(5 * FINE_HOP_S)
    assert trim_edge(3 * FINE_HOP_S, e[0], thr, True, 3) == pytest.approx(3 * FINE_HOP_S)  # loud: kept
    assert smoothed_db(e, 1) is e
