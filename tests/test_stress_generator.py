"""bench/stress/make_stress.py: drawn conditions stay in their ranges, and a rendered call carries the
leak delay / level and the two-file offset that conditions.parquet says."""
from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.signal
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None,
                                reason="needs espeak-ng and sox")


@pytest.fixture(scope="module")
def stress():
    spec = importlib.util.spec_from_file_location("make_stress", ROOT / "bench" / "stress" / "make_stress.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_stress"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_drawn_conditions_in_range(stress):
    rows = [stress.draw_conditions(s) for s in range(300)]
    for c in rows:
        assert 0 <= c.leak_delay_ms <= 300 and -40 <= c.leak_db <= -8
        assert (0.2 <= c.rt60_s <= 0.8) if c.reverb else math.isnan(c.rt60_s)
        assert 10 <= c.snr_db <= 30 and abs(c.gain_diff_db) <= 15 and max(c.gain_db_ch0, c.gain_db_ch1) == 0
        assert c.codec in (("ulaw", "gsm") if c.telephone else ("none",))
        if c.two_file:
            assert abs(c.offset_s) <= 10 and abs(c.drift_ppm) <= 200
        else:
            assert math.isnan(c.offset_s) and math.isnan(c.drift_ppm)
    assert {c.language for c in rows} == {"en", "zh"}
    for attr, share in (("reverb", 0.5), ("telephone", 0.25), ("two_file", 0.3)):
        assert abs(np.mean([getattr(c, attr) for c in rows]) - share) < 0.1
    assert stress.draw_conditions(7) == stress.draw_conditions(7)  # seeded


def _best_lag(b: np.ndarray, a: np.ndarray) -> int:
    """Index into b where a fits best (cross-correlation normalised by b's energy under a, so a loud
    unrelated stretch of b does not win)."""
    corr = scipy.signal.correlate(b.astype(np.float64), a.astype(np.float64), mode="valid", method="fft")
    energy = np.concatenate([[0.0], np.cumsum(b.astype(np.float64) ** 2)])
    local = energy[len(a):] - energy[: len(energy) - len(a)]
    return int(np.argmax(corr / np.sqrt(local + 1e-9)))


@pytest.mark.slow
def test_rendered_leak_and_offset(stress, tmp_path, monkeypatch):
    S = stress.ms.Step
    short = [S("A", "turn", "so when do you want to start the kitchen renovation"),
             S("B", "turn", "probably in march once the weather gets warmer and the days are longer", gap=0.6),
             S("A", "bc", "right", at=0.4),
             S("B", "cont", "the contractor said it would take about six weeks", pause=0.8),
             S("A", "turn", "okay that makes sense then", gap=0.5)]
    monkeypatch.setitem(stress.DIALOGUES, "test_short", (short, "en", "casual_chat"))
    force = dict(dialogue="test_short", language="en", speaker_ch0="spk_en_f1", speaker_ch1="spk_en_m1",
                 voice_ch0="en-us+f3", voice_ch1="en-us+m3", leak_delay_ms=137.5, leak_db=-20.0, reverb=False,
                 snr_db=30.0, gain_db_ch0=0.0, gain_db_ch1=-6.0, telephone=False, two_file=True,
                 offset_s=2.5, drift_ppm=150.0)
    stress.render_seed(123, tmp_path, **force)

    cond = pd.read_parquet(tmp_path / "truth" / "conditions.parquet").iloc[0]
    for k, v in force.items():
        assert cond[k] == v, k
    assert cond.recording_id == "stress_0123"
    for name in ("segments", "events", "words"):
        assert len(pd.read_parquet(tmp_path / "truth" / f"{name}.parquet"))
    assert json.loads((tmp_path / "truth" / "timeline.json").read_text())[0]["delivery"] == "mono_pair"
    assert "stress_0123,1,spk_en_m1" in (tmp_path / "audio" / "metadata.csv").read_text()

    sr = stress.SR
    f0, r0 = sf.read(tmp_path / "audio" / "stress_0123.ch0.flac", dtype="float32")
    f1, r1 = sf.read(tmp_path / "audio" / "stress_0123.ch1.flac", dtype="float32")
    assert r0 == r1 == sr
    d, off, drift = cond.leak_delay_ms / 1000, cond.offset_s, cond.drift_ppm * 1e-6

    # a stretch where only channel 1 speaks (truth, channel 0's timeline), clear of channel 0's leak
    seg = pd.read_parquet(tmp_path / "truth" / "segments.parquet")
    ch0 = seg[seg.channel == 0][["start", "end"]].to_numpy()
    only1 = [(s, e) for s, e in seg[seg.channel == 1][["start", "end"]].to_numpy()
             if not any(a < e + d + 0.1 and b + d + 0.1 > s for a, b in ch0)]
    s, e = max(only1, key=lambda x: x[1] - x[0])
    assert e - s > 1.0

    # file 1 back on the true timeline: sample k of y1 is at true time off + k / sr
    y1 = soxr.resample(f1, sr * (1 + drift), sr).astype(np.float32)
    src = y1[int(round((s - off) * sr)): int(round((e - off) * sr))]
    win = f0[int(round(s * sr)): int(round((e + 0.35) * sr))]
    lag = _best_lag(win, src)
    assert abs(lag - d * sr) <= 2, (lag, d * sr)  # leak delay, to a sample or two
    leaked = win[lag: lag + len(src)]
    level = 20 * np.log10(np.dot(leaked, src) / np.dot(src, src))
    expected = cond.leak_db + cond.gain_db_ch0 - cond.gain_db_ch1
    assert abs(level - expected) < 0.5, (level, expected)  # leak level re the source (+ gain difference)

    # the offset straight from the two files: where in file 0 does file 1's stretch leak?
    tau = (s - off) * (1 + drift)  # file-1 time of true time s
    piece = f1[int(round(tau * sr)): int(round(tau * sr)) + int(1.5 * sr)]
    p = _best_lag(f0, piece) / sr  # file-0 time of the leaked copy = s + d
    off_hat = p - d - tau / (1 + drift)
    assert abs(off_hat - off) < 0.002, (off_hat, off)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [122, 197])
def test_a_short_two_file_call_with_a_loud_reverberant_leak_syncs(stress, tmp_path, seed):
    """Seeds 122 / 197 (choose range): 31 / 30 s two-file calls, a -15 / -8.5 dB leak 152 / 266 ms
    late through a room (RT60 0.74 / 0.20 s), clocks -100 / +118 ppm. Three 8 s probes only, each
    with peaks at the leak's reflections a few ms from its direct path: a coarse line through
    reflections reached as many probes as the direct path's with a slope ~180 ppm off, so the fine
    windows were smeared and the sync was refused ("no line of correlation peaks"). The direct
    path's peaks are the strongest; the coarse line is now the one through them."""
    from duplexcorpus.sync import estimate_sync

    c = stress.draw_conditions(seed)
    assert c.two_file and c.reverb and c.leak_db > -16
    stress.render_seed(seed, tmp_path)
    ref, rate = sf.read(tmp_path / "audio" / f"stress_{seed:04d}.ch0.flac", dtype="float32")
    other, _ = sf.read(tmp_path / "audio" / f"stress_{seed:04d}.ch1.flac", dtype="float32")
    est = estimate_sync(ref, other, rate)
    assert est.ok, est.reason
    assert abs(est.offset_s - c.offset_s) <= 5e-3 and abs(est.drift_ppm - c.drift_ppm) <= 5.0, est
