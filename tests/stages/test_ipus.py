"""IPU building blocks on hand-made frames: hysteresis, runs, bridging, boundary snapping."""
from __future__ import annotations

import numpy as np
import pytest

from duplexcorpus.stages.ipus import FINE_HOP_S, bridge, hysteresis, runs, snap


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
