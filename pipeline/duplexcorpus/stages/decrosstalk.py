"""Leak cancellation: subtract each other speaker's leak from a channel before VAD sees it.

A leak is the other speaker's voice reaching this microphone: a delayed, attenuated (filtered)
copy of the other channel. Per block and per ordered channel pair we
  1. pick the frames where the other channel dominates (level-normalised lead >= `select_db`): there,
     this channel holds (almost) only the leak;
  2. find the leak delay as the cross-correlation peak on those frames (|lag| <= max_lag_ms);
  3. fit a short FIR around that delay by least squares on those frames;
  4. subtract the predicted leak from the whole block when the fit is a plausible leak (gain at
     most `max_leak_gain_db`, explaining at least `min_explained` of the selected energy); a short
     block with too little evidence reuses the previous block's fit. Real calls with separate lines
     (no leak) get a negligible fit and pass through essentially untouched.
Fitting only where the other speaker dominates keeps the fit from "explaining" this channel's own
speech through its echo in the other channel. The output is the analysis signal (16 kHz) for VAD;
shards keep the original tracks. The fitted gain/delay per block is recorded.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from duplexcorpus.audio import ChannelStream, frame_energy_db
from duplexcorpus.frames import ANALYSIS_RATE, HOP
from duplexcorpus.stages.base import Output, Stage, WorkItem
from duplexcorpus.stages.tracks import TracksStage
from duplexcorpus.storage import write_json


def _lagged(x: np.ndarray, history: np.ndarray, lag: int) -> np.ndarray:
    """x delayed by `lag` samples (negative = advanced), using `history` for samples before x[0]."""
    full = np.concatenate([history, x])
    h = len(history)
    if lag >= 0:
        return full[h - lag: h - lag + len(x)]
    out = np.zeros_like(x)
    out[: len(x) + lag] = x[-lag:]
    return out


def fit_leak(target: np.ndarray, source: np.ndarray, history: np.ndarray, select: np.ndarray,
             max_lag: int, half_taps: int) -> tuple[tuple[list[int], np.ndarray] | None, dict]:
    """Fit the leak filter of `source` into `target` on the selected samples: (taps, coefs), info."""
    if select.sum() < ANALYSIS_RATE // 2:
        return None, {"reason": "too little dominated audio"}
    t, s = target * select, source * select
    n = 1 << int(np.ceil(np.log2(2 * len(t))))
    xc = np.fft.irfft(np.fft.rfft(t, n) * np.conj(np.fft.rfft(s, n)), n)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    vals = np.abs(np.concatenate([xc[: max_lag + 1], xc[n - max_lag:]]))
    lag = int(lags[np.argmax(vals)])
    taps = list(range(lag - half_taps, lag + half_taps + 1))
    basis = np.stack([_lagged(source, history, k) for k in taps], axis=1)
    sel = select.astype(bool)
    # ridge-regularised least squares: band-limited audio (telephone) makes the taps collinear
    gram = basis[sel].T @ basis[sel]
    gram += np.eye(len(taps)) * 1e-3 * np.trace(gram) / len(taps)
    coef = np.linalg.solve(gram, basis[sel].T @ target[sel])
    predicted = basis[sel] @ coef
    residual = target[sel] - predicted
    explained = 1.0 - float(np.sum(residual**2) / (np.sum(target[sel] ** 2) + 1e-20))
    gain_db = 10 * np.log10(float(np.sum(predicted**2)) / (float(np.sum(source[sel] ** 2)) + 1e-20) + 1e-20)
    info = {"lag_ms": round(lag / ANALYSIS_RATE * 1000, 2), "gain_db": round(gain_db, 1), "explained": round(explained, 3)}
    return (taps, coef), info


def predict(source: np.ndarray, history: np.ndarray, fit: tuple[list[int], np.ndarray]) -> np.ndarray:
    taps, coef = fit
    return sum(c * _lagged(source, history, k) for k, c in zip(taps, coef))


class DecrosstalkStage(Stage):
    name = "decrosstalk"
    version = "3"
    config_section = "decrosstalk"
    reads = ("tracks",)
    ANALYSIS = Output("analysis.flac", description="16 kHz analysis signal, leaks subtracted (VAD, attribution and ASR read it)")
    LEAKS = Output("leaks.json", read=lambda p: json.loads(p.read_text()), description="the fit per block and channel pair")

    def process(self, item: WorkItem, out_dir: Path) -> None:
        if self.cfg.method == "leakpath" and self.cfg.enabled and item.rec().num_channels > 1:
            return self.process_leakpath(item, out_dir)
        cfg = self.cfg
        channels = item.rec().num_channels
        max_lag = int(cfg.max_lag_ms / 1000 * ANALYSIS_RATE)
        history = np.zeros((channels, max_lag + cfg.half_taps + 1), np.float32)
        report = []
        last_fit: dict[tuple[int, int], tuple[list[int], np.ndarray]] = {}
        stream = ChannelStream([(str(item.path(TracksStage.AUDIO)), c) for c in range(channels)], ANALYSIS_RATE, cfg.block_seconds)
        with sf.SoundFile(out_dir / self.ANALYSIS.file, "w", samplerate=ANALYSIS_RATE, channels=channels,
                          format="FLAC", subtype="PCM_24") as out:
            for b, block in enumerate(stream.blocks()):
                cleaned = block.copy()
                if cfg.enabled and channels > 1 and block.shape[1] >= HOP:
                    energy = frame_energy_db(block, HOP)
                    level = np.percentile(energy, 90, axis=1, keepdims=True)
                    norm = energy - level
                    for c in range(channels):
                        for d in range(channels):
                            if c == d:
                                continue
                            lead = np.repeat((norm[d] - norm[c]) >= cfg.select_db, HOP)
                            select = np.zeros(block.shape[1], np.float32)
                            select[: len(lead)] = lead
                            fit, info = fit_leak(cleaned[c], block[d], history[d], select, max_lag, cfg.half_taps)
                            # Subtracting a filtered copy of the *other* channel cannot remove this
                            # channel's own speech (only its -20 dB echo), so the gate is lenient.
                            if fit is not None and info["explained"] >= cfg.min_explained \
                                    and info["gain_db"] <= cfg.max_leak_gain_db:
                                last_fit[(c, d)] = fit
                            elif (c, d) in last_fit:  # too little evidence here: the path is stable
                                fit, info = last_fit[(c, d)], {**info, "reused_previous_fit": True}
                            else:
                                fit = None
                            if fit is not None:
                                cleaned[c] = cleaned[c] - predict(block[d], history[d], fit).astype(np.float32)
                                info["applied"] = True
                            report.append({"block": b, "channel": c, "source_channel": d, **info})
                history = np.concatenate([history, block], axis=1)[:, -history.shape[1]:]
                out.write(cleaned.T)
        write_json(out_dir / self.LEAKS.file, report)

    # -- the long-path canceller (duplexcorpus.leakpath) ------------------------------------------------
    def process_leakpath(self, item: WorkItem, out_dir: Path) -> None:
        """Leak paths estimated per recording and ordered channel pair (GCC-PHAT delay up to
        `max_delay_s`, a least-squares response long enough for a room), then cancelled chunk by chunk.

        Paths are estimated on the first `estimate_seconds` of the call (memory stays bounded; a
        phone call's leak path is stable) and applied to all of it; each chunk is cancelled with
        enough of the sources' past in front of it that the filter sees exactly what it would in
        one pass. What was estimated goes to leaks.json, one record per pair."""
        from duplexcorpus.leakpath import cancel_leak, estimate_leak_paths, leak_regressor

        cfg = self.cfg
        path = str(item.path(TracksStage.AUDIO))
        channels = item.rec().num_channels

        def read(start: int, stop: int) -> np.ndarray:
            blocks = ChannelStream([(path, c) for c in range(channels)], ANALYSIS_RATE, cfg.block_seconds).blocks()
            out, seen = [], 0
            for block in blocks:  # streaming resampler: read from the start, keep [start, stop)
                lo, hi = max(start - seen, 0), min(stop - seen, block.shape[1])
                if hi > lo:
                    out.append(block[:, lo:hi])
                seen += block.shape[1]
                if seen >= stop:
                    break
            return np.concatenate(out, axis=1) if out else np.zeros((channels, 0), np.float32)

        head = read(0, int(cfg.estimate_seconds * ANALYSIS_RATE))
        kw = dict(max_delay_s=cfg.max_delay_s, max_filter_s=cfg.max_filter_s, select_db=cfg.select_db)
        first = {k: v for k, v in estimate_leak_paths(list(head), ANALYSIS_RATE, refine=False, **kw).items()}
        paths = estimate_leak_paths(list(head), ANALYSIS_RATE, **kw) if any(p.applied for p in first.values()) else first
        del head
        context = int((cfg.max_delay_s + cfg.max_filter_s + 0.05) * ANALYSIS_RATE)
        with sf.SoundFile(out_dir / self.ANALYSIS.file, "w", samplerate=ANALYSIS_RATE, channels=channels,
                          format="FLAC", subtype="PCM_24") as out:
            history = np.zeros((channels, 0), np.float32)
            for block in ChannelStream([(path, c) for c in range(channels)], ANALYSIS_RATE, cfg.block_seconds * 10).blocks():
                x = np.concatenate([history, block], axis=1)
                cleaned = []
                for t in range(channels):
                    y = x[t]
                    for s_ in range(channels):
                        if s_ != t and paths[(t, s_)].applied:
                            y = cancel_leak(y, leak_regressor(x, s_, t, first), paths[(t, s_)])
                    cleaned.append(y[history.shape[1]:])
                out.write(np.stack(cleaned).T.astype(np.float32))
                history = x[:, -context:]
        write_json(out_dir / self.LEAKS.file, [{"channel": t, "source_channel": s_, "method": "leakpath", **p.record()}
                                               for (t, s_), p in sorted(paths.items())])
