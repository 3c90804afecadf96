"""Accuracy on data_samples against the truth: the pipeline vs naive per-channel silero (no
crosstalk handling: neither the leak canceller before VAD nor the attribution after it, as
bench_stress.py's baseline), in one run. 200 ms collar on both boundaries.
    .venv/bin/python bench/bench_accuracy.py
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from duplexcorpus.config import load_workflow
from duplexcorpus.evaluate import score_run
from duplexcorpus.runner import run

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    rows = {}
    for name, overrides in (("pipeline", {}), ("naive silero", {"crosstalk.enabled": False, "decrosstalk.enabled": False})):
        out = Path(tempfile.mkdtemp(prefix="dxc-acc-")) / "out"
        run(ROOT / "data_samples" / "audio", out, load_workflow(None, overrides), executor="local")
        rows[name] = score_run(out / "tables", ROOT / "data_samples" / "truth")
    keys = [k for k in rows["pipeline"] if k != "interruption"]
    print(f"{'metric':40s} {'pipeline F1':>12s} {'berr ms':>8s} {'naive F1':>9s}")
    for k in keys:
        p, n = rows["pipeline"][k], rows["naive silero"][k]
        print(f"{k:40s} {p['f1']:12.3f} {p['median_boundary_error_ms']:8.1f} {n['f1']:9.3f}")


if __name__ == "__main__":
    main()
