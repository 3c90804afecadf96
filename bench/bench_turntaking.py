"""Cost of the turn-taking rules: 1 h and 10 h of a synthetic two-party call's IPUs.

The sweep (`duplexcorpus.turntaking.detect_events`) should grow like n log n: the 10 h / 1 h ratio
close to 10. The former quadratic scan (`tests/turntaking_reference.py`, the test oracle) is timed at
1 h for comparison, and at 10 h when its 1 h time says that takes under ~2 minutes. The sweep is
also timed with the cyclic garbage collector off, which shows the algorithm's own ratio.

    .venv/bin/python bench/bench_turntaking.py [--repeat 3]

The call (seeded): turns of 1-4 IPUs (log-normal lengths, median ~1.6 s; pauses inside a turn
median ~0.45 s); turn changes with offsets ~ N(0.2 s, 0.45 s), so about a third overlap; the listener
backchannels (0.2-0.8 s) about every 8 s of talk and sometimes starts a long interruption; times in
milliseconds, as the IPU stage writes them.
"""
from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/turntaking_reference.py

from duplexcorpus.config import EventsConfig  # noqa: E402
from duplexcorpus.records import Segment  # noqa: E402
from duplexcorpus.turntaking import detect_events  # noqa: E402
from tests.turntaking_reference import detect_events as reference_events  # noqa: E402


def synthetic_call(hours: float, seed: int = 0) -> list[Segment]:
    r = random.Random(seed)
    total = hours * 3600
    segs: list[Segment] = []
    free = [0.0, 0.0]  # each speaker's IPUs never overlap each other
    speaker, t = 0, 0.5

    def add(ch: int, start: float, end: float) -> None:
        start, end = round(max(start, free[ch]), 3), round(end, 3)
        if end - start >= 0.08:
            segs.append(Segment("call", ch, f"spk{ch}", start, end, round(r.uniform(0.55, 0.99), 3)))
            free[ch] = end

    while t < total:
        listener = 1 - speaker
        end = t
        for k in range(r.choice([1, 1, 2, 2, 3, 4])):
            start = end + (r.lognormvariate(-0.8, 0.6) if k else 0.0)
            end = start + min(12.0, max(0.2, r.lognormvariate(0.5, 0.7)))
            add(speaker, start, end)
            # the listener's backchannels inside this IPU
            b = start + r.expovariate(1 / 8)
            while b < end - 0.3:
                add(listener, b, b + r.uniform(0.2, 0.8))
                b += r.expovariate(1 / 8) + 0.8
        if r.random() < 0.06:  # an interruption: the listener starts well before the speaker stops
            start = end - r.uniform(0.5, 1.5)
        else:
            start = end + r.gauss(0.2, 0.45)
        speaker, t = listener, max(start, free[listener])
    return segs


def best_of(fn, repeat: int, collect: bool = True) -> float:
    """Best wall time of `repeat` runs; `collect=False` runs with the cyclic garbage collector off."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        if not collect:
            gc.disable()
        try:
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        finally:
            gc.enable()
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    ap.add_argument("--reference-budget", type=float, default=120.0,
                    help="run the quadratic reference at 10 h only if it should take under this many s")
    args = ap.parse_args()
    cfg = EventsConfig()
    calls = {h: synthetic_call(h) for h in (1, 10)}
    for h, segs in calls.items():
        ev = detect_events(segs, cfg)
        kinds = {}
        for e in ev:
            kinds[e.type] = kinds.get(e.type, 0) + 1
        print(f"{h:>2} h: {len(segs)} IPUs, {len(ev)} events {dict(sorted(kinds.items()))}")

    sweep = {h: best_of(lambda s=segs: detect_events(s, cfg), args.repeat) for h, segs in calls.items()}
    print(f"sweep      1 h: {sweep[1]:.3f} s   10 h: {sweep[10]:.3f} s   ratio {sweep[10] / sweep[1]:.1f}")
    # CPython's full collections scan every live object; in this small process the 10 h run triggers
    # a few and the 1 h run none, which adds to the ratio what the algorithm does not
    bare = {h: best_of(lambda s=segs: detect_events(s, cfg), args.repeat, collect=False) for h, segs in calls.items()}
    print(f"  (gc off) 1 h: {bare[1]:.3f} s   10 h: {bare[10]:.3f} s   ratio {bare[10] / bare[1]:.1f}")

    assert detect_events(calls[1], cfg) == reference_events(calls[1], cfg), "sweep and reference differ at 1 h"
    ref1 = best_of(lambda: reference_events(calls[1], cfg), args.repeat)
    line = f"reference  1 h: {ref1:.3f} s"
    projected = ref1 * 100
    if projected < args.reference_budget:
        t0 = time.perf_counter()
        old = reference_events(calls[10], cfg)
        ref10 = time.perf_counter() - t0
        same = old == detect_events(calls[10], cfg)
        line += f"   10 h: {ref10:.1f} s (one run)   ratio {ref10 / ref1:.1f}   same events: {same}"
    else:
        line += f"   10 h: skipped (projected ~{projected:.0f} s from the 1 h time, over {args.reference_budget:.0f} s)"
    print(line)
    print(f"speed-up over the reference at 1 h: {ref1 / sweep[1]:.0f}x")


if __name__ == "__main__":
    main()
