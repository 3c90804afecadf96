"""IPUs: per-channel speech stretches from VAD probabilities, with crosstalk removed.

1. hysteresis on the speech probability (onset / offset thresholds);
2. silences shorter than `bridge` are bridged;
3. an IPU mostly made of frames attributed to another channel's speaker (crosstalk stage) is
   dropped; leak frames at its edges are trimmed; IPUs shorter than `min_duration` are dropped.
   IPUs are split only at leak runs at least `bridge` long: the leak canceller (decrosstalk)
   already removed the bulk of the leak before VAD, and short mid-IPU "leak" frames under loud
   overlap are more often soft own speech;
4. boundaries snap to the channel's 8 ms energy envelope (VAD frames are 32 ms), within a small
   range and never into frames attributed to leak, to where it crosses `refine_floor_db` over the
   noise floor; the bridge rule is applied again to the snapped boundaries. Opt-in low-SNR form
   (README): the envelope averaged over `refine_smooth_s` (24 ms: noise alone hardly fluctuates
   over it) with its spread over a sharp edge taken back, 3 dB over the floor (SNR 0 dB), and,
   with `refine_above_leak`, moving out past the VAD's boundary only over the leak the canceller's
   paths predict too. At 10-17 dB SNR the 6 dB rule cuts one IPU end in five by more than 100 ms.
Suppressed stretches are reported as `crosstalk` events, so nothing disappears unexplained.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from duplexcorpus.audio import ChannelStream, frame_energy_db, noise_floor_db
from duplexcorpus.frames import FRAME_RATE
from duplexcorpus.records import Event, Segment, load_events, load_segments, record_dicts
from duplexcorpus.stages.base import Output, Stage, WorkItem
from duplexcorpus.stages.crosstalk import CrosstalkStage
from duplexcorpus.stages.decrosstalk import DecrosstalkStage
from duplexcorpus.stages.tracks import TracksStage
from duplexcorpus.stages.vad import VadStage
from duplexcorpus.storage import write_json

FINE_HOP_S = 0.008


def hysteresis(probs: np.ndarray, onset: float, offset: float) -> np.ndarray:
    active = np.zeros(len(probs), bool)
    on = False
    for i, p in enumerate(probs):
        on = p >= offset if on else p >= onset
        active[i] = on
    return active


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def bridge(spans: list[tuple[int, int]], max_gap: int) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s, e in spans:
        if out and s - out[-1][1] < max_gap:
            out[-1][1] = e
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def fine_energy(path: str, channels: int, rate: int) -> np.ndarray:
    hop = int(round(FINE_HOP_S * rate))
    parts, carry = [], np.zeros((channels, 0), np.float32)
    for block in ChannelStream([(path, c) for c in range(channels)], rate).blocks():
        block = np.concatenate([carry, block], axis=1)
        usable = (block.shape[1] // hop) * hop
        carry = block[:, usable:]
        if usable:
            parts.append(frame_energy_db(block[:, :usable], hop))
    return np.concatenate(parts, axis=1) if parts else np.zeros((channels, 0))


def smoothed_db(energy_db: np.ndarray, frames: int) -> np.ndarray:
    """The envelope averaged in power over `frames` fine frames (centred): noise alone fluctuates
    less over the average, and the short dips inside a soft word ending are bridged, so a tail of
    speech near the floor stands out of it. `trim_edge` takes back the spread at a sharp edge."""
    if frames <= 1 or energy_db.shape[-1] == 0:
        return energy_db
    power = 10 ** (np.atleast_2d(energy_db) / 10)
    n = power.shape[-1]
    csum = np.concatenate([np.zeros((power.shape[0], 1)), np.cumsum(power, axis=-1)], axis=-1)
    idx = np.arange(n)
    lo, hi = np.maximum(idx - frames // 2, 0), np.minimum(idx - frames // 2 + frames, n)
    avg = (csum[:, hi] - csum[:, lo]) / (hi - lo)
    return 10 * np.log10(avg.reshape(energy_db.shape) + 1e-12)


def trim_edge(t: float, raw_db: np.ndarray, threshold: float | np.ndarray, is_start: bool, frames: int) -> float:
    """Undo what the centred average spreads over a sharp edge: a snapped boundary's outermost
    frames (at most frames // 2 of them) that are below `threshold` on the raw envelope are left out."""
    i = int(round(t / FINE_HOP_S))
    thr = np.broadcast_to(np.asarray(threshold, dtype=float), raw_db.shape)
    for _ in range(frames // 2):
        j = i if is_start else i - 1
        if not 0 <= j < len(raw_db) or raw_db[j] >= thr[j]:
            break
        i = i + 1 if is_start else i - 1
    return i * FINE_HOP_S


def noise_or_leak_db(floor_db: float, predicted_leak: np.ndarray | None, frames: int) -> float | np.ndarray:
    """The louder of what a channel holds besides its own speaker, per 8 ms frame (dB): its noise
    floor, or the leak the canceller's estimated paths predict from every other channel
    (`predicted_leak`, mean square per 32 ms VAD frame, summed over sources; None or all zero: the
    floor alone). Own speech is told from each by its margin over each."""
    if predicted_leak is None or not predicted_leak.any():
        return floor_db
    per = int(round(1 / FRAME_RATE / FINE_HOP_S))
    leak = np.repeat(predicted_leak, per)[:frames]
    leak = np.pad(leak, (0, frames - len(leak)))
    return np.maximum(floor_db, 10 * np.log10(leak + 1e-20))


class _Loud:
    """`loud[j]`: frame j of the envelope at or above its threshold (only the frames asked for)."""

    def __init__(self, energy: np.ndarray, threshold: np.ndarray):
        self.energy, self.threshold = energy, threshold

    def __getitem__(self, j: int) -> bool:
        return bool(self.energy[j] >= self.threshold[j])


def snap(t: float, energy: np.ndarray, threshold: float | np.ndarray, rng: float, is_start: bool,
         blocked: np.ndarray | None = None, extend_threshold: float | np.ndarray | None = None) -> float:
    """Move a boundary to where the envelope crosses `threshold` (one value, or one per frame), at
    most `rng` seconds away.

    `blocked` (same grid as `energy`): frames attributed to another channel's leak; a boundary is
    never extended into them (a loud leak is "still loud" but not this speaker).
    `extend_threshold` (default `threshold`): what a frame beyond the VAD's boundary must reach for
    the boundary to move out over it. The VAD heard the frames inside on the leak-cancelled signal,
    so they need only stand above the noise; a frame outside needs evidence the leak does not explain."""
    i = int(round(t / FINE_HOP_S))
    k = int(round(rng / FINE_HOP_S))
    n = len(energy)
    if n == 0:
        return t
    i = min(max(i, 0), n - 1)
    thr = np.broadcast_to(np.asarray(threshold, dtype=float), energy.shape)  # a view: no copy per boundary
    loud = _Loud(energy, thr)
    outward = loud if extend_threshold is None else \
        _Loud(energy, np.broadcast_to(np.asarray(extend_threshold, dtype=float), energy.shape))
    free = (lambda j: not blocked[j]) if blocked is not None and len(blocked) >= n else (lambda j: True)
    if is_start:
        j = i
        if loud[i]:  # extend earlier while still loud
            while j > max(0, i - k) and outward[j - 1] and free(j - 1):
                j -= 1
        else:  # started early: move to the first loud frame
            while j < min(n - 1, i + k) and not loud[j]:
                j += 1
            if not loud[j]:
                return t
        return j * FINE_HOP_S
    j = min(i, n - 1)
    if j > 0 and loud[j - 1]:  # extend later while still loud
        while j < min(n, i + k) and outward[j] and free(j):
            j += 1
    else:  # ended late: move back to the last loud frame
        while j > max(0, i - k) and not loud[j - 1]:
            j -= 1
        if j == 0 or not loud[j - 1]:
            return t
    return j * FINE_HOP_S


class IpuStage(Stage):
    name = "ipus"
    version = "7"
    config_section = "ipu"
    reads = ("tracks", "vad", "crosstalk", "decrosstalk")
    SEGMENTS = Output("segments.json", read=load_segments, description="IPUs (Segment records)")
    CROSSTALK_EVENTS = Output("crosstalk_events.json", read=load_events, description="what was suppressed as leak")

    def process(self, item: WorkItem, out_dir: Path) -> None:
        rec = item.rec()
        probs = item.read(VadStage.PROBS).astype(np.float32)
        leak = item.read(CrosstalkStage.LEAK)
        mask, source, evidence = leak["mask"], leak["source"], leak["evidence"]
        cfg = self.cfg
        fine = fine_energy(str(item.path(TracksStage.AUDIO)), rec.num_channels, self.workflow.tracks.sample_rate) \
            if cfg.refine_boundaries else None
        smooth = int(round(cfg.refine_smooth_s / FINE_HOP_S))
        envelope = smoothed_db(fine, smooth) if fine is not None else None
        leak_power = item.read(DecrosstalkStage.LEAK_ENERGY)["predicted"] if cfg.refine_above_leak else None
        segments, crosstalk = [], []
        for c in range(rec.num_channels):
            hyst = hysteresis(probs[c], cfg.onset, cfg.offset)
            gap = int(round(cfg.bridge * FRAME_RATE))
            # leak runs at least as long as a bridgeable silence separate IPUs; shorter ones do not
            long_leak = np.zeros_like(hyst)
            for s, e in runs(mask[c] & hyst):
                if e - s >= gap:
                    long_leak[s:e] = True
            spans = bridge(runs(hyst & ~long_leak), gap)
            floor = noise_floor_db(envelope[c]) if fine is not None else None
            # a boundary moves out only where own speech carries refine_floor_db over noise + leak
            outer = noise_or_leak_db(floor, leak_power[c].sum(axis=0) if leak_power is not None else None,
                                      fine.shape[1]) if floor is not None else None
            # the leak mask on the 8 ms grid (a VAD frame is 32 ms = 4 fine frames)
            per = int(round(1 / FRAME_RATE / FINE_HOP_S))
            blocked = np.repeat(mask[c], per)[: fine.shape[1]] if floor is not None else None
            if blocked is not None and len(blocked) < fine.shape[1]:
                blocked = np.pad(blocked, (0, fine.shape[1] - len(blocked)))
            placed: list[tuple[float, float, int, int]] = []
            for s, e in spans:
                speech = hyst[s:e].sum()
                leak_share = mask[c, s:e][hyst[s:e]].sum() / max(speech, 1)
                if leak_share >= cfg.max_crosstalk_share:
                    continue  # mostly another speaker's voice: reported as a crosstalk event below
                # residual leak only at the edges (the canceller removed the bulk): trim it, but
                # never split an IPU inside, where soft own speech under loud overlap looks alike
                while s < e and (mask[c, s] or not hyst[s]):
                    s += 1
                while e > s and (mask[c, e - 1] or not hyst[e - 1]):
                    e -= 1
                if e <= s:
                    continue
                start, end = s / FRAME_RATE, e / FRAME_RATE
                if floor is not None:
                    thr, out_thr = floor + cfg.refine_floor_db, outer + cfg.refine_floor_db
                    start = snap(start, envelope[c], thr, cfg.refine_range, True, blocked, out_thr)
                    end = snap(end, envelope[c], thr, cfg.refine_range, False, blocked, out_thr)
                    start = trim_edge(start, fine[c], thr, True, smooth)
                    end = trim_edge(end, fine[c], thr, False, smooth)
                if placed and start - placed[-1][1] < cfg.bridge:
                    # the snapped (8 ms) silence is shorter than the bridge: one IPU after all
                    start, s = placed[-1][0], placed[-1][2]
                    placed.pop()
                if end - start < cfg.min_duration:
                    continue
                placed.append((start, end, s, e))
            for start, end, s, e in placed:
                segments.append(Segment(
                    rec.recording_id, c, rec.speaker(c), round(start, 3), round(min(end, rec.duration), 3),
                    round(float(probs[c, s:e].mean()), 4), "vad",
                    round(float(mask[c, s:e].sum() / FRAME_RATE), 3)))
            for s, e in runs(mask[c] & hyst):
                if (e - s) / FRAME_RATE < 0.1:
                    continue
                src = np.bincount(source[c, s:e][source[c, s:e] >= 0]).argmax()
                crosstalk.append(Event(
                    rec.recording_id, "crosstalk", c, round(s / FRAME_RATE, 3), round(e / FRAME_RATE, 3),
                    round(float(evidence[c, s:e].mean()), 3), "crosstalk",
                    {"source_channel": int(src), "suppressed": True,
                     "mean_rho2": round(float(evidence[c, s:e].mean()), 3)}, rec.speaker(c)))
        write_json(out_dir / self.SEGMENTS.file, record_dicts(segments))
        write_json(out_dir / self.CROSSTALK_EVENTS.file, record_dicts(crosstalk))
