"""Metrics paired with the stages: interval F1 with a boundary collar, boundary error, frame agreement.

Matching is one-to-one (Hungarian, scipy) between reference and hypothesis intervals of the same
group (e.g. same recording, type and channel); a pair may match only when both boundaries are within
the collar. Boundary errors are reported over matched pairs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

Interval = tuple[float, float]


@dataclass
class MatchScore:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    start_errors: list[float] = field(default_factory=list)  # seconds, matched pairs
    end_errors: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def median_boundary_error_ms(self) -> float:
        errs = self.start_errors + self.end_errors
        return float(np.median(errs) * 1000) if errs else float("nan")

    def __add__(self, other: "MatchScore") -> "MatchScore":
        return MatchScore(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                          self.start_errors + other.start_errors, self.end_errors + other.end_errors)

    def summary(self) -> dict[str, float]:
        return dict(f1=round(self.f1, 4), precision=round(self.precision, 4), recall=round(self.recall, 4),
                    tp=self.tp, fp=self.fp, fn=self.fn,
                    median_boundary_error_ms=round(self.median_boundary_error_ms, 1))


def match_intervals(ref: Sequence[Interval], hyp: Sequence[Interval], collar: float) -> MatchScore:
    """One-to-one matching; a pair matches when |start diff| <= collar and |end diff| <= collar."""
    if not ref or not hyp:
        return MatchScore(0, len(hyp), len(ref))
    r = np.asarray(ref, dtype=float)
    h = np.asarray(hyp, dtype=float)
    ds = np.abs(r[:, None, 0] - h[None, :, 0])
    de = np.abs(r[:, None, 1] - h[None, :, 1])
    ok = (ds <= collar + 1e-9) & (de <= collar + 1e-9)
    cost = np.where(ok, ds + de, 1e6)
    rows, cols = linear_sum_assignment(cost)
    keep = ok[rows, cols]
    rows, cols = rows[keep], cols[keep]
    return MatchScore(len(rows), len(hyp) - len(rows), len(ref) - len(rows),
                      ds[rows, cols].tolist(), de[rows, cols].tolist())


def grouped_match(ref: Mapping[Hashable, Sequence[Interval]], hyp: Mapping[Hashable, Sequence[Interval]],
                  collar: float) -> MatchScore:
    total = MatchScore()
    for key in set(ref) | set(hyp):
        total = total + match_intervals(list(ref.get(key, [])), list(hyp.get(key, [])), collar)
    return total


def to_frames(intervals: Iterable[Interval], duration: float, rate: float) -> np.ndarray:
    """Boolean activity at `rate` Hz (a frame is active when its centre lies inside an interval)."""
    n = int(np.ceil(duration * rate))
    centres = (np.arange(n) + 0.5) / rate
    active = np.zeros(n, dtype=bool)
    for start, end in intervals:
        active |= (centres >= start) & (centres < end)
    return active


def frame_agreement(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.mean(a[:n] == b[:n])) if n else 1.0
