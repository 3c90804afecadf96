"""Offset and clock-drift estimation for recordings that arrive as one file per phone, and resampling
onto the first channel's clock.

Each phone's microphone picks up a faint copy of the other person's voice (the leak: acoustic,
or the earpiece's echo of the call, delayed by a few to a few hundred ms). That shared evidence is
what the two files are synchronised on. Nothing here touches the pipeline's files: `estimate_sync`
and `apply_sync` are pure functions of arrays; `load_for_sync` and `SyncedStream` read files.

Sign conventions (used by every function here)
------------------------------------------------
* ``offset_s > 0``: the other file's first sample was recorded ``offset_s`` seconds *after* the
  reference's first sample (the other file starts later); ``offset_s < 0``: it started earlier.
* ``drift_ppm > 0``: the other device's clock runs fast: for every second of reference clock it
  recorded ``(1 + drift_ppm * 1e-6) * rate`` samples at a nominal ``rate`` (its file is longer).
* Mapping: reference time ``t`` (seconds from the reference's first sample) is other-file time
  ``tau = (t - offset_s) * (1 + drift_ppm * 1e-6)``, i.e. other sample index ``tau * rate``.
  `SyncEstimate.other_time` implements it; `apply_sync` resamples the other file with it so that
  its sample ``j`` is reference sample ``j``.

Method
------
Both signals are band-limited to the telephone band (300-3400 Hz at an 8 kHz analysis rate, so
codecs, mu-law and telephone filtering do not matter) and whitened frame by frame (32 ms STFT:
every time-frequency bin keeps only its phase), so a normalised cross-correlation of whitened
signals is a short-time GCC-PHAT. Each channel is whitened twice: all bins, and only the bins at
least 6 dB above that bin's noise floor (the channel's own talker). Two correlations follow:
A = own-talker bins of the reference against all of the other (the reference talker's voice
leaking into the other phone: lag ``-offset + leak(ref->other)``), and B = all of the reference
against the own-talker bins of the other (the other talker leaking into the reference phone: lag
``-offset - leak(other->ref)``). Keeping only a talker's bins on one side drops the noise of the
empty bins, about doubling the peak's z-score for a weak leak.

1. Coarse: probe windows (8 s, back to back over the reference, at most 32, visited ends first and
   stopping once 4 probes on one line span 40 % of the reference) are each correlated by FFT
   (O(N log N)) against all of the other file they can be in (+-max_offset, +-drift, +-leak), at
   2 kHz (300-950 Hz, where speech is strongest), for a grid of drift hypotheses fine enough that
   the drift left inside one probe smears its peak by at most a quarter period of the highest
   frequency used (11 hypotheses for +-300 ppm). The significant peaks of all probes go into an
   exhaustive RANSAC line fit (lag vs time, slope = drift; the line reaching the most probes, ties
   broken by its peaks' summed z, since a reverberant leak's reflections a few ms from the direct
   path can line up across a short call's few probes at a slope hundreds of ppm off): a coarse
   offset and drift, locked onto one direction of the leak.
2. Fine: the whole whitened other file is resampled by the coarse drift (soxr) and shifted by the
   coarse offset; windows (8 s, hop 4 s, at most 400 spread over the overlap) are correlated (A and
   B) within +-(2 * max leak delay + 50 ms) of the coarse line. The two strongest peaks of each
   window and correlation are kept when they stand out from that window's own correlation floor
   (z-score against the RMS of the values, peaks excluded; threshold from a false-alarm rate of
   0.1 per window over the number of independent lags), at sub-sample (parabolic) positions.
   When the refined drift differs from the coarse one by over 1 ppm, this runs once more on the
   refined clock.
3. RANSAC through all peaks fixes the slope; the modes of the lags around it (within 0.5 ms) are
   the candidate lines, each with its significance (below). A line's direction is the correlation
   that holds it more strongly (z summed over all windows at the line's lag): a strong leak that
   also clears the other channel's noise mask still correlates more in its own correlation. The
   strongest significant line of each direction is taken as that direction's direct path (the
   weaker ones are reflections, or sidelobes a pitch period away; a reflection stronger than the
   direct path would bias the offset by half its extra delay). A least-squares fit with a common
   slope and one intercept per line refines them.
   * Both directions found (A line not below the B line): the offset is the mean of the two
     intercepts, which cancels the leak delay when it is the same both ways (two phones in one
     room, or a call's symmetric network latency). When the delays differ, the offset is off by
     half their difference (``(leak_ref_to_other - leak_other_to_ref) / 2``): nothing in the
     recordings tells that apart from a real offset. The mean delay is reported as
     ``leak_delay_ms``.
   * One direction only: the offset carries that direction's (unknown) leak delay; the estimate is
     kept (the drift is unaffected, the bias is at most the leak delay) but the method says
     ``one-way``, a note says so and the confidence is halved. When both leak delays are under
     the 0.5 ms tolerance, the two lines coincide and this is what is reported (with no bias).
4. Significance (a-contrario): the expected number of chance alignments as good as the one found,
   over every offset x drift line that was searched, is ``NFA = tests * P(Binomial(n, p) >= k)``,
   with n windows that had a peak, k of them on the line, and p the chance that a peak of
   unrelated audio falls within the tolerance of a given line. Accepted only when NFA <= 1e-3 for
   the line used (and for both lines of a two-way fit), with at least 4 windows on it and standard
   errors under 5 ms and 5 ppm; otherwise offset and drift are 0 (keep the files as they are) and
   `reason` says why: never a silent wrong sync. ``confidence = min(1, -log10(NFA) / 20)``
   (halved for one-way): about 0.15 is the acceptance bound, 1.0 means NFA <= 1e-20.

Cost is linear in the duration (decimation, whitening, one resampling pass, a capped number of
fixed-size FFT windows); memory is the two signals at 8 kHz (about 115 MB per hour each, float32).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Iterator, Sequence

import numpy as np
import soundfile as sf
import soxr

ANALYSIS_RATE = 8000
BAND_HZ = (300.0, 3400.0)
COARSE_RATE = 2000
MASK_FACTOR = 4.0  # a bin belongs to the channel's own talker above 4x its noise floor (6 dB)
FRAME = 256  # whitening STFT frame at the analysis rate (32 ms), hop FRAME // 2
PROBE_S = 8.0  # coarse probe window
MAX_PROBES = 32
WINDOW_S = 8.0  # fine window, hop WINDOW_S / 2
MAX_WINDOWS = 400
WINDOW_ALPHA = 0.1  # per-window false-alarm rate of a correlation peak
ACCEPT_NFA = 1e-3
MIN_WINDOWS = 4  # fewer inlier windows than this never counts as evidence
TOL_S = 0.5e-3  # fine inlier tolerance (4 samples at 8 kHz)
COARSE_TOL_S = 1.0e-3


@dataclass(frozen=True)
class SyncEstimate:
    """How the other file maps onto the reference clock (see the module docstring for signs).

    When `reason` is set (not confident), offset_s and drift_ppm are 0: apply nothing, keep the
    files as they are, and report `reason` as a warning.
    """

    offset_s: float
    drift_ppm: float
    confidence: float  # in [0, 1]: min(1, -log10(nfa) / 20), halved for one-way; 0 when nothing was found
    method: str  # "gcc-phat-two-way", "gcc-phat-one-way", "identity", "none"
    windows_used: int  # inlier windows behind the fit
    residual_ms: float  # RMS distance of the inlier peaks from the fitted line(s)
    reason: str | None = None  # why the estimate was refused; None when accepted
    offset_std_ms: float = float("nan")  # standard error of the fit (not counting leak asymmetry)
    drift_std_ppm: float = float("nan")
    leak_delay_ms: float = float("nan")  # mean leak delay of the two directions (two-way only)
    direction: str = ""  # "both", "reference->other", "other->reference" (whose voice leaks where)
    nfa: float = float("nan")  # expected number of chance alignments as good as this one
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def scale(self) -> float:
        """Other-file seconds per reference second."""
        return 1.0 + self.drift_ppm * 1e-6

    def other_time(self, t):
        """Other-file time of reference time `t` (seconds; arrays welcome)."""
        return (np.asarray(t, dtype=np.float64) - self.offset_s) * self.scale

    def reference_time(self, tau):
        """Reference time of other-file time `tau`."""
        return np.asarray(tau, dtype=np.float64) / self.scale + self.offset_s

    def to_dict(self) -> dict:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}

    @classmethod
    def identity(cls) -> "SyncEstimate":
        """The reference against itself."""
        return cls(0.0, 0.0, 1.0, "identity", 0, 0.0)

    @classmethod
    def refused(cls, reason: str, **extra) -> "SyncEstimate":
        return cls(0.0, 0.0, float(extra.pop("confidence", 0.0)), "none", int(extra.pop("windows_used", 0)),
                   float("nan"), reason, **extra)


# ----------------------------------------------------------------------------------- estimation
def estimate_sync(reference: np.ndarray, other: np.ndarray, rate: int, max_offset_s: float = 30.0,
                  max_drift_ppm: float = 300.0, *, max_leak_delay_s: float = 0.3) -> SyncEstimate:
    """Estimate the other file's offset and drift against the reference (mono arrays at `rate`).

    Searches offsets within +-max_offset_s, drifts within +-max_drift_ppm and leak delays up to
    max_leak_delay_s. See the module docstring for the method and the sign conventions.
    """
    fs = ANALYSIS_RATE
    ref = _prepare(reference, rate)
    oth = _prepare(other, rate)
    need = 2 * WINDOW_S
    if len(ref) < need * fs or len(oth) < need * fs:
        return SyncEstimate.refused(f"too short to sync (needs {need:.0f} s in each file)")
    wr, mr = _whiten(ref, fs)
    wo, mo = _whiten(oth, fs)
    del ref, oth
    if not np.any(mr) or not np.any(mo):
        return SyncEstimate.refused("a file is silent: nothing to sync on")
    drift_max = max_drift_ppm * 1e-6
    coarse = _coarse(wr, mr, wo, mo, fs, max_offset_s, drift_max, max_leak_delay_s)
    if coarse is None:
        return SyncEstimate.refused("no consistent alignment in the coarse search: no shared audio (leak) found")
    a_c, d_c = coarse
    off_c = -a_c / (1.0 + d_c)
    span = len(wr) / fs
    # every line the whole procedure could have picked, at the fine tolerance, both correlations
    tests = 2 * (2 * (max_offset_s + max_leak_delay_s) / (2 * TOL_S)) * max(1.0, 2 * drift_max * span / (2 * TOL_S))
    fit = _fine(wr, mr, wo, mo, fs, off_c, d_c, max_leak_delay_s, tests)
    if not isinstance(fit, str) and abs(fit["drift"] - d_c) > 1e-6:
        # the windows were smeared by the coarse drift's error: once more on the refined clock
        fit2 = _fine(wr, mr, wo, mo, fs, fit["offset"], fit["drift"], max_leak_delay_s, tests)
        if not isinstance(fit2, str) and fit2["nfa"] <= fit["nfa"]:
            fit = fit2
    if isinstance(fit, str):
        return SyncEstimate.refused(fit)
    return _decide(fit, max_offset_s, drift_max)


def estimate_sync_channels(channels: Sequence[np.ndarray], rate: int, **kwargs) -> list[SyncEstimate]:
    """One estimate per channel against channel 0 (itself: identity)."""
    return [SyncEstimate.identity()] + [estimate_sync(channels[0], ch, rate, **kwargs) for ch in channels[1:]]


def _decide(fit: dict, max_offset_s: float, drift_max: float) -> SyncEstimate:
    nfa = fit["nfa"]
    conf = min(1.0, max(0.0, -math.log10(max(nfa, 1e-300)) / 20.0))
    if fit["direction"] != "both":
        conf *= 0.5
    common = dict(windows_used=fit["k"], offset_std_ms=fit["offset_std"] * 1e3, drift_std_ppm=fit["drift_std"] * 1e6,
                  leak_delay_ms=fit["leak"] * 1e3, direction=fit["direction"], nfa=nfa, notes=tuple(fit["notes"]))
    guess = f"(best guess offset {fit['offset']:+.3f} s, drift {fit['drift'] * 1e6:+.1f} ppm)"
    if nfa > ACCEPT_NFA or fit["k"] < MIN_WINDOWS:
        return SyncEstimate.refused(f"too little evidence: {fit['k']} windows agree, NFA {nfa:.2g} > {ACCEPT_NFA:g} "
                                    + guess, confidence=conf, **common)
    if abs(fit["offset"]) > max_offset_s + 1e-3 or abs(fit["drift"]) > drift_max * 1.05 + 1e-6:
        return SyncEstimate.refused("estimate outside the search range " + guess, confidence=conf, **common)
    if not (fit["offset_std"] <= 5e-3 and fit["drift_std"] <= 5e-6):
        return SyncEstimate.refused("imprecise fit: offset +-{:.1f} ms, drift +-{:.1f} ppm {}".format(
            fit["offset_std"] * 1e3, fit["drift_std"] * 1e6, guess), confidence=conf, **common)
    method = "gcc-phat-two-way" if fit["direction"] == "both" else "gcc-phat-one-way"
    return SyncEstimate(fit["offset"], fit["drift"] * 1e6, conf, method, residual_ms=fit["residual"] * 1e3,
                        reason=None, **common)


def _prepare(x: np.ndarray, rate: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:  # (n, channels) or (channels, n): mix down
        x = x.mean(axis=int(np.argmin(x.shape)))
    x = np.where(np.isfinite(x), x, 0.0).astype(np.float32)
    if rate != ANALYSIS_RATE:
        x = soxr.resample(x, rate, ANALYSIS_RATE, quality="HQ").astype(np.float32)
    return x


def _whiten(x: np.ndarray, fs: int, chunk_frames: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Short-time phase-only transform: each in-band STFT bin divided by its magnitude (band
    BAND_HZ; sqrt-Hann analysis and synthesis, 50 % overlap), so that a cross-correlation of two
    whitened signals is a GCC-PHAT. Returns it twice: all bins, and only the bins whose energy is
    at least MASK_FACTOR times that bin's noise floor (the 20th percentile over the frames, scaled
    to a mean: this channel's own talker, not its background noise)."""
    n, hop = len(x), FRAME // 2
    win = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME) / FRAME)).astype(np.float32)
    freqs = np.fft.rfftfreq(FRAME, 1.0 / fs)
    band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
    k_total = -(-n // hop) + 1
    xp = np.zeros(k_total * hop + hop, np.float32)
    xp[hop:hop + n] = x
    frames_all = np.lib.stride_tricks.sliding_window_view(xp, FRAME)[::hop]
    # noise floor per bin, from a subsample of the frames that are not digital silence
    sample = np.abs(np.fft.rfft(frames_all[::max(1, k_total // 20000)] * win, axis=1)[:, band]) ** 2
    sample = sample[sample.sum(axis=1) > 0]
    if not len(sample):
        zero = np.zeros(n, np.float32)
        return zero, zero.copy()
    floor = np.percentile(sample, 20, axis=0) / -math.log(0.8)  # exponential: mean from the 20th percentile
    eps = max(1e-6 * float(np.sqrt(np.mean(sample))), 1e-12)
    out = np.zeros((2, k_total * hop + hop), np.float32)
    for k0 in range(0, k_total, chunk_frames):
        k1 = min(k_total, k0 + chunk_frames)
        spec = np.fft.rfft(frames_all[k0:k1] * win, axis=1)[:, band]
        power = np.abs(spec) ** 2
        phase = spec / (np.sqrt(power) + eps)
        full = np.zeros((k1 - k0, len(freqs)), np.complex64)
        for row, values in enumerate((phase, np.where(power >= MASK_FACTOR * floor, phase, 0))):
            full[:, band] = values
            y = np.fft.irfft(full, FRAME, axis=1).astype(np.float32) * win
            out[row, k0 * hop:k1 * hop] += y[:, :hop].reshape(-1)  # frame k covers [k*hop, k*hop + FRAME)
            out[row, (k0 + 1) * hop:(k1 + 1) * hop] += y[:, hop:].reshape(-1)
    return out[0, hop:hop + n].copy(), out[1, hop:hop + n].copy()


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n."""
    best = 1 << max(0, (n - 1).bit_length())
    f5 = 1
    while f5 < best:
        f35 = f5
        while f35 < best:
            m = f35
            while m < n:
                m *= 2
            best = min(best, m)
            f35 *= 3
        f5 *= 5
    return best


def _energy_cumsum(b: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros(b.shape[:-1] + (1,)), np.cumsum(b.astype(np.float64) ** 2, axis=-1)], axis=-1)


def _normalise(c: np.ndarray, a_energy, csum: np.ndarray, na: int) -> np.ndarray:
    """Correlation values c[..., j] = <a, b[j:j+na]> divided by |a| |b[j:j+na]| (csum: of b^2)."""
    nb = csum.shape[-1] - 1
    eb = csum[..., na:] - csum[..., :nb - na + 1]
    return c / np.sqrt(np.maximum(a_energy * eb, 1e-30))


def _zscores(c: np.ndarray) -> np.ndarray:
    """z-scores of correlation values against the row's own spread: the RMS of the values, taken
    again without those beyond 5 times it (so the peaks themselves do not inflate the floor)."""
    c = c - np.mean(c, axis=-1, keepdims=True)
    sig = np.sqrt(np.mean(c ** 2, axis=-1, keepdims=True))
    inside = np.abs(c) <= 5 * sig
    sig = np.sqrt(np.sum(np.where(inside, c ** 2, 0.0), axis=-1, keepdims=True)
                  / np.maximum(inside.sum(axis=-1, keepdims=True), 1))
    return c / np.maximum(sig, 1e-12)


def _peak_threshold(n_lags: int, band_fraction: float, trials: int = 1) -> float:
    """z above which the largest |value| of n_lags correlation lags (about band_fraction of them
    independent), over `trials` correlations, exceeds by chance with probability WINDOW_ALPHA."""
    m = max(2.0, n_lags * band_fraction * trials)
    return NormalDist().inv_cdf(1.0 - WINDOW_ALPHA / (2 * m))


def _top_peaks(z: np.ndarray, count: int, exclude: int) -> list[tuple[float, float]]:
    """Up to `count` (sub-sample index, |z|) of the largest |z| peaks, `exclude` samples apart
    (polarity does not matter: a leak may be inverted)."""
    mag = np.abs(z)  # a new array: z is left alone
    peaks = []
    for _ in range(count):
        i = int(np.argmax(mag))
        if not np.isfinite(mag[i]) or mag[i] <= 0:
            break
        mag[max(0, i - exclude):i + exclude + 1] = -np.inf
        sign = 1.0 if z[i] >= 0 else -1.0
        frac = 0.0
        if 0 < i < len(z) - 1:
            y0, y1, y2 = sign * z[i - 1], sign * z[i], sign * z[i + 1]
            den = y0 - 2 * y1 + y2
            if den < 0:
                frac = float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5))
        peaks.append((i + frac, float(abs(z[i]))))
    return peaks


# ------------------------------------------------------------------------------------ coarse
def _probe_order(n: int) -> list[int]:
    """0 .. n-1 in an order that covers the range evenly early on (ends first, then halving)."""
    if n <= 2:
        return list(range(n))
    order, seen = [0, n - 1], {0, n - 1}
    step = n - 1
    while len(order) < n:
        step = max(1, step // 2)
        for i in range(0, n, step):
            if i not in seen:
                seen.add(i)
                order.append(i)
    return order


def _coarse(wr, mr, wo, mo, fs: int, max_offset: float, drift_max: float,
            max_leak: float) -> tuple[float, float] | None:
    """Line lag = a + s * t (lag = other time - reference time, t the reference time) through the
    probes' significant peaks: (a, s), or None when no two probes agree."""
    fc = COARSE_RATE
    r, rm, o, om = (soxr.resample(v, fs, fc, quality="HQ").astype(np.float32) for v in (wr, mr, wo, mo))
    n_probe = int(PROBE_S * fc)
    f_max = 0.95 * fc / 2
    band_fraction = (f_max - BAND_HZ[0]) / (fc / 2)
    # drift grid: the residual drift smears a probe's peak by at most 1/(4 f_max) end to end
    step = 1.0 / (2 * f_max * PROBE_S)
    n_hyp = int(math.ceil(2 * drift_max / step)) + 1 if drift_max > 0 else 1
    hyps = np.linspace(-drift_max, drift_max, n_hyp) if n_hyp > 1 else np.zeros(1)
    last = len(r) / fc - PROBE_S
    n_probes = int(min(MAX_PROBES, max(1, math.floor(last / PROBE_S) + 1)))  # back to back, or spread
    starts = np.linspace(0.0, last, n_probes)
    cands: list[tuple[float, float, int]] = []  # (t, lag, probe)
    best = None
    done = 0
    for done, p in enumerate(_probe_order(n_probes), 1):
        t = float(starts[p])
        i0 = int(round(t * fc))
        pr, prm = r[i0:i0 + n_probe], rm[i0:i0 + n_probe]
        reach = max_offset * (1 + drift_max) + drift_max * (t + max_offset) + max_leak + 0.05
        lo = max(0, int(math.floor((t - reach) * fc)))
        hi = min(len(o), int(math.ceil((t + reach + PROBE_S * (1 + drift_max)) * fc)) + 1)
        if np.any(prm) and hi - lo >= n_probe * (1 + drift_max) + 2:
            found = []
            segs = (o[lo:hi], om[lo:hi])
            nb = hi - lo
            nfft = _fast_len(nb)
            specs = [np.fft.rfft(v, nfft) for v in segs]
            csums = [_energy_cumsum(v) for v in segs]
            thr = _peak_threshold(nb - n_probe, band_fraction, 2 * n_hyp)
            for d in hyps:
                # A: the reference talker (masked reference) in all of the other; B: the reverse
                for a, csum, spec in ((prm, csums[0], specs[0]), (pr, csums[1], specs[1])):
                    a = soxr.resample(a, fc, fc * (1 + d), quality="HQ") if d else a
                    na = len(a)
                    energy = float(np.sum(a.astype(np.float64) ** 2))
                    if energy <= 0:
                        continue
                    c = np.fft.irfft(np.conj(np.fft.rfft(a, nfft)) * spec, nfft)[:nb - na + 1]
                    z = _zscores(_normalise(c, energy, csum, na))
                    found.extend(((lo + idx) / fc - t, zz) for idx, zz in _top_peaks(z, 2, int(0.002 * fc))
                                 if zz >= thr)
            found.sort(key=lambda c: -c[1])  # one candidate per distinct lag (hypotheses near the truth agree)
            kept: list[tuple[float, float]] = []
            for lag, zz in found:
                if all(abs(lag - k) > 2 * COARSE_TOL_S for k, _ in kept):
                    kept.append((lag, zz))
            cands.extend((t, lag, p, zz) for lag, zz in kept)
        if done >= 8 and (done % 4 == 0 or done == n_probes):
            best = _coarse_line(cands, drift_max)
            # enough: four probes on one line, spanning at least 40 % of the reference
            if best is not None and best[2] >= 4 and best[3] >= 0.4 * last:
                break
    if done < 8:
        best = _coarse_line(cands, drift_max)
    if best is None or best[2] < 2:
        return None
    return best[0], best[1]


def _coarse_line(cands, drift_max) -> tuple[float, float, int, float] | None:
    """RANSAC (exhaustive over pairs) line through the probe candidates: (a, s, probes, span). A line
    is scored by the probes on it, then by the strength of its peaks (the z of each probe's
    strongest peak on it, summed): with few probes, lines through a reverberant leak's reflections
    (a few ms from the direct path, so a slope of hundreds of ppm over a short call) can reach as
    many probes as the direct path's, whose peaks are the stronger ones."""
    if len({c[2] for c in cands}) < 2:
        return None
    t_arr = np.array([c[0] for c in cands])
    lag_arr = np.array([c[1] for c in cands])
    pid = np.array([c[2] for c in cands])
    z_arr = np.array([c[3] for c in cands])
    best = None
    n = len(cands)
    for i in range(n):
        for j in range(i + 1, n):
            if pid[i] == pid[j] or abs(t_arr[j] - t_arr[i]) < PROBE_S / 2:
                continue
            s = (lag_arr[j] - lag_arr[i]) / (t_arr[j] - t_arr[i])
            if abs(s) > drift_max * 1.05 + 5e-6:
                continue
            a = lag_arr[i] - s * t_arr[i]
            r = np.abs(lag_arr - (a + s * t_arr))
            inl = r <= COARSE_TOL_S
            strongest: dict[int, float] = {}
            for probe, zz in zip(pid[inl].tolist(), z_arr[inl].tolist()):
                strongest[probe] = max(zz, strongest.get(probe, 0.0))
            score = (len(strongest), sum(strongest.values()))
            if best is None or score > best[0]:
                best = (score, inl)
    if best is None:
        return None
    inl = best[1]
    s, a = np.polyfit(t_arr[inl], lag_arr[inl], 1)
    return float(a), float(s), best[0][0], float(np.ptp(t_arr[inl]))


# -------------------------------------------------------------------------------------- fine
def _fine(wr, mr, wo, mo, fs, off_c, d_c, max_leak, tests) -> dict | str:
    """Windows around the coarse line; returns the fit (dict) or a reason (str)."""
    # other on the coarse reference clock: sample m <-> other time m (1 + d_c) / fs
    wo2, mo2 = (soxr.resample(v, fs * (1 + d_c), fs, quality="VHQ").astype(np.float32) for v in (wo, mo))
    shift = off_c * fs  # reference sample n <-> wo2 sample n - shift
    reach = 2 * max_leak + 0.05
    rs = int(math.ceil(reach * fs))
    nw = int(WINDOW_S * fs)
    first = max(0, int(math.ceil(shift)))
    last = min(len(wr), int(math.floor(len(wo2) + shift))) - nw
    if last < first:
        return "too little overlap between the files to sync"
    hop = max(nw // 2, (last - first) // MAX_WINDOWS + 1)
    starts = np.arange(first, last + 1, hop)
    if len(starts) < MIN_WINDOWS:
        return f"too little overlap between the files to sync ({(last - first + nw) / fs:.1f} s)"
    int_shift = int(math.floor(shift))
    frac_shift = shift - int_shift
    pad = np.zeros(rs + 1, np.float32)
    tail = np.zeros(rs + nw + 1, np.float32)
    wo2p, mo2p = (np.concatenate([pad, v, tail]) for v in (wo2, mo2))
    band_fraction = (BAND_HZ[1] - BAND_HZ[0]) / (fs / 2)
    thr = _peak_threshold(2 * rs + 1, band_fraction, 2)
    view = np.lib.stride_tricks.sliding_window_view
    nb = nw + 2 * rs
    nfft = _fast_len(nb)
    rows = []  # (t, lag, window, class, z): class True = A (reference talker leaking into the other)
    zs = {True: np.zeros((len(starts), nb - nw + 1), np.float32), False: np.zeros((len(starts), nb - nw + 1), np.float32)}
    for b0 in range(0, len(starts), 16):
        st = starts[b0:b0 + 16]
        m0 = st - int_shift + 1  # index in the padded other of (n - int_shift - rs)
        for cls, a, b in ((True, view(mr, nw)[st], view(wo2p, nb)[m0]), (False, view(wr, nw)[st], view(mo2p, nb)[m0])):
            energy = np.sum(a.astype(np.float64) ** 2, axis=1, keepdims=True)
            c = np.fft.irfft(np.conj(np.fft.rfft(a, nfft, axis=1)) * np.fft.rfft(b, nfft, axis=1), nfft, axis=1)
            z = _zscores(_normalise(c[:, :nb - nw + 1], energy, _energy_cumsum(b), nw))
            for row in range(len(st)):
                if energy[row, 0] <= 0 or not np.any(b[row]):
                    continue
                zs[cls][b0 + row] = np.abs(z[row])
                for idx, zz in _top_peaks(z[row], 2, int(0.002 * fs)):
                    if zz >= thr:  # lag (s) relative to the coarse line
                        rows.append((st[row] / fs, (idx - rs + frac_shift) / fs, b0 + row, cls, zz))
    n_windows = len(starts)
    peak_windows = len({r[2] for r in rows})
    if peak_windows < MIN_WINDOWS:
        return (f"too little evidence: only {peak_windows} of {n_windows} windows show a correlation peak "
                "(no leak between the files, or silence)")
    t, lag, win, cls, _ = (np.array(v) for v in zip(*rows))
    cls = cls.astype(bool)
    # 1. slope: RANSAC over all peaks
    s0, a0 = _ransac_line(t, lag, win, max(5e-6, 2 * TOL_S / max(float(np.ptp(t)), 1.0)) + 20e-6)
    resid = lag - (a0 + s0 * t)
    # 2. lines (modes of the residual lag) in each correlation, with their significance
    p_line = 2 * TOL_S / (2 * reach)
    local_tests = 6 * (2 * reach) / (2 * TOL_S)
    lines: list[dict] = []
    for c in (True, False):
        sel = cls == c
        n_c = len(np.unique(win[sel]))
        if not n_c:
            continue
        p_c = min(1.0, p_line * sel.sum() / n_c)  # a window's peaks (up to 2) fall on a line by chance
        for centre, k in _modes(resid[sel], win[sel], 3):
            tail = _binom_tail(n_c, k, p_c)
            same = [d for d in lines if abs(d["centre"] - centre) <= 2 * TOL_S]
            if same:  # found in both correlations: one line
                same[0]["tail"], same[0]["k"] = min(same[0]["tail"], tail), max(same[0]["k"], k)
            else:
                lines.append(dict(centre=centre, k=k, tail=tail))
    if not lines:
        return "too little evidence: no line of correlation peaks"
    main = min(lines, key=lambda d: d["tail"])
    # which direction each line is: the A correlation (reference talker only) holds the
    # reference->other leak more strongly than the B correlation does, and vice versa; summed over
    # the windows at the line's lag (cross-over of a strong leak into the other mask does not flip it)
    t_win = starts / fs
    for line in lines:
        line["nfa"] = (tests if line is main else local_tests) * line["tail"]
        idx = np.rint((a0 + s0 * t_win + line["centre"] - frac_shift / fs) * fs).astype(int) + rs
        idx = np.clip(idx, 1, zs[True].shape[1] - 2)
        rows_i = np.arange(len(starts))
        line["sA"], line["sB"] = (float(np.sum(np.max([zs[c][rows_i, idx + d] for d in (-1, 0, 1)], axis=0)))
                                  for c in (True, False))
        line["A"] = line["sA"] > line["sB"]
    # 3. two-way: the strongest A line (the direct path of the reference talker into the other
    # phone; weaker lines of the same direction are its reflections, or sidelobes one pitch period
    # away) and the strongest B line (the other talker into the reference phone), A not below B
    # (leak delays are >= 0)
    sig = [d for d in lines if d["nfa"] <= ACCEPT_NFA]
    ups = [d for d in sig if d["A"]]
    lows = [d for d in sig if not d["A"]]
    pair = None
    if ups and lows:
        up = max(ups, key=lambda d: d["sA"])
        low = max(lows, key=lambda d: d["sB"])
        if up["centre"] >= low["centre"] - TOL_S:
            pair = (up, low)
    notes = []
    chosen = list(pair) if pair else [main]
    fit = _joint_fit(t, lag, win, [a0 + line["centre"] for line in chosen], s0)
    if fit is None and pair:
        chosen = [main]
        fit = _joint_fit(t, lag, win, [a0 + main["centre"]], s0)
    if fit is None:
        return "too little evidence: no line of correlation peaks"
    if len(chosen) == 2:
        direction = "both"
        sep = fit["intercepts"][0] - fit["intercepts"][1]
        strong, weak = sorted(chosen, key=lambda d: d["tail"])
        nfa = max(tests * strong["tail"], local_tests * weak["tail"])
    else:
        direction = "reference->other" if main["A"] else "other->reference"
        sep = float("nan")
        nfa = main["nfa"]
        notes.append(f"only one leak direction found ({direction}): the offset includes that leak's delay "
                     f"(up to {max_leak * 1e3:.0f} ms; under {TOL_S * 1e3:g} ms when both delays are that short)")
    # convert: lag(t) = c + s t with other time u = t - off_c + lag on the coarse clock, tau = u (1 + d_c)
    s, c = fit["slope"], fit["intercept"]
    drift = (1 + s) * (1 + d_c) - 1
    offset = (off_c - c) / (1 + s)
    return dict(offset=offset, drift=drift, offset_std=fit["c_std"] / (1 + s), drift_std=fit["s_std"] * (1 + d_c),
                k=fit["k"], residual=fit["residual"], nfa=nfa, direction=direction,
                leak=sep / 2, notes=notes)


def _ransac_line(t, lag, win, slope_max, iters: int = 400) -> tuple[float, float]:
    """Slope and intercept of the line with peaks from the most windows within TOL_S
    (deterministic sampling)."""
    rng = np.random.default_rng(0)
    n = len(t)
    centre, _ = _mode(lag, win)  # the horizontal line through the densest lag (short files, zero slope)
    r = np.abs(lag - centre)
    best, best_line = (len(np.unique(win[r <= TOL_S])), -float(np.sum(r[r <= TOL_S]))), (0.0, centre)
    if n >= 2:
        i = rng.integers(0, n, iters)
        j = rng.integers(0, n, iters)
        ok = np.abs(t[j] - t[i]) >= WINDOW_S
        for a_i, b_i in zip(i[ok], j[ok]):
            s = (lag[b_i] - lag[a_i]) / (t[b_i] - t[a_i])
            if abs(s) > slope_max:
                continue
            a = lag[a_i] - s * t[a_i]
            r = np.abs(lag - a - s * t)
            inl = r <= TOL_S
            score = (len(np.unique(win[inl])), -float(np.sum(r[inl])))
            if score > best:
                best, best_line = score, (s, a)
    return best_line


def _mode(values: np.ndarray, win: np.ndarray) -> tuple[float, int]:
    """Centre of the 2 * TOL_S wide interval holding peaks from the most windows, and that count."""
    if not len(values):
        return 0.0, 0
    order = np.argsort(values)
    v, w = values[order], win[order]
    hi = np.searchsorted(v, v + 2 * TOL_S, side="right")
    counts = hi - np.arange(len(v))
    best_k, best_c = 0, float(v[0])
    for i in np.argsort(-counts, kind="stable")[:50]:
        k = len(np.unique(w[i:hi[i]]))
        if k > best_k:
            best_k, best_c = k, float(np.median(v[i:hi[i]]))
    return best_c, best_k


def _modes(values: np.ndarray, win: np.ndarray, count: int) -> list[tuple[float, int]]:
    """Up to `count` modes, strongest first, each removing its peaks (+-2 TOL_S) before the next."""
    keep = np.ones(len(values), bool)
    out = []
    for _ in range(count):
        centre, k = _mode(values[keep], win[keep])
        if k < 2:
            break
        out.append((centre, k))
        keep &= np.abs(values - centre) > 2 * TOL_S
    return out


def _joint_fit(t, lag, win, intercepts: list[float], s0: float) -> dict | None:
    """Least squares with a common slope and one intercept per line (leak direction), on the peak
    of each window nearest each line within TOL_S (re-selected three times)."""
    lines, s = list(intercepts), s0
    for _ in range(3):
        idx_all, cols = [], []
        for ci, c in enumerate(lines):
            r = np.abs(lag - (c + s * t))
            cand = np.nonzero(r <= TOL_S)[0]
            cand = cand[np.lexsort((r[cand], win[cand]))]  # per window, nearest first
            first = cand[np.r_[True, win[cand][1:] != win[cand][:-1]]] if len(cand) else cand
            idx_all.append(first)
            cols.append(np.full(len(first), ci))
        idx, col = np.concatenate(idx_all), np.concatenate(cols)
        if len(idx) < len(lines) + 2 or any(len(x) == 0 for x in idx_all) or np.ptp(t[idx]) <= 0:
            return None
        design = np.zeros((len(idx), 1 + len(lines)))
        design[:, 0] = t[idx]
        design[np.arange(len(idx)), 1 + col] = 1.0
        y = lag[idx]
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        s, lines = float(coef[0]), [float(v) for v in coef[1:]]
    resid = y - design @ coef
    dof = max(1, len(y) - design.shape[1])
    sigma2 = max(float(np.sum(resid ** 2) / dof), (0.02e-3) ** 2)  # never better than the interpolation bias
    try:
        cov = np.linalg.inv(design.T @ design) * sigma2
    except np.linalg.LinAlgError:
        return None
    m = len(lines)
    weights = np.full(m, 1.0 / m)  # the offset is the mean of the lines
    c = float(weights @ np.array(lines))
    c_var = float(weights @ cov[1:, 1:] @ weights)
    return dict(slope=s, intercept=c, intercepts=lines, c_std=math.sqrt(max(c_var, 0.0)),
                s_std=math.sqrt(max(cov[0, 0], 0.0)), k=len(np.unique(win[idx])),
                residual=math.sqrt(float(np.mean(resid ** 2))))


def _binom_tail(n: int, k: int, p: float) -> float:
    """P(Binomial(n, p) >= k)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    logs = [math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) + j * lp + (n - j) * lq
            for j in range(k, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


# ------------------------------------------------------------------------------------ applying
def apply_sync(other: np.ndarray, rate: int, estimate: SyncEstimate, length: int) -> np.ndarray:
    """The other channel on the reference clock: sample j is reference sample j (zeros where the
    other file has no audio), `length` samples. Resamples by the drift with soxr (VHQ) and shifts
    by the offset rounded to the nearest sample (<= half a sample of error). Identity for refused
    estimates (offset 0, drift 0)."""
    x = np.asarray(other, dtype=np.float32)
    if estimate.drift_ppm:
        x = soxr.resample(x, rate * estimate.scale, rate, quality="VHQ").astype(np.float32)
    shift = int(round(estimate.offset_s * rate))  # reference sample n <-> x sample n - shift
    out = np.zeros(length, np.float32)
    lo = max(0, shift)
    hi = min(length, len(x) + shift)
    if hi > lo:
        out[lo:hi] = x[lo - shift:hi - shift]
    return out


class SyncedStream:
    """Stream one channel of a file onto the reference clock at `rate`, in blocks (bounded memory:
    one block plus the resampler's state, so hour-long files stay flat).

    One soxr stream resamples straight from the file's rate scaled by the drift to `rate`; the
    offset becomes leading zeros (other starts later) or skipped output (other starts earlier).
    `length` (reference samples) pads with zeros / trims at the end; None: until the file ends.
    """

    def __init__(self, path: str, channel: int, rate: int, estimate: SyncEstimate, length: int | None = None,
                 block_seconds: float = 30.0):
        self.path, self.channel, self.rate = path, channel, rate
        self.estimate, self.length, self.block_seconds = estimate, length, block_seconds

    def blocks(self) -> Iterator[np.ndarray]:
        """Yield float32 1-D blocks whose concatenation is `apply_sync` of the channel."""
        shift = int(round(self.estimate.offset_s * self.rate))
        emitted = 0
        limit = self.length if self.length is not None else None

        def emit(block):
            nonlocal emitted
            if limit is not None:
                block = block[:max(0, limit - emitted)]
            emitted += len(block)
            return block

        if shift > 0:
            lead = shift if limit is None else min(shift, limit)
            step = int(self.block_seconds * self.rate)
            for i in range(0, lead, step):
                yield emit(np.zeros(min(step, lead - i), np.float32))
        skip = max(0, -shift)
        with sf.SoundFile(self.path) as handle:
            in_rate = handle.samplerate * self.estimate.scale
            stream = None if in_rate == self.rate else soxr.ResampleStream(in_rate, self.rate, 1, dtype="float32",
                                                                           quality="VHQ")
            while limit is None or emitted < limit:
                raw = handle.read(int(self.block_seconds * handle.samplerate), dtype="float32", always_2d=True)
                last = len(raw) == 0
                x = np.ascontiguousarray(raw[:, self.channel]) if len(raw) else np.zeros(0, np.float32)
                y = stream.resample_chunk(x, last=last) if stream is not None else x
                y = np.asarray(y, np.float32).reshape(-1)
                if skip:
                    cut = min(skip, len(y))
                    y, skip = y[cut:], skip - cut
                if len(y):
                    yield emit(y)
                if last:
                    break
        if limit is not None and emitted < limit:
            step = int(self.block_seconds * self.rate)
            while emitted < limit:
                yield emit(np.zeros(min(step, limit - emitted), np.float32))


def load_for_sync(path: str, channel: int = 0, block_seconds: float = 30.0) -> np.ndarray:
    """One channel of a file at ANALYSIS_RATE, decoded and resampled in blocks (the result is the
    whole channel at 8 kHz: about 115 MB per hour)."""
    from duplexcorpus.audio import ChannelStream

    parts = [b[0] for b in ChannelStream([(path, channel)], ANALYSIS_RATE, block_seconds).blocks()]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def estimate_sync_files(sources: Sequence[tuple[str, int]], **kwargs) -> list[SyncEstimate]:
    """Estimates for (path, channel) sources against the first one (identity for the first)."""
    ref = load_for_sync(*sources[0])
    out = [SyncEstimate.identity()]
    for src in sources[1:]:
        out.append(estimate_sync(ref, load_for_sync(*src), ANALYSIS_RATE, **kwargs))
    return out


__all__ = ["ANALYSIS_RATE", "SyncEstimate", "SyncedStream", "apply_sync", "estimate_sync", "estimate_sync_channels",
           "estimate_sync_files", "load_for_sync"]
