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
    zeros at the end. `clocks` maps a file to (offset_s, drift_ppm) against the first file's clock
    (separately recorded phones, duplexcorpus.sync): its samples are resampled as if its rate were
    rate * (1 + drift) and shifted to start offset_s later (earlier when negative), so every
    output channel is on the first file's timeline.
    """

    def __init__(self, sources: Sequence[tuple[str, int]], rate: int, block_seconds: float = 30.0,
                 clocks: dict[str, tuple[float, float]] | None = None):
        self.rate = rate
        self.block_seconds = block_seconds
        self.clocks = clocks or {}
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
            clocks = [self.clocks.get(p, (0.0, 0.0)) for p in self.files]
            rates = [h.samplerate * (1.0 + drift * 1e-6) for h, (_, drift) in zip(handles, clocks)]
            resamplers = [
                soxr.ResampleStream(r, self.rate, len(pick), dtype="float32", quality="HQ")
                if r != self.rate else None
                for r, pick in zip(rates, self.picks)
            ]
            lead = [int(round(offset * self.rate)) for offset, _ in clocks]  # > 0: starts later
            pending = [np.zeros((max(k, 0), len(p)), np.float32) for k, p in zip(lead, self.picks)]
            skip = [max(-k, 0) for k in lead]  # < 0: started earlier, its first samples precede ours
            done = [False] * len(handles)
            while not all(done) or any(len(b) for b in pending):
                for i, handle in enumerate(handles):
                    if done[i]:
                        continue
                    raw = handle.read(int(self.block_seconds * handle.samplerate), dtype="float32", always_2d=True)
                    last = len(raw) == 0
                    raw = np.ascontiguousarray(raw[:, self.picks[i]]) if len(raw) else np.zeros((0, len(self.picks[i])), np.float32)
                    out = resamplers[i].resample_chunk(raw, last=last) if resamplers[i] else raw
                    out = out.reshape(-1, len(self.picks[i]))
                    if skip[i]:
                        cut = min(skip[i], len(out))
                        out, skip[i] = out[cut:], skip[i] - cut
                    pending[i] = np.concatenate([pending[i], out])
                    done[i] = last
                running = [len(b) for b, d in zip(pending, done) if not d]
                n = min(running) if running else max(len(b) for b in pending)
                # a file that has ended is silent from its end on, while the others go on
                pending = [np.pad(b, ((0, n - len(b)), (0, 0))) if d and len(b) < n else b
                           for b, d in zip(pending, done)]
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


# below 16-bit quantisation noise (about -101 dBFS): nothing was recorded there
DIGITAL_SILENCE_DB = -100.0


def noise_floor_db(energy_db: np.ndarray, percentile: float = 10.0, default: float | None = None) -> float | None:
    """A channel's noise floor: the `percentile` of its frame energies (dB) over the frames that
    hold a signal. Digital silence is no noise floor: a file padded where its recorder was not
    running (the lead of a synced phone, the end of the shorter file) would put the floor at the
    -120 dB of an empty frame, and every boundary snapped "above the floor" would run to the end
    of its range. `default` when there are no frames at all."""
    energy_db = np.asarray(energy_db, dtype=np.float64).ravel()
    if not len(energy_db):
        return default
    live = energy_db[energy_db > DIGITAL_SILENCE_DB]
    return float(np.percentile(live if len(live) else energy_db, percentile))


def frame_energy_db(x: np.ndarray, hop: int) -> np.ndarray:
    """Per-frame energy (dB) of (channels, n) audio with non-overlapping frames of `hop` samples."""
    n = x.shape[-1] // hop
    frames = x[..., : n * hop].reshape(*x.shape[:-1], n, hop)
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=-1) + 1e-12)


# ------------------------------------------------------------------------- input health (ingest)
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")


@dataclass(frozen=True)
class Analysis:
    """What one full decode of a file found, per channel and per channel pair (see `analyse`)."""

    frames_read: int
    error: str | None  # decoder error part-way through, if any
    resumes_after_error: bool  # audio decodes again after the failure (corrupt middle, not a cut-off end)
    non_finite: int
    clipped: int  # finite samples with |x| >= clip_level
    over_range: int  # finite samples with |x| > 1 (only float files can hold them)
    peak: np.ndarray  # per channel, finite samples
    rms: np.ndarray  # per channel
    mean: np.ndarray  # per channel (DC)
    window_means: np.ndarray  # (windows, channels): the mean of each `window_frames` stretch
    window_frames: int
    gram: np.ndarray  # (channels, channels): sum(a * b) over the file

    @property
    def energy(self) -> np.ndarray:
        return np.diag(self.gram)

    def pair_residual_db(self, i: int, j: int, sign: int = -1) -> float:
        """Energy of channel i + sign * channel j relative to their mean energy, in dB (-inf when
        sample-exact): sign -1 measures a copy, +1 a phase-inverted copy."""
        e = self.energy
        residual = max(e[i] + e[j] + 2 * sign * self.gram[i, j], 0.0)
        ref = (e[i] + e[j]) / 2
        return float(10 * np.log10(residual / ref)) if residual > 0 and ref > 0 else float("-inf")


def analyse(path: str, window_frames: int, clip_level: float) -> Analysis:
    """Decode the whole file in windows of `window_frames` (bounded memory) and measure what ingest
    checks: decode failures (and whether audio resumes after one), NaN/Inf, clipping, float values
    beyond full scale, level, DC per window, and how alike each pair of channels is."""
    frames = non_finite = clipped = over = 0
    error = None
    means: list[np.ndarray] = []
    peak = total = gram = None
    resumes = False
    try:
        with sf.SoundFile(path) as handle:
            announced = handle.frames
            while True:
                try:
                    block = handle.read(window_frames, dtype="float64", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as err:
                    error = str(err)
                    resumes = _decodes_after(path, frames + window_frames, announced)
                    break
                if not len(block):
                    break
                finite = np.isfinite(block)
                non_finite += int(block.size - finite.sum())
                x = np.where(finite, block, 0.0)
                mag = np.abs(x)
                clipped += int((mag >= clip_level).sum())
                over += int((mag > 1.0).sum())
                bpeak, bsum, bgram = mag.max(axis=0), x.sum(axis=0), x.T @ x
                if peak is None:
                    peak, total, gram = bpeak, bsum, bgram
                else:
                    peak, total, gram = np.maximum(peak, bpeak), total + bsum, gram + bgram
                means.append(bsum / len(x))
                frames += len(x)
    except (sf.LibsndfileError, RuntimeError) as err:  # cannot even open it
        error = str(err)
    if peak is None:
        peak = total = np.zeros(1)
        gram = np.zeros((1, 1))
    n = max(frames, 1)
    return Analysis(frames, error, resumes, non_finite, clipped, over, peak, np.sqrt(np.diag(gram) / n), total / n,
                    np.array(means).reshape(len(means), len(peak)), window_frames, gram)


def _decodes_after(path: str, start: int, announced: int) -> bool:
    """Whether audio can still be decoded somewhere after `start` (a damaged stretch in the middle)
    rather than the data simply ending there (a cut-off file)."""
    for at in sorted({start, (start + announced) // 2, announced - 1}):
        if not 0 <= at < announced:
            continue
        try:
            with sf.SoundFile(path) as handle:
                handle.seek(at)
                if len(handle.read(1024, dtype="float32")):
                    return True
        except (sf.LibsndfileError, RuntimeError):
            continue
    return False
