"""sync: offset and clock drift between per-phone files from the leak each phone picks up, and
resampling onto the reference clock.

Every conversation here is synthetic: two talkers (speech-like bursts, or espeak-ng speech), each
phone hearing its own talker plus the other's voice as a leak (-15 to -35 dB, 10-250 ms late,
reverberant), white noise at 20 dB SNR; the second file starts `offset` s later and its clock runs
`drift` ppm fast. The truth is what was applied. The errors are printed (pytest -s shows them).
"""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import soxr

from duplexcorpus.sync import SyncEstimate, SyncedStream, apply_sync, estimate_sync, estimate_sync_channels

FS = 16000
PAD = 12.0  # seconds of "world" on each side of the reference, so the other file may start early or late


# ------------------------------------------------------------------------------ synthetic talk
def _smooth_noise(rng, n: int, seconds: float) -> np.ndarray:
    """Gaussian noise averaged over `seconds` (unit variance)."""
    k = max(1, int(seconds * FS))
    csum = np.cumsum(np.concatenate([np.zeros(k), rng.standard_normal(n + k)]))
    x = (csum[k:k + n] - csum[:n]) / np.sqrt(k)
    return x / x.std()


def _talker(rng: np.random.Generator, seconds: float, f0: float) -> np.ndarray:
    """Speech-like source: a glottal sawtooth on a wandering pitch plus breath noise, tilted like
    speech, cut into syllables of random length and loudness, gated into turns of 1-4 s with
    0.5-4 s pauses; unit RMS while talking. Every talker is random (no shared periodicity)."""
    n = int(seconds * FS)
    pitch = f0 * np.exp(0.12 * _smooth_noise(rng, n, 0.4))
    x = np.mod(np.cumsum(pitch) / FS, 1.0) - 0.5 + 0.3 * rng.standard_normal(n)
    x = np.convolve(x, np.exp(-2 * np.pi * 1000 / FS * np.arange(16)))[:n]  # about a 1 kHz one-pole low-pass
    lengths = rng.integers(int(0.12 * FS), int(0.32 * FS), int(seconds / 0.12) + 2)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    phase = (np.arange(lengths.sum()) - np.repeat(starts, lengths)) / np.repeat(lengths, lengths)
    x *= (np.sin(np.pi * phase) * np.repeat(rng.uniform(0.3, 1.0, len(lengths)), lengths))[:n]
    gate = np.zeros(n)
    at = rng.uniform(0, 2)
    while at < seconds:
        on = rng.uniform(1.0, 4.0)
        gate[int(at * FS):int(min(seconds, at + on) * FS)] = 1
        at += on + rng.uniform(0.5, 4.0)
    k = int(0.02 * FS)  # 20 ms ramps
    csum = np.cumsum(np.concatenate([np.zeros(k), gate]))
    gate = (csum[k:] - csum[:-k]) / k
    x *= gate
    return x / np.sqrt(np.mean(x[gate > 0.5] ** 2))


def _espeak_talker(tmp_path, rng, seconds: float, voice: str, lines: list[str]) -> np.ndarray:
    """espeak-ng utterances with 0.5-3 s pauses until `seconds` are filled; unit RMS while talking."""
    out = np.zeros(int(seconds * FS))
    at, i = rng.uniform(0, 2), 0
    while at < seconds:
        wav = tmp_path / f"{voice.replace('+', '_')}_{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(wav), lines[i % len(lines)]], check=True)
        x, sr = sf.read(wav, dtype="float64")
        x = soxr.resample(x, sr, FS)
        a = int(at * FS)
        seg = x[:max(0, len(out) - a)]
        out[a:a + len(seg)] += seg
        at += len(x) / FS + rng.uniform(0.5, 3.0)
        i += 1
    return out / np.sqrt(np.mean(out[np.abs(out) > 1e-3] ** 2))


def _rir(rng, drr_db: float = 0.0, rt60: float = 0.3) -> np.ndarray:
    """Direct path plus an exponentially decaying diffuse tail starting 3 ms later, at drr_db."""
    n = int(0.25 * FS)
    h = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / FS / rt60)
    h[:int(0.003 * FS)] = 0
    h *= np.sqrt(10 ** (-drr_db / 10) / np.sum(h ** 2))
    h[0] = 1.0
    return h / np.sqrt(np.sum(h ** 2))


def _convolve(x: np.ndarray, h: np.ndarray, block: int = 1 << 14) -> np.ndarray:
    """x * h (first len(x) samples), by overlap-add of FFT blocks."""
    step = block - len(h) + 1
    n_blocks = -(-len(x) // step)
    blocks = np.zeros((n_blocks, step))
    blocks.reshape(-1)[:len(x)] = x
    y = np.fft.irfft(np.fft.rfft(blocks, block, axis=1) * np.fft.rfft(h, block), block, axis=1)
    out = np.zeros(n_blocks * step + block)
    for i in range(n_blocks):
        out[i * step:i * step + block] += y[i]
    return out[:len(x)]


def _late(x: np.ndarray, seconds: float) -> np.ndarray:
    k = int(round(seconds * FS))
    return np.concatenate([np.zeros(k), x[:len(x) - k]])


def _leak(x, rng, level_db, delay_s, reverb) -> np.ndarray:
    if reverb:
        x = _convolve(x, _rir(rng))
    return _late(x, delay_s) * 10 ** (level_db / 20)


def conversation(offset: float, drift_ppm: float, seconds: float = 90.0, *, leak_db=(-25.0, -25.0),
                 leak_delay=(0.08, 0.08), snr_db: float = 20.0, reverb: bool = True, seed: int = 0,
                 talkers: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(reference, other) at FS. Talker A on phone 0, B on phone 1; leak_db / leak_delay are
    (A into phone 1, B into phone 0). The other file starts at world time `offset` and samples
    at FS * (1 + drift) real Hz while calling it FS."""
    rng = np.random.default_rng(seed)
    total = seconds + 2 * PAD
    a, b = talkers if talkers is not None else (_talker(rng, total, 120.0), _talker(rng, total, 210.0))
    a, b = a[:int(total * FS)], b[:int(total * FS)]
    noise = 10 ** (-snr_db / 20)
    ch0 = a + _leak(b, rng, leak_db[1], leak_delay[1], reverb) + noise * rng.standard_normal(len(a))
    ch1 = b + _leak(a, rng, leak_db[0], leak_delay[0], reverb) + noise * rng.standard_normal(len(b))
    p = int(PAD * FS)
    ref = ch0[p:p + int(seconds * FS)]
    other = soxr.resample(ch1[p + int(round(offset * FS)):], FS, FS * (1 + drift_ppm * 1e-6), quality="VHQ")
    other = other[:int(seconds * FS)]
    return (0.1 * ref).astype(np.float32), (0.1 * other).astype(np.float32)


def _errors(est: SyncEstimate, offset: float, drift: float, label: str) -> tuple[float, float]:
    err_ms, err_ppm = (est.offset_s - offset) * 1e3, est.drift_ppm - drift
    print(f"\n[sync] {label}: offset error {err_ms:+.3f} ms, drift error {err_ppm:+.3f} ppm, confidence "
          f"{est.confidence:.2f}, {est.method}, {est.windows_used} windows, residual {est.residual_ms:.3f} ms, "
          f"leak {est.leak_delay_ms:.1f} ms, reason {est.reason}")
    return err_ms, err_ppm


# ------------------------------------------------------------------------------------ accuracy
CASES = [  # offset s, drift ppm, seconds, leak dB (A->1, B->0), leak delay s (equal both ways)
    (-4.2, -180.0, 60.0, (-15.0, -20.0), 0.010),
    (0.8, 0.0, 90.0, (-25.0, -25.0), 0.120),
    (7.3, 150.0, 120.0, (-35.0, -35.0), 0.250),
]


@pytest.mark.parametrize("offset, drift, seconds, leak_db, delay", CASES)
def test_offset_and_drift_from_the_leak(offset, drift, seconds, leak_db, delay):
    ref, other = conversation(offset, drift, seconds, leak_db=leak_db, leak_delay=(delay, delay), seed=1)
    est = estimate_sync(ref, other, FS)
    err_ms, err_ppm = _errors(est, offset, drift, f"offset {offset} s drift {drift} ppm leak {leak_db} dB {delay} s")
    assert est.ok and est.method == "gcc-phat-two-way" and est.direction == "both"
    assert abs(err_ms) <= 5.0 and abs(err_ppm) <= 5.0
    assert est.confidence >= 0.5
    assert abs(est.leak_delay_ms - delay * 1e3) <= 5.0  # the mean leak delay, as a by-product
    json.dumps(est.to_dict())  # what the recording's metadata will hold


@pytest.mark.slow
@pytest.mark.parametrize("offset", [-4.2, 0.8, 7.3])
@pytest.mark.parametrize("drift", [-180.0, 0.0, 150.0])
def test_offset_and_drift_grid(offset, drift):
    ref, other = conversation(offset, drift, 90.0, leak_db=(-30.0, -30.0), leak_delay=(0.05, 0.05), seed=7)
    est = estimate_sync(ref, other, FS)
    err_ms, err_ppm = _errors(est, offset, drift, f"grid offset {offset} drift {drift}")
    assert est.ok and abs(err_ms) <= 5.0 and abs(err_ppm) <= 5.0


def _telephone(x: np.ndarray) -> np.ndarray:
    """8 kHz, 300-3400 Hz, 8-bit mu-law (encode and decode)."""
    y = soxr.resample(x, FS, 8000)
    freqs = np.fft.rfftfreq(len(y), 1 / 8000)
    y = np.fft.irfft(np.fft.rfft(y) * ((freqs >= 300) & (freqs <= 3400)), len(y))
    y = np.clip(y / (np.abs(y).max() + 1e-9), -1, 1)
    mu = 255.0
    code = np.round(np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu) * 127) / 127
    return (np.sign(code) * np.expm1(np.abs(code) * np.log1p(mu)) / mu).astype(np.float32)


def test_telephone_band_mu_law():
    offset, drift = 7.3, 150.0
    ref, other = conversation(offset, drift, 90.0, leak_db=(-30.0, -30.0), leak_delay=(0.15, 0.15), seed=2)
    est = estimate_sync(_telephone(ref), _telephone(other), 8000)
    err_ms, err_ppm = _errors(est, offset, drift, "telephone band + mu-law")
    assert est.ok and est.direction == "both"
    assert abs(err_ms) <= 5.0 and abs(err_ppm) <= 5.0


def test_unequal_leak_delays_cost_half_their_difference():
    """Leak delays 40 ms (A into phone 1) and 160 ms (B into phone 0): nothing in the audio tells
    that apart from a 60 ms offset, so the estimate is off by (160 - 40) / 2 = 60 ms. What is
    asserted: the error is that half-difference (within 5 ms), the drift is right, and the mean
    delay is reported."""
    offset, drift, da, db = -4.2, -180.0, 0.04, 0.16
    ref, other = conversation(offset, drift, 90.0, leak_db=(-25.0, -25.0), leak_delay=(da, db), seed=3)
    est = estimate_sync(ref, other, FS)
    err_ms, err_ppm = _errors(est, offset, drift, "unequal leak delays 40 / 160 ms")
    assert est.ok and est.direction == "both"
    assert abs(err_ms - (db - da) / 2 * 1e3) <= 5.0  # the documented bias: +60 ms
    assert abs(err_ms) <= (db - da) / 2 * 1e3 + 5.0
    assert abs(err_ppm) <= 5.0
    assert abs(est.leak_delay_ms - (da + db) / 2 * 1e3) <= 5.0


def test_one_way_leak_is_kept_but_flagged():
    """Only A's voice reaches phone 1: the offset carries that leak's 90 ms; the drift is still right."""
    offset, drift, delay = 0.8, 150.0, 0.09
    ref, other = conversation(offset, drift, 90.0, leak_db=(-25.0, -90.0), leak_delay=(delay, delay), seed=4)
    est = estimate_sync(ref, other, FS)
    err_ms, err_ppm = _errors(est, offset, drift, "one-way leak (A into phone 1 only)")
    assert est.ok and est.method == "gcc-phat-one-way" and est.direction == "reference->other"
    assert est.confidence <= 0.5 and any("one leak direction" in n for n in est.notes)
    assert abs(err_ms + delay * 1e3) <= 5.0  # other starts `delay` "earlier" than it did
    assert abs(err_ppm) <= 5.0


# ----------------------------------------------------------------------------- refusing to sync
def test_unrelated_recordings_are_refused():
    ref, _ = conversation(0.8, 0.0, 90.0, seed=5)
    _, other = conversation(0.8, 0.0, 90.0, seed=6)
    est = estimate_sync(ref, other, FS)
    print(f"\n[sync] unrelated pair: {est.reason}")
    assert not est.ok and est.reason
    assert est.offset_s == 0.0 and est.drift_ppm == 0.0 and est.method == "none"  # keep the files as they are
    assert est.confidence < 0.15


def test_no_leak_noise_and_silence_are_refused():
    ref, other = conversation(0.8, 0.0, 60.0, leak_db=(-90.0, -90.0), seed=8)
    rng = np.random.default_rng(9)
    noise = (0.01 * rng.standard_normal((2, 60 * FS))).astype(np.float32)
    for label, (a, b) in {"no leak": (ref, other), "noise": (noise[0], noise[1]),
                          "silence": (np.zeros_like(ref), other), "short": (ref[:5 * FS], other[:5 * FS])}.items():
        est = estimate_sync(a, b, FS)
        print(f"\n[sync] {label}: {est.reason}")
        assert not est.ok and est.reason and est.offset_s == 0.0 and est.drift_ppm == 0.0, label


@pytest.fixture(scope="module")
def espeak_talkers(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    tmp = tmp_path_factory.mktemp("espeak")
    rng = np.random.default_rng(11)
    lines_a = ["Hello, did you manage to book the train tickets for Friday morning?",
               "I think the early one is better, we would arrive before lunch.",
               "My sister said the museum is closed on Mondays, so Friday works.",
               "Should we bring the small suitcase or the big one this time?"]
    lines_b = ["Yes, I booked them yesterday evening, they were cheaper online.",
               "The early train leaves at seven fifteen, is that too early for you?",
               "Fine, and we can have dinner at that little place near the river.",
               "Let's take the small one, we are only staying for two nights."]
    lines_c = ["The quarterly report shows a steady increase in regional sales figures.",
               "Please remember to water the plants while I am away next week.",
               "Seventeen green bottles were standing on the old stone wall."]
    total = 90.0 + 2 * PAD
    return (_espeak_talker(tmp, rng, total, "en-us", lines_a), _espeak_talker(tmp, rng, total, "en-gb+f3", lines_b),
            _espeak_talker(tmp, rng, total, "en-us+m3", lines_c))


def test_espeak_conversation(espeak_talkers):
    offset, drift = -4.2, 150.0
    ref, other = conversation(offset, drift, 90.0, leak_db=(-30.0, -30.0), leak_delay=(0.2, 0.2), seed=12,
                              talkers=espeak_talkers[:2])
    est = estimate_sync(ref, other, FS)
    err_ms, err_ppm = _errors(est, offset, drift, "espeak speech")
    assert est.ok and abs(err_ms) <= 5.0 and abs(err_ppm) <= 5.0


def test_espeak_unrelated_speech_is_refused(espeak_talkers):
    ref, _ = conversation(0.8, 0.0, 90.0, seed=13, talkers=espeak_talkers[:2])
    _, other = conversation(0.8, 0.0, 90.0, seed=14, talkers=(espeak_talkers[2], espeak_talkers[0][::-1].copy()))
    est = estimate_sync(ref, other, FS)
    print(f"\n[sync] unrelated espeak pair: {est.reason}")
    assert not est.ok and est.offset_s == 0.0


def test_channels_against_the_first():
    ref, other = conversation(0.8, 0.0, 60.0, seed=15)
    ests = estimate_sync_channels([ref, other], FS)
    assert ests[0].method == "identity" and ests[0].offset_s == 0.0
    assert ests[1].ok and abs(ests[1].offset_s - 0.8) <= 5e-3


# ------------------------------------------------------------------------------------- applying
def _clicks(positions: np.ndarray, n: int) -> np.ndarray:
    """Band-limited clicks (Hann-windowed sinc) centred on fractional sample positions."""
    out = np.zeros(n)
    taps = np.arange(-32, 33)
    for pos in positions:
        k = int(np.floor(pos))
        idx = k + taps
        ok = (idx >= 0) & (idx < n)
        d = idx - pos
        out[idx[ok]] += (0.9 * np.sinc(0.9 * d) * (0.5 + 0.5 * np.cos(np.pi * d / 33)))[ok]
    return out


def _click_times(y: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Sub-sample peak positions (s) of the clicks nearest the expected times."""
    found = []
    for t in expected:
        k = int(round(t * FS))
        lo = max(1, k - 80)
        i = lo + int(np.argmax(y[lo:k + 80]))
        y0, y1, y2 = y[i - 1], y[i], y[i + 1]
        found.append((i + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)) / FS)
    return np.array(found)


@pytest.mark.parametrize("offset, drift", [(7.300031, 150.0), (-4.2, -180.0)])  # 7.300031 s: not a whole sample
def test_apply_sync_aligns_a_click_train(offset, drift):
    """Clicks at known reference times, placed in the other file where its clock puts them
    (computed here, not by soxr): after apply_sync they sit within 1 ms of the reference times
    from start to end of a 120 s file; the streaming version gives the same samples."""
    seconds = 120
    est = SyncEstimate(offset, drift, 1.0, "given", 0, 0.0)
    t_ref = np.arange(0.5, seconds, 0.5)
    tau = est.other_time(t_ref)
    assert np.allclose(est.reference_time(tau), t_ref)
    other = _clicks(tau[tau >= 0] * FS, seconds * FS).astype(np.float32)
    y = apply_sync(other, FS, est, seconds * FS)
    assert len(y) == seconds * FS
    inside = (tau >= 0.01) & (tau * FS < seconds * FS - 40)
    expected = t_ref[inside]
    err_ms = (_click_times(y, expected) - expected) * 1e3
    print(f"\n[sync] apply_sync offset {offset} drift {drift}: click error first {err_ms[0]:+.4f} ms, "
          f"last {err_ms[-1]:+.4f} ms, max {np.abs(err_ms).max():.4f} ms")
    assert np.abs(err_ms).max() <= 1.0
    assert abs(err_ms[0]) <= 1.0 and abs(err_ms[-1]) <= 1.0
    # where the other file had no audio, zeros
    if offset > 0:
        assert not np.any(y[:int(offset * FS) - 40])


def test_synced_stream_matches_apply_sync(tmp_path):
    rng = np.random.default_rng(16)
    other = (0.1 * rng.standard_normal(50 * FS)).astype(np.float32)
    path = tmp_path / "other.wav"
    sf.write(path, np.stack([np.zeros_like(other), other], axis=1), FS, subtype="FLOAT")
    for offset, drift, length in [(3.25, 150.0, 60 * FS), (-2.5, -180.0, 40 * FS), (0.0, 0.0, 55 * FS)]:
        est = SyncEstimate(offset, drift, 1.0, "given", 0, 0.0)
        whole = apply_sync(other, FS, est, length)
        blocks = list(SyncedStream(str(path), 1, FS, est, length, block_seconds=7.0).blocks())
        streamed = np.concatenate(blocks)
        assert len(streamed) == length and max(len(b) for b in blocks) <= 8 * FS * 2
        assert np.max(np.abs(streamed - whole)) <= 1e-3, (offset, drift)
