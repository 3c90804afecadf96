"""Recording conditions per channel: SNR, noise floor, clipping share, effective bandwidth.

Measured from the recording itself, with the speech regions the pipeline already found (IPUs):

- **SNR** = 10 log10((P_speech - P_noise) / P_noise): P_speech is the mean power inside the
  channel's IPUs where it leads every other channel relative to their own speech levels (speech
  plus the noise under it, hence the subtraction; an IPU may hold the other voice's unattributed
  leak, see `dominant_speech`), P_noise the mean power of frames away from every channel's IPUs
  (so another speaker's leak and its reverberant tail do not count as noise; nor do digitally
  silent frames, the padding of a file that starts later); the same definition a mixer uses
  (speech power over speech-active samples).
- **noise floor** (dBFS): a low percentile of the short-frame powers of those noise frames, the level
  the channel never goes below between words (robust to a door slam or a cough in the pauses).
- **clipping share**: samples at full scale in the original input (`validation.clip_level`, the level
  ingest checks), per channel; measured on the source files, since resampling moves the plateaus.
- **effective bandwidth**: the highest frequency at which the long-term spectrum of the speech
  frames is within `bandwidth_drop_db` of its peak, classed by the nearest ITU-T band edge on a log
  scale: narrowband / telephone 3.4 kHz (G.712), wideband 7 kHz (G.722), super-wideband 14 kHz,
  fullband 20 kHz. The class boundaries are the geometric means of neighbouring band edges.

All functions are pure over arrays; the stage (stages/conditions.py) streams the audio through
`FrameStats` in blocks, so a long call never sits in memory.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import soundfile as sf

# ITU-T nominal upper band edges (Hz): G.712 narrowband, G.722 wideband, G.722.1C super-wideband, fullband
BAND_EDGES_HZ = {"telephone": 3400.0, "wideband": 7000.0, "superwideband": 14000.0, "fullband": 20000.0}
POWER_FLOOR = 1e-20  # below any real signal (-200 dBFS): keeps log10 finite on digital silence
# a frame this quiet (-150 dBFS, below one 24-bit LSB) holds no recorded noise: padding (a file that
# starts later on the shared clock, a shorter file), a muted line; it is left out of the noise frames
DIGITAL_ZERO = 1e-15
TRANSIENT_DB = 10.0  # a noise frame this far above the median noise frame is an event, not the background


@dataclass(frozen=True)
class ChannelConditions:
    """What one channel's recording conditions were (None where the evidence is missing)."""

    channel: int
    snr_db: float | None  # None: no speech, or no stretch away from all speech to measure noise on
    speech_level_dbfs: float | None  # mean power inside the IPUs (speech + noise), dB re full scale
    noise_level_dbfs: float | None  # mean power of the noise frames (the SNR's denominator)
    noise_floor_dbfs: float | None  # low percentile of the noise frames' short-frame powers
    clipped_share: float | None  # share of the source channel's samples at full scale
    bandwidth_hz: float | None  # highest frequency within bandwidth_drop_db of the speech spectrum's peak
    bandwidth: str | None  # telephone | wideband | superwideband | fullband
    speech_seconds: float = 0.0
    noise_seconds: float = 0.0  # how much audio the noise estimate rests on

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RecordingConditions:
    channels: tuple[ChannelConditions, ...]
    environment_suggested: str | None  # only when the metadata gives no environment
    device_suggested: str | None  # only when the metadata gives no device

    def to_dict(self) -> dict[str, Any]:
        return {"channels": [c.to_dict() for c in self.channels],
                "environment_suggested": self.environment_suggested, "device_suggested": self.device_suggested}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RecordingConditions":
        return cls(tuple(ChannelConditions(**c) for c in d["channels"]), d.get("environment_suggested"),
                   d.get("device_suggested"))


def load_conditions(path: str | Path) -> RecordingConditions:
    return RecordingConditions.from_dict(json.loads(Path(path).read_text()))


# ------------------------------------------------------------------------------------ frames
def frame_powers(x: np.ndarray, hop: int) -> np.ndarray:
    """Mean square of each non-overlapping frame of `hop` samples of a 1-D signal (a partial tail is dropped)."""
    n = len(x) // hop
    return np.mean(x[: n * hop].astype(np.float64).reshape(n, hop) ** 2, axis=1)


def frame_spectra(x: np.ndarray, hop: int, keep: np.ndarray | None = None) -> np.ndarray:
    """Power spectrum (Hann window, rfft) of each non-overlapping frame (only those in `keep`):
    [frames, hop // 2 + 1]."""
    n = len(x) // hop
    frames = x[: n * hop].astype(np.float64).reshape(n, hop)
    if keep is not None:
        frames = frames[keep[:n]]
    return np.abs(np.fft.rfft(frames * np.hanning(hop), axis=1)) ** 2


def span_mask(spans: Iterable[tuple[float, float]], n_frames: int, frame_s: float, guard_s: float = 0.0) -> np.ndarray:
    """Frames whose centre lies inside a span widened by `guard_s` on both sides."""
    centres = (np.arange(n_frames) + 0.5) * frame_s
    mask = np.zeros(n_frames, bool)
    for start, end in spans:
        mask |= (centres >= start - guard_s) & (centres < end + guard_s)
    return mask


def noise_mask(speech_spans: Sequence[Sequence[tuple[float, float]]], n_frames: int, settings: Settings) -> np.ndarray:
    """The frames the noise is measured on: as far from every channel's speech as the recording
    allows, `guard_s` at most (a leaked voice and its reverberant tail are not background noise):
    the guard is halved (guard_s, /2, /4, then none) until at least `min_seconds` remain; when even
    the frames outside all IPUs are fewer (a meeting where someone always talks): none, and no SNR,
    rather than a leak taken for noise."""
    min_frames = int(round(settings.min_seconds / settings.frame_s))
    all_spans = [span for spans in speech_spans for span in spans]
    for guard in (settings.guard_s, settings.guard_s / 2, settings.guard_s / 4, 0.0):
        quiet = ~span_mask(all_spans, n_frames, settings.frame_s, guard)
        if quiet.sum() >= min_frames:
            return quiet
    return np.zeros(n_frames, bool)


# ---------------------------------------------------------------------------------- measures
def dbfs(power: float) -> float:
    return float(10 * np.log10(max(power, POWER_FLOOR)))


def snr_db(speech_powers: np.ndarray, noise_powers: np.ndarray) -> float | None:
    """10 log10((P_speech - P_noise) / P_noise) over frame powers; None without both, or when the
    speech stretches are no louder than the noise (nothing left to call speech)."""
    if len(speech_powers) == 0 or len(noise_powers) == 0:
        return None
    p_speech, p_noise = float(np.mean(speech_powers)), noise_power(noise_powers)
    if p_noise <= POWER_FLOOR:
        return None  # digital silence between words: no noise to measure
    if p_speech <= p_noise:
        return None
    return float(10 * np.log10((p_speech - p_noise) / p_noise))


def noise_power(noise_powers: np.ndarray) -> float:
    """Mean power of the noise frames, leaving out transients more than TRANSIENT_DB above their
    median: a background does not jump tenfold within 20 ms, a missed word, a laugh or a click does,
    and a few of them would dominate the mean of a quiet line."""
    if len(noise_powers) == 0:
        return 0.0
    steady = noise_powers[noise_powers <= np.median(noise_powers) * 10 ** (TRANSIENT_DB / 10)]
    return float(np.mean(steady))


def noise_floor_dbfs(noise_powers: np.ndarray, percentile: float) -> float | None:
    if len(noise_powers) == 0:
        return None
    return dbfs(float(np.percentile(noise_powers, percentile)))


def effective_bandwidth(ltas: np.ndarray, rate: int, drop_db: float, smooth_hz: float = 200.0) -> float | None:
    """The highest frequency (Hz) at which the long-term average spectrum `ltas` (power, rfft bins
    0..rate/2) smoothed over `smooth_hz` is within `drop_db` of its peak; None for an empty spectrum."""
    if ltas.size < 2 or not np.any(ltas > 0):
        return None
    bin_hz = rate / 2 / (len(ltas) - 1)
    width = max(1, int(round(smooth_hz / bin_hz)))
    smooth = np.convolve(ltas, np.ones(width) / width, mode="same")
    level = 10 * np.log10(np.maximum(smooth, POWER_FLOOR))
    above = np.flatnonzero(level >= level.max() - drop_db)
    return float(above[-1] * bin_hz)


def bandwidth_class(edge_hz: float | None) -> str | None:
    """The ITU-T band whose nominal upper edge is nearest on a log scale (boundaries: geometric means)."""
    if edge_hz is None:
        return None
    names, edges = list(BAND_EDGES_HZ), list(BAND_EDGES_HZ.values())
    for k in range(len(edges) - 1):
        if edge_hz < np.sqrt(edges[k] * edges[k + 1]):
            return names[k]
    return names[-1]


def clipped_counts(path: str, clip_level: float, block_frames: int = 1 << 18) -> tuple[np.ndarray, int]:
    """Per source channel: samples with |x| >= clip_level, and the frames decoded (one streaming pass)."""
    counts, frames = None, 0
    with sf.SoundFile(path) as handle:
        for block in handle.blocks(blocksize=block_frames, dtype="float64", always_2d=True):
            hits = (np.abs(np.nan_to_num(block)) >= clip_level).sum(axis=0)
            counts = hits if counts is None else counts + hits
            frames += len(block)
    return (counts if counts is not None else np.zeros(0, int)), frames


# ------------------------------------------------------------------------------- accumulation
class FrameStats:
    """One channel's frame powers and per-frame speech spectra, fed block by block (blocks must be
    whole frames long except the last); the speech mask is known beforehand (the IPUs)."""

    def __init__(self, hop: int, speech: np.ndarray):
        self.hop, self.speech = hop, speech
        self.powers: list[np.ndarray] = []
        self.spectrum_sum = np.zeros(hop // 2 + 1)
        self.frames = 0

    def add(self, x: np.ndarray) -> None:
        p = frame_powers(x, self.hop)
        k0, k1 = self.frames, self.frames + len(p)
        speech = self.speech[k0:k1]
        if len(speech) < len(p):  # audio beyond the mask: not speech
            speech = np.concatenate([speech, np.zeros(len(p) - len(speech), bool)])
        if speech.any():
            self.spectrum_sum += frame_spectra(x, self.hop, speech).sum(axis=0)
        self.powers.append(p)
        self.frames = k1

    def all_powers(self) -> np.ndarray:
        return np.concatenate(self.powers) if self.powers else np.zeros(0)


@dataclass(frozen=True)
class Settings:
    frame_s: float = 0.02
    guard_s: float = 0.3
    min_seconds: float = 1.0
    noise_floor_percentile: float = 10.0
    bandwidth_drop_db: float = 45.0


def channel_conditions(channel: int, powers: np.ndarray, speech_spectrum: np.ndarray, rate: int,
                       speech: np.ndarray, noise: np.ndarray, settings: Settings,
                       clipped_share: float | None) -> ChannelConditions:
    """The measures from one channel's frame powers, its summed IPU-frame spectrum and the frame masks
    (`speech`: the frames its speech power is measured on)."""
    n = len(powers)
    speech, noise = speech[:n], noise[:n] & (powers >= DIGITAL_ZERO)
    speech_p, noise_p = powers[speech], powers[noise]
    edge = effective_bandwidth(speech_spectrum, rate, settings.bandwidth_drop_db) if speech.any() else None
    return ChannelConditions(
        channel=channel, snr_db=_round(snr_db(speech_p, noise_p), 2),
        speech_level_dbfs=_round(dbfs(float(speech_p.mean())), 2) if len(speech_p) else None,
        noise_level_dbfs=_round(dbfs(noise_power(noise_p)), 2) if len(noise_p) else None,
        noise_floor_dbfs=_round(noise_floor_dbfs(noise_p, settings.noise_floor_percentile), 2),
        clipped_share=clipped_share, bandwidth_hz=_round(edge, 0), bandwidth=bandwidth_class(edge),
        speech_seconds=round(float(speech.sum() * settings.frame_s), 2),
        noise_seconds=round(float(noise.sum() * settings.frame_s), 2))


def measure_channels(audio: np.ndarray, rate: int, speech_spans: Sequence[Sequence[tuple[float, float]]],
                     settings: Settings = Settings(), clipped_shares: Sequence[float | None] | None = None
                     ) -> list[ChannelConditions]:
    """The conditions of every channel of an in-memory [channels, samples] array, given each
    channel's speech spans (s). The stage does the same in blocks."""
    hop = int(round(settings.frame_s * rate))
    n = audio.shape[1] // hop
    own, noise = speech_masks(speech_spans, n, settings)
    stats = []
    for c in range(audio.shape[0]):
        stats.append(FrameStats(hop, own[c]))
        stats[c].add(audio[c])
    speech = dominant_speech(own, [st.all_powers() for st in stats], settings)
    return [channel_conditions(c, st.all_powers(), st.spectrum_sum, rate, speech[c], noise[c], settings,
                               None if clipped_shares is None else clipped_shares[c]) for c, st in enumerate(stats)]


def speech_masks(speech_spans: Sequence[Sequence[tuple[float, float]]], n_frames: int,
                 settings: Settings) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per channel: its IPU frames, and the frames its noise is measured on."""
    own = [span_mask(spans, n_frames, settings.frame_s) for spans in speech_spans]
    noise = noise_mask(speech_spans, n_frames, settings)
    return own, [noise] * len(own)


def dominant_speech(own: Sequence[np.ndarray], powers: Sequence[np.ndarray], settings: Settings) -> list[np.ndarray]:
    """Per channel: its IPU frames where it is the loudest channel relative to each channel's own
    speech level (its 95th-percentile IPU frame power), against every other channel's level over
    the preceding `guard_s` (a leak arrives up to that much later than its source). IPUs also hold
    the other voice's leak when the leak is too late or too loud to be attributed (it is quieter
    than the speaker and would pull the speech power down); a speaker's level is measured where
    they lead. Fewer than `min_seconds` of such frames: all its IPU frames."""
    n = min(len(p) for p in powers) if powers else 0
    if len(own) < 2 or n == 0:
        return [o[:n] for o in own]
    window = max(1, int(round(settings.guard_s / settings.frame_s)))
    relative = []
    for o, p in zip(own, powers):
        o, p = o[:n], p[:n]
        ref = float(np.percentile(p[o], 95)) if o.any() else float(np.max(p)) or 1.0
        relative.append(p / max(ref, POWER_FLOOR))
    view = np.lib.stride_tricks.sliding_window_view
    recent = [view(np.concatenate([np.zeros(window), r]), window + 1).max(axis=1) for r in relative]
    # a speaker's envelope: the loudest frame within guard_s either side, so the soft frames of
    # their own words (and short pauses, as in any IPU) stay with them
    envelope = [view(np.concatenate([np.zeros(window), r, np.zeros(window)]), 2 * window + 1).max(axis=1)
                for r in relative]
    min_frames = int(round(settings.min_seconds / settings.frame_s))
    out = []
    for c, o in enumerate(own):
        rival = np.max([recent[d] for d in range(len(own)) if d != c], axis=0)
        lead = o[:n] & (envelope[c] >= rival)
        out.append(lead if lead.sum() >= min_frames else o[:n])
    return out


# --------------------------------------------------------------------------- suggested labels
def suggest_environment(channels: Sequence[ChannelConditions], quiet_snr_db: float, noisy_snr_db: float) -> str | None:
    """quiet / moderate_noise / noisy from the worst channel's SNR; None when no channel has one."""
    snrs = [c.snr_db for c in channels if c.snr_db is not None]
    if not snrs:
        return None
    worst = min(snrs)
    return "quiet" if worst >= quiet_snr_db else "moderate_noise" if worst >= noisy_snr_db else "noisy"


def suggest_device(channels: Sequence[ChannelConditions]) -> str | None:
    """phone when every channel with a measured band is telephone band (a handset or a phone line);
    None otherwise: a wide band says nothing certain about the device, and one narrow channel among
    wide ones is more likely a distant or muffled talker than a phone."""
    bands = [c.bandwidth for c in channels if c.bandwidth is not None]
    return "phone" if bands and all(b == "telephone" for b in bands) else None


def _round(x: float | None, digits: int) -> float | None:
    return None if x is None else round(float(x), digits)
