"""Crosstalk attribution: which detected speech on a channel is really another channel's speaker.

silero is level-invariant, so the other speaker leaking into a quiet channel (-18 to -30 dB) is
detected as speech there: the classic source of phantom backchannels and phantom overlaps. For every
32 ms frame (aligned with the VAD frames) and every pair of channels we measure
  - rho^2: the share of this channel's energy explained by the other channel at the leak's delay
    (normalised cross-correlation at the strongest cross-correlation lags of the block, |lag| <=
    max_lag_ms). A leak is a delayed, scaled copy, so rho^2 -> 1; the channel's own speech is
    uncorrelated with the other channel, so rho^2 stays low even while both talk;
  - the level-normalised energy lead of the other channel (each channel's speech level estimated
    separately, which removes gain mismatches between channels).
A frame of channel c is leak from d when d is itself speaking there and either rho^2 >= threshold
with d louder, or d leads by `dominance_db` after level normalisation, or -- where the leak
canceller estimated a path from d into c (decrosstalk.method leakpath / hybrid) -- the leak that path
predicts carries at least `path_share` of the frame's energy (any delay the path has).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from duplexcorpus.audio import ChannelStream, frame_energy_db
from duplexcorpus.frames import FRAME_RATE
from duplexcorpus.stages.base import Output, Stage, WorkItem
from duplexcorpus.stages.decrosstalk import DecrosstalkStage
from duplexcorpus.stages.tracks import TracksStage
from duplexcorpus.stages.vad import VadStage


def block_lags(x: np.ndarray, y: np.ndarray, max_lag: int, k: int) -> list[int]:
    """Candidate leak delays of x relative to y: the k strongest cross-correlation peaks on each side.

    Leaks go both ways with different delays (x picks up y late, y picks up x late), so both signs
    of the lag are searched separately; otherwise the louder direction hides the other.
    """
    n = 1 << int(np.ceil(np.log2(len(x) + len(y))))
    xc = np.abs(np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(y, n)), n))
    chosen: list[int] = []
    for lags, vals in ((np.arange(0, max_lag + 1), xc[: max_lag + 1]),
                       (-np.arange(1, max_lag + 1), xc[n - 1: n - max_lag - 1: -1])):
        picked: list[int] = []
        for i in np.argsort(vals)[::-1]:
            if all(abs(lags[i] - c) > 2 for c in picked):
                picked.append(int(lags[i]))
            if len(picked) == k:
                break
        chosen += picked
    return chosen


def framewise_rho2(x: np.ndarray, y: np.ndarray, lag: int, hop: int) -> np.ndarray:
    """Per-frame squared normalised correlation between x[n] and y[n - lag]."""
    shifted = np.zeros_like(y)
    if lag >= 0:
        shifted[lag:] = y[: len(y) - lag]
    else:
        shifted[:lag] = y[-lag:]
    n = len(x) // hop
    xf = x[: n * hop].reshape(n, hop).astype(np.float64)
    yf = shifted[: n * hop].reshape(n, hop).astype(np.float64)
    num = (xf * yf).sum(axis=1)
    den = (xf**2).sum(axis=1) * (yf**2).sum(axis=1) + 1e-20
    return num**2 / den


def _block_features(block: np.ndarray, hop: int, max_lag: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    channels = block.shape[0]
    rho2 = np.zeros((channels, channels, block.shape[1] // hop))
    for c in range(channels):
        for d in range(channels):
            if c != d:
                lags = block_lags(block[c], block[d], max_lag, k)
                rho2[c, d] = np.max([framewise_rho2(block[c], block[d], lag, hop) for lag in lags], axis=0)
    return frame_energy_db(block, hop), rho2


def leak_features(path: str, channels: int, rate: int, cfg) -> tuple[np.ndarray, np.ndarray]:
    """Stream the tracks: frame energies (C, F) and, per ordered pair, rho^2 (C, C, F)."""
    hop = int(round(rate / FRAME_RATE))
    max_lag = int(cfg.max_lag_ms / 1000 * rate)
    energies, rho2s = [], []
    carry = np.zeros((channels, 0), np.float32)
    for block in ChannelStream([(path, c) for c in range(channels)], rate, cfg.block_seconds).blocks():
        block = np.concatenate([carry, block], axis=1)
        usable = (block.shape[1] // hop) * hop  # whole frames only; the rest waits for the next block
        carry, block = block[:, usable:], block[:, :usable]
        if usable:
            energy, rho2 = _block_features(block, hop, max_lag, cfg.candidate_lags)
            energies.append(energy)
            rho2s.append(rho2)
    if not energies:
        return np.zeros((channels, 0)), np.zeros((channels, channels, 0))
    return np.concatenate(energies, axis=1), np.concatenate(rho2s, axis=2)


def speech_level(energy_db: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each channel's own speech level: the 90th percentile of its energy where it is speaking."""
    levels = []
    for e, p in zip(energy_db, probs):
        sel = e[p > 0.5]
        levels.append(np.percentile(sel, 90) if len(sel) > 10 else np.percentile(e, 99))
    return np.asarray(levels)


def path_share(observed: np.ndarray, predicted: np.ndarray, frames: int) -> np.ndarray:
    """Per ordered pair and frame, the share of channel c's energy that the leak predicted from d
    through their estimated path carries: predicted[c, d] / observed[c] (0 where no path), (C, C, F)
    on `frames` frames (the leak canceller's frames may end a frame early or late)."""
    channels = observed.shape[0]
    share = np.zeros((channels, channels, frames), np.float32)
    n = min(frames, observed.shape[1], predicted.shape[2])
    if n:
        share[:, :, :n] = predicted[:, :, :n] / (observed[:, None, :n] + 1e-12)
    return share


def attribute(energy_db: np.ndarray, rho2: np.ndarray, probs: np.ndarray, cfg,
              share: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leak mask (C, F), source channel (C, F; -1 = none) and evidence (C, F: rho^2, or the path's
    share of the frame's energy where that decided).

    `share` (C, C, F, from `path_share`): where a leak path was estimated, a frame whose energy is at
    least `path_share` (one half) the leak that path predicts is leak: the other speaker's voice
    carries most of it, whatever the delay (the +-max_lag_ms correlation sees no leak later than that)."""
    channels, frames = probs.shape
    energy_db, rho2 = energy_db[:, :frames], rho2[:, :, :frames]
    if energy_db.shape[1] < frames:  # the tracks may end a frame early
        pad = frames - energy_db.shape[1]
        energy_db = np.pad(energy_db, ((0, 0), (0, pad)), constant_values=-120.0)
        rho2 = np.pad(rho2, ((0, 0), (0, 0), (0, pad)))
    norm = energy_db - speech_level(energy_db, probs)[:, None]
    mask = np.zeros((channels, frames), bool)
    source = np.full((channels, frames), -1, np.int8)
    evidence = np.zeros((channels, frames), np.float32)
    for c in range(channels):
        for d in range(channels):
            if c == d:
                continue
            source_active = probs[d] >= cfg.min_active_prob
            correlated = (rho2[c, d] >= cfg.rho2_threshold) & (energy_db[d] > energy_db[c])
            dominated = (norm[d] - norm[c]) >= cfg.dominance_db
            explained = share[c, d] >= cfg.path_share if share is not None else np.zeros(frames, bool)
            leak = source_active & (correlated | dominated | explained) & ~mask[c]
            mask[c] |= leak
            source[c][leak] = d
            ev = np.maximum(rho2[c, d], np.minimum(share[c, d], 1.0)) if share is not None else rho2[c, d]
            evidence[c] = np.maximum(evidence[c], np.where(leak, ev, 0))
    return mask, source, evidence


class CrosstalkStage(Stage):
    name = "crosstalk"
    version = "2"
    config_section = "crosstalk"
    reads = ("tracks", "decrosstalk", "vad")
    LEAK = Output("crosstalk.npz", read=np.load,
                  description="per 31.25 Hz frame: mask (leak), source channel, evidence, energy_db")

    def process(self, item: WorkItem, out_dir: Path) -> None:
        probs = item.read(VadStage.PROBS).astype(np.float32)
        channels = probs.shape[0]
        if not self.cfg.enabled or channels < 2:
            zeros = np.zeros_like(probs)
            np.savez_compressed(out_dir / self.LEAK.file, mask=zeros.astype(bool), source=zeros.astype(np.int8) - 1,
                                evidence=zeros, energy_db=zeros - 120)
            return
        rate = self.workflow.tracks.sample_rate
        energy_db, rho2 = leak_features(str(item.path(TracksStage.AUDIO)), channels, rate, self.cfg)
        frames = probs.shape[1]
        share = None
        if self.cfg.path_share > 0:
            leak_energy = item.read(DecrosstalkStage.LEAK_ENERGY)
            if leak_energy["predicted"].any():
                share = path_share(leak_energy["observed"], leak_energy["predicted"], frames)
        mask, source, evidence = attribute(energy_db, rho2, probs, self.cfg, share)
        energy_db = np.pad(energy_db, ((0, 0), (0, max(0, frames - energy_db.shape[1]))), constant_values=-120.0)
        np.savez_compressed(out_dir / self.LEAK.file, mask=mask, source=source, evidence=evidence,
                            energy_db=energy_db[:, :frames].astype(np.float32))
