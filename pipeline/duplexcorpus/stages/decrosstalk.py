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

That FIR searches only +-max_lag_ms. With `method: hybrid` (the default) each ordered pair's leak
path is first estimated per recording (duplexcorpus.leakpath: any delay up to max_delay_s, a
room-length response); a confident path is subtracted instead of the FIR where its held-out ERLE
reaches `min_erle_db`, and in every case the energy it predicts per VAD frame is written to
`leak_energy.npz`, from which the crosstalk stage decides "leak or own speech" at the path's delay.
`method: leakpath` uses the paths alone (no FIR), `method: fir` the FIR alone (no paths).
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


class FrameEnergy:
    """Mean-square energy per HOP-sample frame (the VAD grid) of a signal fed in blocks of any size."""

    def __init__(self):
        self.rest = np.zeros(0, np.float64)
        self.frames: list[np.ndarray] = []

    def push(self, x: np.ndarray) -> None:
        x = np.concatenate([self.rest, np.asarray(x, np.float64)])
        n = len(x) // HOP
        if n:
            self.frames.append(np.mean(x[: n * HOP].reshape(n, HOP) ** 2, axis=1))
        self.rest = x[n * HOP:]

    def values(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0)


class DecrosstalkStage(Stage):
    name = "decrosstalk"
    version = "4"
    config_section = "decrosstalk"
    reads = ("tracks",)
    ANALYSIS = Output("analysis.flac", description="16 kHz analysis signal, leaks subtracted (VAD, attribution and ASR read it)")
    LEAKS = Output("leaks.json", read=lambda p: json.loads(p.read_text()), description="the fit per block and channel pair")
    LEAK_ENERGY = Output("leak_energy.npz", read=np.load,
                         description="per 32 ms VAD frame: each channel's energy before cancellation (observed, C x F) "
                                     "and the energy of the leak an estimated path predicts from each other channel "
                                     "(predicted, C x C x F; zero where no path was applied)")

    def process(self, item: WorkItem, out_dir: Path) -> None:
        """Per 30 s block and ordered pair (target c, source d): with `method` leakpath or hybrid, the
        pair's path estimated per recording (duplexcorpus.leakpath) is subtracted where it was applied;
        the short FIR fitted per block (`fit_leak`) handles the other pairs (method fir: all pairs;
        hybrid: the pairs whose path was not confident; leakpath: none)."""
        cfg = self.cfg
        channels = item.rec().num_channels
        path = str(item.path(TracksStage.AUDIO))
        use_paths = cfg.enabled and channels > 1 and cfg.method in ("leakpath", "hybrid")
        use_fir = cfg.method in ("fir", "hybrid")
        if cfg.method not in ("fir", "leakpath", "hybrid"):
            raise ValueError(f"decrosstalk.method must be fir, leakpath or hybrid, not {cfg.method!r}")
        paths, first = (self.estimate_paths(path, channels) if use_paths else ({}, {}))
        applied = {k for k, p in paths.items() if p.applied}
        # a confident path always predicts the leak's energy (for the attribution); it is subtracted
        # only where it removes at least half of what the target holds while only the source talks
        # (held-out ERLE >= min_erle_db = 3 dB): a weaker cancellation changes nothing VAD could use,
        # but perturbs the signal (on the AMI headsets, 0.4 dB paths sent silero's state into
        # minutes of near-zero speech probability); those pairs go to the FIR as before
        subtract = {k for k in applied if paths[k].erle_db >= cfg.min_erle_db}
        context = int((cfg.max_delay_s + cfg.max_filter_s + 0.05) * ANALYSIS_RATE) if applied else 0
        path_history = np.zeros((channels, 0), np.float32)
        max_lag = int(cfg.max_lag_ms / 1000 * ANALYSIS_RATE)
        history = np.zeros((channels, max_lag + cfg.half_taps + 1), np.float32)
        report = [{"channel": t, "source_channel": s_, **p.record(), "canceller": "leakpath"} for (t, s_), p in sorted(paths.items())]
        observed = [FrameEnergy() for _ in range(channels)]
        predicted = {(c, d): FrameEnergy() for c in range(channels) for d in range(channels) if c != d}
        last_fit: dict[tuple[int, int], tuple[list[int], np.ndarray]] = {}
        stream = ChannelStream([(path, c) for c in range(channels)], ANALYSIS_RATE, cfg.block_seconds)
        with sf.SoundFile(out_dir / self.ANALYSIS.file, "w", samplerate=ANALYSIS_RATE, channels=channels,
                          format="FLAC", subtype="PCM_24") as out:
            for b, block in enumerate(stream.blocks()):
                cleaned = block.copy()
                for c in range(channels):
                    observed[c].push(block[c])
                leak_now = {k: np.zeros(block.shape[1], np.float32) for k in predicted}
                if applied:
                    from duplexcorpus.leakpath import cancel_leak, leak_regressor

                    x = np.concatenate([path_history, block], axis=1)
                    h0 = path_history.shape[1]
                    for t, s_ in sorted(applied):
                        y = cancel_leak(x[t], leak_regressor(x, s_, t, first), paths[(t, s_)])
                        leak_now[(t, s_)] = (x[t] - y)[h0:].astype(np.float32)
                        if (t, s_) in subtract:
                            cleaned[t] = cleaned[t] - leak_now[(t, s_)]
                    path_history = x[:, -context:]
                if use_fir and cfg.enabled and channels > 1 and block.shape[1] >= HOP:
                    energy = frame_energy_db(block, HOP)
                    level = np.percentile(energy, 90, axis=1, keepdims=True)
                    norm = energy - level
                    for c in range(channels):
                        for d in range(channels):
                            if c == d or (c, d) in subtract:
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
                            report.append({"block": b, "channel": c, "source_channel": d, "canceller": "fir", **info})
                # only an estimated path's prediction is recorded: the FIR's is fitted per block
                # within +-max_lag_ms and is no evidence of where a long leak is
                for k, e in predicted.items():
                    e.push(leak_now[k])
                history = np.concatenate([history, block], axis=1)[:, -history.shape[1]:]
                out.write(cleaned.T)
        write_json(out_dir / self.LEAKS.file, report)
        obs = [e.values() for e in observed]
        frames = min((len(v) for v in obs), default=0)
        pred = np.zeros((channels, channels, frames), np.float32)
        for (c, d), e in predicted.items():
            pred[c, d] = e.values()[:frames]
        np.savez_compressed(out_dir / self.LEAK_ENERGY.file, observed=np.stack([v[:frames] for v in obs]).astype(np.float32)
                            if channels else np.zeros((0, 0), np.float32), predicted=pred)

    def estimate_paths(self, path: str, channels: int) -> tuple[dict, dict]:
        """Leak paths per ordered pair (GCC-PHAT delay up to `max_delay_s`, a least-squares response
        long enough for a room; duplexcorpus.leakpath), estimated on the first `estimate_seconds` of
        the call (memory stays bounded; a call's leak path is stable) and applied to all of it.
        Returns the refined paths and the first-round ones (which clean the regressors)."""
        from duplexcorpus.leakpath import estimate_leak_paths

        cfg = self.cfg
        stop = int(cfg.estimate_seconds * ANALYSIS_RATE)
        parts, seen = [], 0
        for block in ChannelStream([(path, c) for c in range(channels)], ANALYSIS_RATE, cfg.block_seconds).blocks():
            parts.append(block[:, : max(0, stop - seen)])
            seen += block.shape[1]
            if seen >= stop:
                break
        head = np.concatenate(parts, axis=1) if parts else np.zeros((channels, 0), np.float32)
        kw = dict(max_delay_s=cfg.max_delay_s, max_filter_s=cfg.max_filter_s, select_db=cfg.select_db)
        first = estimate_leak_paths(list(head), ANALYSIS_RATE, refine=False, **kw)
        paths = estimate_leak_paths(list(head), ANALYSIS_RATE, first=first, **kw) if any(p.applied for p in first.values()) else first
        return paths, first
