from duplexcorpus.metrics import frame_agreement, match_intervals, to_frames


def test_match_within_collar():
    score = match_intervals([(0.0, 1.0), (2.0, 3.0)], [(0.1, 1.15), (2.5, 3.0)], collar=0.2)
    assert (score.tp, score.fp, score.fn) == (1, 1, 1)
    assert abs(score.f1 - 0.5) < 1e-9
    assert round(score.median_boundary_error_ms) == 125


def test_matching_is_one_to_one():
    score = match_intervals([(0.0, 1.0)], [(0.0, 1.0), (0.05, 1.05)], collar=0.2)
    assert (score.tp, score.fp) == (1, 1)


def test_frames():
    a = to_frames([(0.0, 0.5)], 1.0, 10)
    assert a.sum() == 5 and frame_agreement(a, to_frames([(0.0, 0.6)], 1.0, 10)) == 0.9
