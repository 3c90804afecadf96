"""Leak paths estimated per recording and channel pair, and cancelled with a filter long enough for a room.

A leak is the other speaker's voice reaching this microphone: the source channel's audio through an
acoustic (or electrical) path ``h`` -- a delay of a few to a few hundred ms, then a response that can
be a single tap (an earpiece echo, a close second mic) or a reverberant tail (RT60 0.3-0.6 s, two
people in one room). `estimate_leak_path` measures that path from the recording itself, with no
capped delay and no fixed filter length, and says how sure it is; `cancel_leak` / `LeakCanceller`
subtract the predicted leak. Pure functions of arrays: nothing here reads files or knows the stages.

Method (`estimate_leak_path`)
-----------------------------
1. Source-dominant frames (20 ms). Each channel's own speech level is the 95th percentile of its
   frame energies (its loud frames), its floor the 10th. A frame is used where the source is active
   and dominates the target, by either of two level-normalised rules:
   * lead rule: the target-to-source energy ratio is ``select_db`` below the ratio of the two
     channels' speech levels (the usual level-normalised lead; removes gain differences);
   * floor rule: the ratio is within ``select_db`` of the pair's *leak floor* (its 5th percentile
     over the source's active frames: what the target holds when only the source talks). This one
     is needed for loud leaks: with a -8 dB leak into a channel recorded 10 dB quieter, the
     target's loudest frames *are* the leak, so its "speech level" is the leak's and the lead rule
     selects nothing.
   Target samples outside these frames never enter the fit or the delay search, so the target's
   own speech cannot bias them (it only adds noise where it overlaps).
2. Delay: GCC-PHAT on those frames -- the cross-spectrum of the masked target against the source,
   summed over 4 s chunks (FFT per chunk, O(N log N) overall), whitened (phase only; bins where the
   source has no energy are dropped, so telephone band limits don't add noise), searched causally
   over ``-margin_s .. max_delay_s``; parabolic sub-sample peak. Its robust z-score (peak against
   the median/MAD of all searched lags) is one half of the confidence.
3. Response: a least-squares FIR starting ``pre_s`` before the delay, fitted on the target samples
   of the selected frames (the source's full history feeds each of them). Normal equations
   ``R h = p`` with ``p`` the exact cross-correlation (FFT per chunk) and ``R`` Toeplitz (the
   autocorrelation of the masked, shifted source), solved by Levinson (O(L^2)); diagonal loading
   ``ridge`` keeps band-limited audio well-posed. Chunks alternate between two folds; each fold's
   filter is scored on the other fold from the accumulated statistics alone (no extra pass):
   held-out error = T - 2 h.p + h.R.h. The length is the shortest of 32, 64, 128, ... taps up to
   ``max_filter_s`` whose held-out explained energy is ``length_share`` (99 %) of the best's: it grows with the
   room and stays short for a dry leak (and for a leak under the noise, where long filters only fit
   noise). The final filter is refitted on both folds.
   For all pairs of a recording use `estimate_leak_paths`: it refits each pair once more with the
   source channel cleaned of the reverse leak (`leak_regressor`), which a loud two-way leak needs.
4. What is recorded: ``level_db`` = leak energy relative to the source on the selected frames,
   estimated from the *cross-validated* covariance between prediction and target (unbiased by the
   filter's estimation noise, so it holds for leaks below the noise floor); ``erle_db`` = held-out
   energy before/after cancellation on source-dominant frames; ``residual_db`` = what remains there,
   relative to the source; ``confidence`` combines the GCC-PHAT z-score with a t-test of the held-out
   covariance over chunks (does the path predict audio it was not fitted on?), see `path_confidence`:
   the t-test's critical value follows the number of chunks, so a 30 s call's leak is not refused
   for having only 7 chunks. A path is applied only when confident, not "the same signal twice"
   (louder than ``max_level_db`` while the target never rises ``min_own_rise_db`` above its leak
   floor: no speaker of its own; the level alone cannot tell, as a channel gain difference of 15 dB
   makes a real -8 dB leak louder than its source) and improving held-out audio; a leak-free pair
   (two separate phone lines) therefore comes through unchanged.

Why least squares and not an adaptive filter (PBFDAF/NLMS, `method="nlms"`): measured in
``bench/bench_leakpath.py`` (90 s per condition; both fitted on the same source-dominant frames and
scored on the same held-out frames). LS gets the delay and level right in every condition and
cancels 16-36 dB of anechoic leaks, with a length that follows the room. A single pass of NLMS (full
0.5 s filter) misjudges the level under the noise (-5 to -8 dB off) and fails its own held-out check
(no reduction of held-out audio) in about half the conditions, so it is not applied there. It does
better than LS on the loud (-8/-12 dB) reverberant leak into the quiet channel (23-25 dB against
16-20 dB), which suggests the Toeplitz approximation or the ridge limits LS on long filters; that is
the next thing to look at. No step size, no convergence time, and a per-recording path (what the
issue asks us to record) are why LS stays the default.

Cost and memory: estimation is O(N log N) in FFT passes over 4 s chunks plus O(L^2) Levinson solves
(one per candidate length and fold); extra memory beyond the input arrays is O(chunk + L * chunks)
floats (the per-chunk cross-correlations for the t-test). Cancellation is overlap-save, O(N log L),
with memory bounded by ``LeakCanceller`` (see there), independent of the recording's length.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Iterator

import numpy as np
from scipy.linalg import matmul_toeplitz, solve_toeplitz

APPLY_CONFIDENCE = 0.5


@dataclass(frozen=True)
class LeakPath:
    """The estimated leak of a source channel into a target channel (one recording, one ordered pair)."""

    delay_s: float  # leak delay (GCC-PHAT peak; the direct path of a reverberant leak)
    level_db: float  # leak energy relative to the source's, on source-dominant frames
    filter_taps: int  # length of the fitted response (0: none)
    erle_db: float  # held-out: target energy / residual energy on source-dominant frames
    residual_db: float  # held-out residual energy relative to the source's
    confidence: float  # 0..1; applied when >= APPLY_CONFIDENCE
    reason: str  # why it is (not) applied, in words
    rate: int = 16000
    offset: int = 0  # lag of the first tap, in samples (delay - pre)
    coefs: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)
    applied: bool = False
    gcc_z: float = 0.0  # GCC-PHAT peak z-score
    holdout_t: float = 0.0  # t statistic of the held-out covariance over chunks
    dominant_s: float = 0.0  # seconds of source-dominant audio used
    method: str = "ls"

    @property
    def filter_s(self) -> float:
        return self.filter_taps / self.rate

    def record(self) -> dict:
        """JSON-ready summary (no coefficients): what the stages should write per recording and pair."""
        out = {k: v for k, v in asdict(self).items() if k != "coefs"}
        for k, v in out.items():
            if isinstance(v, float):
                out[k] = round(v, 4) if np.isfinite(v) else None
        out["filter_ms"] = round(1000 * self.filter_s, 1)
        return out


def path_confidence(gcc_z: float, holdout_t: float, chunks: int) -> float:
    """0..1 from the two independent tests of a path; >= APPLY_CONFIDENCE exactly when both pass.

    * GCC-PHAT: the peak's robust z-score over the searched lags. Under no leak the lags are roughly
      Gaussian and the largest of ~5000 of them lies near z = sqrt(2 ln 5000) ~ 4.1; the score ramps
      from 4 (chance) to 8 and passes at 6.
    * held-out covariance: one-sided Student t-test over the chunks (k - 1 degrees of freedom) at
      the 5 % level -- does the path predict audio it was not fitted on? A fixed t of 5 (the former
      gate) needs about 0.1 % significance with 7 chunks, so the leak of a 30 s call, which
      GCC-PHAT finds at z 100-400, was refused; the critical value now follows the chunk count.
      The score is 0.5 at the critical value and 1 at twice it.
    """
    if chunks < 2:
        return 0.0
    from scipy.stats import t as student_t

    critical = float(student_t.ppf(0.95, chunks - 1))
    gcc_part = float(np.clip((gcc_z - 4.0) / 4.0, 0, 1))
    t_part = float(np.clip(0.5 + (holdout_t - critical) / (2 * critical), 0, 1))
    return min(gcc_part, t_part)


def _none(reason: str, rate: int, **kw) -> LeakPath:
    base = dict(delay_s=0.0, level_db=float("-inf"), filter_taps=0, erle_db=0.0, residual_db=0.0, confidence=0.0,
                reason=reason, rate=rate)
    base.update(kw)
    return LeakPath(**base)


def _pow2(n: int) -> int:
    return 1 << int(np.ceil(np.log2(max(n, 2))))


def _frame_db(x: np.ndarray, hop: int, chunk: int = 1 << 20) -> np.ndarray:
    """Frame energies in dB, computed in chunks (float64 only one chunk at a time)."""
    n = len(x) // hop
    out = np.empty(n)
    step = max(1, chunk // hop)
    for i in range(0, n, step):
        j = min(n, i + step)
        f = x[i * hop: j * hop].astype(np.float64).reshape(j - i, hop)
        out[i:j] = 10 * np.log10(np.mean(f * f, axis=1) + 1e-12)
    return out


def _smooth(x: np.ndarray, frames: int) -> np.ndarray:
    if frames <= 1:
        return x
    k = np.ones(frames) / frames
    return np.convolve(x, k, "same")


def source_dominant(target: np.ndarray, source: np.ndarray, hop: int, select_db: float = 8.0, lag: int = 0,
                    smooth_frames: int = 10) -> tuple[np.ndarray, dict]:
    """Per frame of `hop` samples: does the source dominate the target (see the module doc, step 1)?

    Energies are smoothed over `smooth_frames` frames (turn scale, not syllable scale) and the source's
    is taken `lag` samples earlier (the leak delay, once known): choosing frames by the target's
    syllable-level energy against the source's *at the same instant* would prefer frames where the
    (delayed) leak happens to be weak, and bias the fitted level down by several dB.
    """
    et, es = _frame_db(target, hop), _frame_db(source, hop)
    n = min(len(et), len(es))
    et, es = et[:n], es[:n]
    if n < 10:
        return np.zeros(n, bool), {}
    shift = int(round(lag / hop))
    if shift > 0:
        es = np.r_[np.full(shift, es.min()), es[:-shift]]
    elif shift < 0:
        es = np.r_[es[-shift:], np.full(-shift, es.min())]
    es_raw = es
    et = 10 * np.log10(_smooth(10 ** (et / 10), smooth_frames) + 1e-12)
    es = 10 * np.log10(_smooth(10 ** (es / 10), smooth_frames) + 1e-12)
    level_t, level_s = np.percentile(et, 95), np.percentile(es, 95)
    floor_s = np.percentile(es_raw, 10)
    active = (es > max(floor_s + 10.0, level_s - 35.0)) & (es_raw > floor_s + 6.0)
    ratio = et - es
    if active.sum() < 10:
        return np.zeros(n, bool), {"level_t_db": level_t, "level_s_db": level_s}
    leak_floor = np.percentile(ratio[active], 5)
    lead = ratio <= (level_t - level_s) - select_db
    near_floor = ratio <= leak_floor + select_db
    sel = active & (lead | near_floor)
    # how far the target ever rises above its leak floor (95th percentile of the ratio over frames
    # where either channel is active): its own speaker's headroom; ~0 dB for a channel that holds
    # nothing but the other's signal
    either = active | (et > np.percentile(et, 10) + 10.0)
    own_rise = float(np.percentile(ratio[either], 95) - leak_floor)
    return sel, {"level_t_db": float(level_t), "level_s_db": float(level_s), "leak_floor_db": float(leak_floor),
                 "own_rise_db": own_rise}


def _segment(x: np.ndarray, start: int, length: int) -> np.ndarray:
    """x[start:start+length] as float64, zeros outside x."""
    out = np.zeros(length)
    lo, hi = max(start, 0), min(start + length, len(x))
    if hi > lo:
        out[lo - start: hi - start] = x[lo:hi]
    return out


def _chunks(sel: np.ndarray, hop: int, chunk_frames: int, min_frames: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start sample, end sample, sample mask) of each chunk holding enough selected frames."""
    for f0 in range(0, len(sel), chunk_frames):
        s = sel[f0: f0 + chunk_frames]
        if s.sum() >= min_frames:
            yield f0 * hop, (f0 + len(s)) * hop, np.repeat(s, hop).astype(np.float64)


def _xcorr_spectra(a: np.ndarray, a_start: int, s: np.ndarray, lo: int, hi: int, nfft: int):
    """Spectra whose product conj(A) * S inverse-transforms to c[q] = sum_i a[i] s[a_start + i - (hi - q)]:
    the cross-correlation sum_n a[n] s[n - lag] at lag = hi - q, for lag in lo..hi."""
    seg = _segment(s, a_start - hi, len(a) + hi - lo)
    return np.fft.rfft(a, nfft), np.fft.rfft(seg, nfft)


def _gcc_phat(target, source, chunks, lo: int, hi: int) -> tuple[int, float, float]:
    """Delay (samples, integer and sub-sample) and z-score of the GCC-PHAT peak over lags lo..hi."""
    nfft = None
    g = pss = None
    for c0, c1, m in chunks:
        if nfft is None:
            nfft = _pow2(len(m) + hi - lo)
            g = np.zeros(nfft // 2 + 1, complex)
            pss = np.zeros(nfft // 2 + 1)
        a = _segment(target, c0, c1 - c0) * m
        A, S = _xcorr_spectra(a, c0, source, lo, hi, nfft)
        g += np.conj(A) * S
        pss += np.abs(S) ** 2
    if nfft is None:
        return 0, 0.0, 0.0
    w = np.abs(g)
    keep = (pss > pss.max() * 1e-5) & (w > 0)
    phat = np.where(keep, g / np.where(w > 0, w, 1), 0)
    c = np.fft.irfft(phat, nfft)[: hi - lo + 1]
    vals = c[::-1]  # index j -> lag lo + j
    j = int(np.argmax(vals))
    frac = 0.0
    if 0 < j < len(vals) - 1:
        y0, y1, y2 = vals[j - 1], vals[j], vals[j + 1]
        den = y0 - 2 * y1 + y2
        frac = float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5)) if den < 0 else 0.0
    guard = max(2, (hi - lo) // 500)
    off = np.r_[vals[: max(0, j - guard)], vals[j + guard + 1:]]
    if len(off) < 10:
        return lo + j, frac, 0.0
    med = np.median(off)
    mad = 1.4826 * np.median(np.abs(off - med)) + 1e-20
    return lo + j, frac, float((vals[j] - med) / mad)


@dataclass
class _Stats:
    """Least-squares statistics of the shifted problem, per fold and per chunk."""

    r: np.ndarray  # (2, L) autocorrelation of the masked shifted source, per fold
    p: np.ndarray  # (2, L) cross-correlation target x shifted source, per fold
    t: np.ndarray  # (2,) target energy on selected samples, per fold
    chunk_p: list  # per chunk: (fold, p (L,), T)
    samples: int


def _ls_stats(target, source, chunks, offset: int, taps: int) -> _Stats:
    r = np.zeros((2, taps))
    p = np.zeros((2, taps))
    t = np.zeros(2)
    per_chunk = []
    nfft = None
    samples = 0
    for k, (c0, c1, m) in enumerate(chunks):
        fold = k % 2
        n = c1 - c0
        if nfft is None:
            nfft = _pow2(n + taps)
        a = _segment(target, c0, n) * m
        # p[i] = sum_n a[n] s[n - offset - i]: lags offset .. offset + taps - 1
        A, S = _xcorr_spectra(a, c0, source, offset, offset + taps - 1, nfft)
        pc = np.fft.irfft(np.conj(A) * S, nfft)[: taps][::-1]
        # r[k] = sum_n m[n] s'[n] s'[n - k] (s' = source shifted by offset): the mask on the lead
        # sample only, the source history unmasked, as in the normal equations of the masked fit
        u = _segment(source, c0 - offset, n) * m
        U, S2 = _xcorr_spectra(u, c0 - offset, source, 0, taps - 1, nfft)
        rc = np.fft.irfft(np.conj(U) * S2, nfft)[: taps][::-1]
        tc = float(a @ a)
        r[fold] += rc
        p[fold] += pc
        t[fold] += tc
        per_chunk.append((fold, pc, tc))
        samples += int(m.sum())
    return _Stats(r, p, t, per_chunk, samples)


def _solve(r: np.ndarray, p: np.ndarray, ridge: float) -> np.ndarray:
    col = r.copy()
    col[0] += ridge * r[0] + 1e-20
    return solve_toeplitz(col, p, check_finite=False)


def _heldout_error(h: np.ndarray, r: np.ndarray, p: np.ndarray, t: float) -> float:
    L = len(h)
    return float(t - 2 * h @ p[:L] + h @ matmul_toeplitz(r[:L], h, check_finite=False))


def estimate_leak_path(target: np.ndarray, source: np.ndarray, rate: int, max_delay_s: float = 0.3, *,
                       margin_s: float = 0.005, pre_s: float = 0.001, max_filter_s: float = 0.5,
                       min_filter: int = 32, select_db: float = 8.0, ridge: float = 1e-3, length_share: float = 0.99,
                       chunk_s: float = 4.0, min_dominant_s: float = 3.0, max_level_db: float = -3.0,
                       min_own_rise_db: float = 8.0,
                       method: str = "ls") -> LeakPath:
    """Estimate the leak of `source` into `target` (1-D arrays, same rate and clock). See the module doc.

    `method` "ls" (the default and the one to use) or "nlms" (a partitioned-block frequency-domain
    NLMS with double-talk freeze, kept for the comparison in bench/bench_leakpath.py).
    """
    n = min(len(target), len(source))
    target, source = np.asarray(target)[:n], np.asarray(source)[:n]
    hop = max(1, int(round(0.02 * rate)))
    sel, _levels = source_dominant(target, source, hop, select_db)
    dominant_s = float(sel.sum() * hop / rate)
    if dominant_s < min_dominant_s:
        return _none(f"too little source-dominant audio ({dominant_s:.1f} s)", rate, dominant_s=dominant_s)
    chunk_frames = max(1, int(round(chunk_s * rate / hop)))
    min_frames = max(1, chunk_frames // 20)
    chunks = list(_chunks(sel, hop, chunk_frames, min_frames))
    if len(chunks) < 4:
        return _none("source-dominant audio in too few chunks", rate, dominant_s=dominant_s)

    lo, hi = -int(round(margin_s * rate)), int(round(max_delay_s * rate))
    lag, frac, gcc_z = _gcc_phat(target, source, chunks, lo, hi)
    # re-select with the source's energy taken at the leak delay (see `source_dominant`)
    sel, _levels = source_dominant(target, source, hop, select_db, lag=lag)
    dominant_s = float(sel.sum() * hop / rate)
    chunks = list(_chunks(sel, hop, chunk_frames, min_frames))
    if len(chunks) < 4 or dominant_s < min_dominant_s:
        return _none("too little source-dominant audio at the leak delay", rate, delay_s=(lag + frac) / rate,
                     gcc_z=gcc_z, dominant_s=dominant_s)
    pre = int(round(pre_s * rate))
    offset = lag - pre
    cap = max(min_filter, int(round(max_filter_s * rate)))
    lengths = []
    L = min_filter
    while L < cap:
        lengths.append(L)
        L *= 2
    lengths.append(cap)
    stats = _ls_stats(target, source, chunks, offset, cap)
    if min(stats.t) <= 0 or min(stats.r[:, 0]) <= 0:
        return _none("silent channel", rate, delay_s=(lag + frac) / rate, gcc_z=gcc_z, dominant_s=dominant_s)

    def fit_folds(L: int) -> tuple[list[np.ndarray], float]:
        hs = [_solve(stats.r[1 - f, :L], stats.p[1 - f, :L], ridge) for f in (0, 1)]
        err = sum(_heldout_error(hs[f], stats.r[f], stats.p[f], stats.t[f]) for f in (0, 1))
        return hs, err

    if method == "ls":
        # the shortest length that explains (on held-out frames) at least `length_share` of what
        # the best length explains: grows with the room, stays short for a dry leak or one under the
        # noise (there longer filters only fit noise and score worse)
        total = float(stats.t.sum())
        results = {L: fit_folds(L) for L in lengths}
        explained = {L: total - err for L, (_, err) in results.items()}
        best = max(explained.values())
        taps = min(L for L in lengths if explained[L] >= length_share * best) if best > 0 else lengths[0]
        hs, err = results[taps]
        h = _solve(stats.r.sum(0)[:taps], stats.p.sum(0)[:taps], ridge)
    elif method == "nlms":
        taps = cap
        hs = [_pbfdaf(target, source, sel, hop, chunks, offset, taps, fold=1 - f) for f in (0, 1)]
        err = sum(_heldout_error(hs[f], stats.r[f], stats.p[f], stats.t[f]) for f in (0, 1))
        h = _pbfdaf(target, source, sel, hop, chunks, offset, taps, fold=None)
    else:
        raise ValueError(f"unknown method {method!r}")

    # cross-validated covariance per chunk: prediction (fitted without this chunk's fold) . target
    # (hs[f] was fitted on fold 1-f, so chunks of fold f are scored with hs[f])
    cov = np.array([hs[fold] @ pc[:taps] for fold, pc, _ in stats.chunk_p])
    src_energy = float(stats.r[:, 0].sum())
    total = float(stats.t.sum())
    c_sum = float(cov.sum())
    level_db = 10 * np.log10(c_sum / src_energy) if c_sum > 0 else float("-inf")
    k = len(cov)
    holdout_t = float(cov.mean() / (cov.std(ddof=1) / np.sqrt(k) + 1e-30)) if k > 1 else 0.0
    erle_db = 10 * np.log10(total / max(err, 1e-30))
    residual_db = 10 * np.log10(max(err, 1e-30) / src_energy)
    confidence = path_confidence(gcc_z, holdout_t, k)
    # "the same signal twice" (a duplicated track), not a leak: the target never rises above the
    # path's floor, i.e. it has no speaker of its own. Not the leak's level: a channel gain
    # difference of up to 15 dB (or a louder other talker) makes a real leak louder than its source
    # (min_own_rise_db 8 dB: two people in one room leak at -8 dB at the loudest, so a speaker's own
    # speech rises at least that far above the other's leak in their own microphone)
    own_rise = _levels.get("own_rise_db", np.inf)
    if confidence < APPLY_CONFIDENCE:
        reason, applied = f"no leak found (GCC-PHAT z {gcc_z:.1f}, held-out t {holdout_t:.1f} over {k} chunks)", False
    elif level_db > max_level_db and own_rise < min_own_rise_db:
        reason, applied = (f"'leak' at {level_db:.1f} dB and the target never rises more than {own_rise:.1f} dB "
                           "above it: the same signal, not a leak"), False
    elif erle_db <= 0:
        reason, applied = "the fitted path does not reduce held-out audio", False
    else:
        reason, applied = (f"leak at {1000 * (lag + frac) / rate:.1f} ms, {level_db:.1f} dB, "
                           f"{taps} taps ({1000 * taps / rate:.0f} ms), held-out ERLE {erle_db:.1f} dB"), True
    return LeakPath(delay_s=(lag + frac) / rate, level_db=float(level_db), filter_taps=taps if applied else 0,
                    erle_db=float(erle_db), residual_db=float(residual_db), confidence=confidence, reason=reason,
                    rate=rate, offset=offset, coefs=(h if applied else np.zeros(0)).astype(np.float64),
                    applied=applied, gcc_z=gcc_z, holdout_t=holdout_t, dominant_s=dominant_s, method=method)


# ---------------------------------------------------------------------------------- NLMS (comparison)
def _pbfdaf(target, source, sel, hop, chunks, offset: int, taps: int, fold: int | None, block: int = 256,
            mu: float = 0.5, passes: int = 1) -> np.ndarray:
    """Partitioned-block frequency-domain NLMS (MDF, constrained), adapting only on source-dominant
    frames of the chosen fold's chunks (double-talk freeze elsewhere); returns the final filter."""
    P = block
    K = int(np.ceil(taps / P))
    W = np.zeros((K, P + 1), complex)
    X = np.zeros((K, P + 1), complex)
    power = None
    allowed = np.zeros(len(sel), bool)
    for k, (c0, c1, _m) in enumerate(chunks):
        if fold is None or k % 2 == fold:
            allowed[c0 // hop: c1 // hop] = sel[c0 // hop: c1 // hop]
    n = len(target)
    prev = np.zeros(P)
    for _ in range(passes):
        for b0 in range(0, n - P + 1, P):
            cur = _segment(source, b0 - offset, P)
            X = np.roll(X, 1, axis=0)
            X[0] = np.fft.rfft(np.r_[prev, cur])
            prev = cur
            f0, f1 = b0 // hop, (b0 + P) // hop
            if not allowed[f0: max(f1, f0 + 1)].all():
                continue
            x0p = np.abs(X[0]) ** 2
            power = x0p if power is None else 0.9 * power + 0.1 * x0p
            y = np.fft.irfft((W * X).sum(0), 2 * P)[P:]
            e = target[b0: b0 + P] - y
            E = np.fft.rfft(np.r_[np.zeros(P), e])
            grad = np.conj(X) * E / (K * power + 1e-10 + 1e-3 * power.mean())
            g = np.fft.irfft(grad, 2 * P, axis=1)
            g[:, P:] = 0
            W += mu * np.fft.rfft(g, axis=1)
    h = np.fft.irfft(W, 2 * P, axis=1)[:, :P].reshape(-1)
    return h[:taps]


# ------------------------------------------------------------------------------------- cancellation
class LeakCanceller:
    """Streaming overlap-save cancellation of one path: feed aligned blocks of target and source (any
    sizes), get the target minus the predicted leak back.

    Output lags input by ``latency`` samples only when the path starts before lag 0 (a negative
    delay within the margin); `flush` returns the rest. Memory: the FFT block (``nfft`` =
    next power of two >= 4 * taps, at least 4096 samples: 16384 doubles = 128 kB for a 0.25 s
    filter at 16 kHz) plus at most one caller block of each input and ``taps + |offset|`` samples of
    source history -- independent of the recording's length.
    """

    def __init__(self, path: LeakPath):
        self.path = path
        self.active = bool(path.applied and path.filter_taps > 0 and len(path.coefs))
        self.h = np.asarray(path.coefs, np.float64)
        self.a = path.offset
        self.L = len(self.h)
        self.latency = max(0, -self.a) if self.active else 0
        if self.active:
            self.nfft = max(4096, _pow2(4 * self.L))
            self.B = self.nfft - self.L + 1
            self.H = np.fft.rfft(self.h, self.nfft)
            hist = self.L - 1 + max(self.a, 0)
            self.src = np.zeros(hist)
            self.src_start = -hist  # absolute index of self.src[0]
            self.tgt = np.zeros(0)
            self.tgt_start = 0  # absolute index of self.tgt[0] == next output sample
            self.src_end_total = 0

    def _emit(self, final: bool) -> np.ndarray:
        out = []
        while True:
            n0 = self.tgt_start
            avail_t = len(self.tgt)
            src_end = self.src_start + len(self.src)
            B = min(self.B, avail_t)
            if B == 0:
                break
            if not final and (avail_t < self.B or src_end < n0 + self.B - self.a):
                break
            need_end = n0 + B - self.a
            if src_end < need_end:  # final: pad the source with zeros
                self.src = np.r_[self.src, np.zeros(need_end - src_end)]
            i0 = n0 - self.a - self.L + 1 - self.src_start
            seg = self.src[i0: i0 + B + self.L - 1]
            y = np.fft.irfft(np.fft.rfft(seg, self.nfft) * self.H, self.nfft)[self.L - 1: self.L - 1 + B]
            out.append(self.tgt[:B] - y)
            self.tgt = self.tgt[B:]
            self.tgt_start += B
            drop = (self.tgt_start - self.a - self.L + 1) - self.src_start
            if drop > 0:
                self.src = self.src[drop:]
                self.src_start += drop
        return np.concatenate(out) if out else np.zeros(0)

    def process(self, target: np.ndarray, source: np.ndarray) -> np.ndarray:
        target = np.asarray(target)
        if not self.active:
            return target.copy()
        self.tgt = np.r_[self.tgt, target.astype(np.float64)]
        self.src = np.r_[self.src, np.asarray(source, np.float64)]
        return self._emit(final=False).astype(target.dtype, copy=False)

    def flush(self) -> np.ndarray:
        if not self.active:
            return np.zeros(0, np.float32)
        return self._emit(final=True).astype(np.float32)


def cancel_blocks(blocks: Iterable[tuple[np.ndarray, np.ndarray]], path: LeakPath) -> Iterator[np.ndarray]:
    """Stream version: (target block, source block) pairs in, cleaned target blocks out (same total length)."""
    canceller = LeakCanceller(path)
    for t, s in blocks:
        out = canceller.process(t, s)
        if len(out):
            yield out
    rest = canceller.flush()
    if len(rest):
        yield rest


def cancel_leak(target: np.ndarray, source: np.ndarray, path: LeakPath, block: int = 1 << 18) -> np.ndarray:
    """Target minus the predicted leak (whole arrays; the same core as the streaming `LeakCanceller`)."""
    target = np.asarray(target)
    if not path.applied:
        return target.copy()
    n = len(target)
    source = np.asarray(source)[:n]
    if len(source) < n:
        source = np.r_[source, np.zeros(n - len(source), source.dtype)]
    pairs = ((target[i: i + block], source[i: i + block]) for i in range(0, n, block))
    out = np.concatenate(list(cancel_blocks(pairs, path)))
    return out[:n].astype(target.dtype, copy=False)


# ------------------------------------------------------------------------------ all pairs of a recording
def leak_regressor(channels, source: int, target: int, paths: dict) -> np.ndarray:
    """The source channel with the *target's* speaker taken out of it (its own leak path), i.e. what
    the target's leak is really made of. Without this, a loud two-way leak (two people in one room)
    puts the target's own voice, delayed, into the regressor: an errors-in-variables bias that
    underestimated a -8 dB leak by 2 dB and capped its cancellation near 14 dB."""
    back = paths.get((source, target))
    if back is None or not back.applied:
        return np.asarray(channels[source])
    return cancel_leak(channels[source], channels[target], back)


def estimate_leak_paths(channels, rate: int, refine: bool = True, refine_above_db: float = -30.0,
                        first: dict | None = None, **kw) -> dict[tuple[int, int], LeakPath]:
    """Every ordered pair (target, source) of a recording's channels (1-D arrays, one clock).

    First each pair alone; then, with `refine`, each pair again with the regressor cleaned of the
    reverse leak (`leak_regressor`) where that one was found louder than `refine_above_db` (quieter
    reverse leaks bias nothing measurable). `cancel_leaks` applies them the same way. `first`: the
    first round when the caller already has it (``refine=False`` on the same channels).
    """
    count = len(channels)
    if first is None:
        first = {(t, s): estimate_leak_path(channels[t], channels[s], rate, **kw)
                 for t in range(count) for s in range(count) if t != s}
    if not refine:
        return first
    out = {}
    for (t, s), path in first.items():
        if path.applied and first[(s, t)].applied and first[(s, t)].level_db > refine_above_db:
            again = estimate_leak_path(channels[t], leak_regressor(channels, s, t, first), rate, **kw)
            out[(t, s)] = again if again.applied else path
        else:
            out[(t, s)] = path
    return out


def cancel_leaks(channels, paths: dict[tuple[int, int], LeakPath], first_paths: dict | None = None) -> list[np.ndarray]:
    """Each channel minus every other channel's predicted leak (the regressors cleaned as in
    `estimate_leak_paths`: pass its first-round paths as `first_paths` for exact consistency; by
    default the refined paths clean the regressors, which differs only in second order)."""
    back = first_paths or paths
    out = []
    for t in range(len(channels)):
        y = np.asarray(channels[t])
        for s in range(len(channels)):
            if s != t and (t, s) in paths and paths[(t, s)].applied:
                y = cancel_leak(y, leak_regressor(channels, s, t, back), paths[(t, s)])
        out.append(y)
    return out
