"""Audio I/O: probing, and streaming a recording's channels at a target rate in bounded memory.

soundfile (libsndfile) decodes, python-soxr resamples (streaming, so block edges leave no seams).
Nothing here ever holds a whole recording: a 2-hour call is read in blocks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import soundfile as sf
import soxr


@dataclass(frozen=True)
class Probe:
    path: str
    format: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def probe(path: str) -> Probe:
    """Header information; raises soundfile's error for files libsndfile cannot open."""
    info = sf.info(path)
    return Probe(path, f"{info.format}/{info.subtype}", int(info.samplerate), int(info.channels), int(info.frames))


@dataclass(frozen=True)
class ScanStats:
    """What one full decode of a file found."""

    frames_read: int
    non_finite: int
    clipped: int
    peak: np.ndarray  # per channel
    rms: np.ndarray  # per channel
    error: str | None  # decoder error part-way through, if any


def scan(path: str, block_frames: int, clip_level: float) -> ScanStats:
    """Decode the whole file block by block, counting what makes audio unusable."""
    frames = non_finite = clipped = 0
    peak = sumsq = None
    error = None
    try:
        with sf.SoundFile(path) as handle:
            for block in handle.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
                finite = np.isfinite(block)
                non_finite += int(block.size - finite.sum())
                clean = np.where(finite, block, 0.0)
                clipped += int((np.abs(clean) >= clip_level).sum())
                bpeak = np.abs(clean).max(axis=0)
                bsq = (clean.astype(np.float64) ** 2).sum(axis=0)
                peak = bpeak if peak is None else np.maximum(peak, bpeak)
                sumsq = bsq if sumsq is None else sumsq + bsq
                frames += len(block)
    except (sf.LibsndfileError, RuntimeError) as err:
        error = str(err)
    if peak is None:
        peak = sumsq = np.zeros(1)
    rms = np.sqrt(sumsq / max(frames, 1))
    return ScanStats(frames, non_finite, clipped, peak, rms, error)


class ChannelStream:
    """Read selected channels from one or more files, resampled to `rate`, in aligned blocks.

    `sources` is one (path, source_channel) per output channel. Files of different rates or lengths
    are fine: each file gets its own streaming resampler, and the shorter ones are padded with
    zeros at the end.
    """

    def __init__(self, sources: Sequence[tuple[str, int]], rate: int, block_seconds: float = 30.0):
        self.rate = rate
        self.block_seconds = block_seconds
        self.files: list[str] = []
        self.picks: list[list[int]] = []  # per file: source channels, in output order
        self.layout: list[tuple[int, int]] = []  # per output channel: (file index, column)
        for path, ch in sources:
            if path not in self.files:
                self.files.append(path)
                self.picks.append([])
            fi = self.files.index(path)
            self.picks[fi].append(ch)
            self.layout.append((fi, len(self.picks[fi]) - 1))

    @property
    def num_channels(self) -> int:
        return len(self.layout)

    def blocks(self) -> Iterator[np.ndarray]:
        """Yield float32 arrays of shape (channels, n) until every file is exhausted."""
        handles = [sf.SoundFile(p) for p in self.files]
        try:
            resamplers = [
                soxr.ResampleStream(h.samplerate, self.rate, len(pick), dtype="float32", quality="HQ")
                if h.samplerate != self.rate else None
                for h, pick in zip(handles, self.picks)
            ]
            pending = [np.zeros((0, len(p)), np.float32) for p in self.picks]
            done = [False] * len(handles)
            while not all(done) or any(len(b) for b in pending):
                for i, handle in enumerate(handles):
                    if done[i]:
                        continue
                    raw = handle.read(int(self.block_seconds * handle.samplerate), dtype="float32", always_2d=True)
                    last = len(raw) == 0
                    raw = np.ascontiguousarray(raw[:, self.picks[i]]) if len(raw) else np.zeros((0, len(self.picks[i])), np.float32)
                    out = resamplers[i].resample_chunk(raw, last=last) if resamplers[i] else raw
                    pending[i] = np.concatenate([pending[i], out.reshape(-1, len(self.picks[i]))])
                    done[i] = last
                if all(done):
                    n = max(len(b) for b in pending)
                    pending = [np.pad(b, ((0, n - len(b)), (0, 0))) for b in pending]
                else:
                    n = min(len(b) for b, d in zip(pending, done) if not d)
                if n == 0:
                    if all(done):
                        break
                    continue
                block = np.stack([pending[fi][:n, col] for fi, col in self.layout])
                pending = [b[n:] for b in pending]
                yield block
        finally:
            for h in handles:
                h.close()


def read_window(path: str, start: float, end: float) -> tuple[np.ndarray, int]:
    """Read [start, end) seconds of a file as (channels, n) float32 (random access)."""
    with sf.SoundFile(path) as handle:
        sr = handle.samplerate
        handle.seek(int(round(start * sr)))
        data = handle.read(int(round((end - start) * sr)), dtype="float32", always_2d=True)
    return data.T.copy(), sr


def frame_energy_db(x: np.ndarray, hop: int) -> np.ndarray:
    """Per-frame energy (dB) of (channels, n) audio with non-overlapping frames of `hop` samples."""
    n = x.shape[-1] // hop
    frames = x[..., : n * hop].reshape(*x.shape[:-1], n, hop)
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=-1) + 1e-12)
