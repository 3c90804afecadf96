"""routing.choose_windows at corpus scale: the per-recording lookup chooses exactly the windows the
former scan over every chosen window chose (kept here as the reference), and 100 hours of IPUs take
seconds."""
from __future__ import annotations

import time

import numpy as np

from duplexcorpus.config import ReviewConfig
from duplexcorpus.review.routing import Window, choose_windows


def reference_choose_windows(risky, durations, cfg):
    """The algorithm as it was written first: every chosen window scanned for every segment."""
    budget = cfg.budget_share * sum(durations.values())
    spent = 0.0
    chosen = []
    for rid, seg_id, s, e, score, reasons in sorted(risky, key=lambda r: -r[4]):
        if score < cfg.threshold:
            break
        if any(w.recording_id == rid and w.start <= s and e <= w.end for w in chosen):
            continue
        start, end = max(0.0, s - cfg.context), min(durations[rid], e + cfg.context)
        if end - start > cfg.window:
            mid = (s + e) / 2
            start, end = max(0.0, mid - cfg.window / 2), min(durations[rid], mid + cfg.window / 2)
        merged = False
        for i, w in enumerate(chosen):
            if w.recording_id == rid and start < w.end and end > w.start and max(end, w.end) - min(start, w.start) <= cfg.window:
                new = Window(rid, min(start, w.start), max(end, w.end), max(score, w.score),
                             tuple(sorted(set(w.reasons) | set(reasons))), w.segments + (seg_id,))
                if spent + (new.end - new.start) - (w.end - w.start) > budget:
                    break
                spent += (new.end - new.start) - (w.end - w.start)
                chosen[i] = new
                merged = True
                break
        if merged:
            continue
        overlapping = [w for w in chosen if w.recording_id == rid and start < w.end and end > w.start]
        if overlapping:
            start = max(w.end for w in overlapping)
            if end - start < 1.0:
                continue
        if spent + (end - start) > budget:
            continue
        spent += end - start
        chosen.append(Window(rid, round(start, 3), round(end, 3), score, tuple(sorted(reasons)), (seg_id,)))
    return sorted(chosen, key=lambda w: -w.score)


def _risky(rng, recordings: int, minutes: float):
    rows, durations = [], {}
    for r in range(recordings):
        rid = f"rec{r:04d}"
        durations[rid] = minutes * 60
        t = 0.0
        k = 0
        while t < minutes * 60 - 3:
            d = float(rng.uniform(0.3, 4.0))
            reasons = {"low_asr": round(float(rng.random()), 3)} if rng.random() < 0.7 else {"overlap": 1.0}
            rows.append((rid, f"{rid}_{k}", round(t, 3), round(t + d, 3), round(float(rng.beta(2, 3)), 4), reasons))
            t += d + float(rng.uniform(0.1, 1.5))
            k += 1
    return rows, durations


def test_same_windows_as_the_reference():
    rng = np.random.default_rng(7)
    for budget in (0.05, 0.2, 0.6):
        risky, durations = _risky(rng, 12, 4)
        cfg = ReviewConfig(budget_share=budget, window=20.0)
        assert choose_windows(risky, durations, cfg) == reference_choose_windows(risky, durations, cfg)


def test_a_hundred_hours_in_seconds():
    risky, durations = _risky(np.random.default_rng(1), 1000, 6)  # 100 h, ~150k IPUs
    t0 = time.perf_counter()
    windows = choose_windows(risky, durations, ReviewConfig())
    seconds = time.perf_counter() - t0
    assert len(windows) > 1000
    assert sum(w.end - w.start for w in windows) <= 0.2 * 100 * 3600 + 1e-6
    assert seconds < 20, seconds
