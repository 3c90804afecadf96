"""Leak-path estimation: today's canceller (stages/decrosstalk.py: +-25 ms search, 13-tap FIR per 30 s
block) vs the new estimator (duplexcorpus.leakpath: least squares, and the PBFDAF/NLMS variant), on
the synthetic conversations of tests/test_leakpath.py (channel 1 recorded 10 dB quieter, 20 dB SNR,
two-way leak). Per condition and direction: delay error (ms), level error (dB), leak ERLE (dB: leak
energy before/after on stretches where only the source talks).
    .venv/bin/python bench/bench_leakpath.py [seconds]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from duplexcorpus.audio import frame_energy_db  # noqa: E402
from duplexcorpus.frames import HOP  # noqa: E402
from duplexcorpus.leakpath import estimate_leak_path, estimate_leak_paths  # noqa: E402
from duplexcorpus.stages.decrosstalk import fit_leak, predict  # noqa: E402
from tests.test_leakpath import RATE, leak_attenuation_db, synth_pair  # noqa: E402


def today(pair, target, source, block_s=30.0, max_lag_ms=25.0, half_taps=6, select_db=10.0):
    """The decrosstalk stage's loop for one pair: returns (delay ms, level dB, leak ERLE dB)."""
    x = np.stack(pair["x"])
    leak, own = pair["leak"][(target, source)], pair["own"][source]
    max_lag = int(max_lag_ms / 1000 * RATE)
    hist_n = max_lag + half_taps + 1
    hist_x, hist_o = np.zeros(hist_n, np.float32), np.zeros(hist_n)
    residual, lags, gains, last = [], [], [], None
    B = int(block_s * RATE)
    for b0 in range(0, x.shape[1], B):
        block = x[:, b0: b0 + B]
        energy = frame_energy_db(block, HOP)
        norm = energy - np.percentile(energy, 90, axis=1, keepdims=True)
        lead = np.repeat((norm[source] - norm[target]) >= select_db, HOP)
        select = np.zeros(block.shape[1], np.float32)
        select[: len(lead)] = lead
        fit, info = fit_leak(block[target], block[source], hist_x, select, max_lag, half_taps)
        if fit is not None and info["explained"] >= 0.05 and info["gain_db"] <= -6.0:
            last = fit
            lags.append(info["lag_ms"])
            gains.append(info["gain_db"])
        fit = last
        lb, ob = leak[b0: b0 + B], own[b0: b0 + B]
        residual.append(lb - predict(ob, hist_o, fit) if fit is not None else lb)
        hist_x = np.concatenate([hist_x, block[source]])[-hist_n:]
        hist_o = np.concatenate([hist_o, ob])[-hist_n:]
    residual = np.concatenate(residual)
    only = (pair["mask"][source] > 0.99) & (pair["mask"][target] < 0.01)
    erle = 10 * np.log10(np.sum(leak[only] ** 2) / (np.sum(residual[only] ** 2) + 1e-30))
    delay = float(np.median(lags)) if lags else float("nan")
    level = float(np.median(gains)) if gains else float("nan")
    return delay, level, erle


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 90.0
    conditions = [(d, -25, None) for d in (5, 29, 120, 250)] + [(29, lv, None) for lv in (-40, -12, -8)]
    conditions += [(120, lv, rt) for rt in (0.3, 0.6) for lv in (-40, -25, -12, -8)]
    head = f"{'delay':>5} {'level':>5} {'RT60':>4} {'dir':>4} | {'today dly/lvl/ERLE':>20} | {'LS dly/lvl/ERLE taps':>26} | {'NLMS dly/lvl/ERLE':>20}"
    print(f"{seconds:.0f} s per condition; errors: estimate - truth; dir 1<0 = ch0's speaker into the 10 dB quieter ch1")
    print(head)
    print("-" * len(head))
    t_ls = t_nlms = 0.0
    for i, (d, lv, rt) in enumerate(conditions):
        pair = synth_pair(seed=100 + i, seconds=seconds, delay_ms=d, level_db=lv, rt60=rt)
        t0 = time.process_time()
        paths = estimate_leak_paths(pair["x"], RATE)
        t_ls += time.process_time() - t0
        for target, source in ((1, 0), (0, 1)):
            truth = pair["true_level"][(target, source)]
            td, tl, te = today(pair, target, source)
            p = paths[(target, source)]
            le = leak_attenuation_db(pair, target, source, p) if p.applied else 0.0
            t0 = time.process_time()
            q = estimate_leak_path(pair["x"][target], pair["x"][source], RATE, method="nlms")
            t_nlms += time.process_time() - t0
            ne = leak_attenuation_db(pair, target, source, q) if q.applied else 0.0
            cell = lambda dl, l, e: f"{dl - d:+7.1f} {l - truth:+6.1f} {e:5.1f}"  # noqa: E731
            ls = cell(p.delay_s * 1000, p.level_db, le) + f" {p.filter_taps:5d}" + ("" if p.applied else "*")
            print(f"{d:5d} {lv:5d} {rt or 0:4.1f} {target}<{source}  | {cell(td, tl, te):>20} | {ls:>26} | "
                  f"{cell(q.delay_s * 1000, q.level_db, ne):>20}", flush=True)
    print(f"CPU: LS (all 4 estimates per pair, refined) {t_ls:.1f} s, NLMS (2 per pair) {t_nlms:.1f} s; "
          "* = not applied; today: median over 30 s blocks, nan = never applied")


if __name__ == "__main__":
    main()
