"""Recording conditions on synthetic signals with known truth: espeak-ng speech mixed with white,
pink and babble noise at a known SNR, band-limited speech, a clipped signal."""
from __future__ import annotations

import subprocess
import sys
import tempfile

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import soxr

from duplexcorpus.conditions import (BAND_EDGES_HZ, ChannelConditions, Settings, bandwidth_class, clipped_counts,
                                     measure_channels, snr_db, suggest_device, suggest_environment)
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "data_samples"))
import make_samples as ms  # noqa: E402  (the truth's activity detector and rate)

RATE = 24000  # the canonical (tracks) rate
LINES = [("Thanks for calling, how can I help you today?", "en-us+m3"),
         ("I would like to change the delivery address of my order.", "en-us+f2"),
         ("Sure, could you read me the order number please?", "en-gb+m5"),
         ("It is four five seven two nine, and the new street is Baker road.", "en-us+f4")]


def espeak(text: str, voice: str) -> np.ndarray:
    """espeak-ng speech at 16 kHz (the samples' rate), trimmed, peak 0.5."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["espeak-ng", "-v", voice, "-w", tmp.name, text], check=True)
        pcm, sr = sf.read(tmp.name, dtype="float32")
    audio = soxr.resample(pcm, sr, ms.SR)
    idx = np.flatnonzero(np.abs(audio) > 1e-3)
    audio = audio[idx[0]: idx[-1] + 1]
    return (0.5 * audio / np.max(np.abs(audio))).astype(np.float32)


@pytest.fixture(scope="module")
def speech():
    """Four espeak-ng utterances with 0.8 s pauses, at 24 kHz; the true speech spans and the power in them."""
    parts = []
    for text, voice in LINES:
        audio = espeak(text, voice)
        parts += [np.zeros(int(0.8 * ms.SR), np.float32), audio]
    parts.append(np.zeros(int(0.8 * ms.SR), np.float32))
    clean = soxr.resample(np.concatenate(parts), ms.SR, RATE).astype(np.float32) * 0.5
    spans = ms.activity(soxr.resample(clean, RATE, ms.SR))
    inside = np.zeros(len(clean), bool)
    for s, e in spans:
        inside[int(s * RATE): int(e * RATE)] = True
    return clean, spans, float(np.mean(clean[inside].astype(np.float64) ** 2))


def pink(n: int, rng) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / RATE), 20.0)
    return np.fft.irfft(spec / np.sqrt(f), n)


def babble(n: int, rng) -> np.ndarray:
    """Six talkers at once (the same voices, shifted and reversed so no word is intelligible)."""
    track = soxr.resample(_voices(), ms.SR, RATE)
    out = np.zeros(n)
    for k in range(6):
        out += np.resize(np.roll(track[:: 1 if k % 2 else -1], int(rng.integers(len(track)))), n)
    return out


_VOICES: list[np.ndarray] = []


def _voices() -> np.ndarray:
    if not _VOICES:
        voices = [espeak(text, voice.replace("+m", "+f") if "+m" in voice else voice.replace("+f", "+m"))
                  for text, voice in LINES]
        _VOICES.append(np.concatenate(voices + voices[::-1]))
    return _VOICES[0]


NOISES = {"white": lambda n, rng: rng.standard_normal(n), "pink": pink, "babble": babble}


@pytest.mark.parametrize("kind", sorted(NOISES))
@pytest.mark.parametrize("mix_snr", [5.0, 10.0, 20.0, 30.0])
def test_snr_is_within_3_db_of_the_mixing_snr(speech, kind, mix_snr):
    clean, spans, p_speech = speech
    rng = np.random.default_rng(int(mix_snr) * 7 + len(kind))
    noise = NOISES[kind](len(clean), rng)
    noise *= np.sqrt(p_speech / 10 ** (mix_snr / 10) / np.mean(noise**2))
    found = measure_channels((clean + noise)[None].astype(np.float32), RATE, [spans])[0]
    assert found.snr_db is not None and abs(found.snr_db - mix_snr) <= 3.0, (kind, mix_snr, found)
    noise_dbfs = 10 * np.log10(np.mean(noise**2))
    assert abs(found.noise_level_dbfs - noise_dbfs) <= 1.0
    assert found.noise_floor_dbfs <= found.noise_level_dbfs  # a low percentile, not the mean


def test_noise_is_measured_away_from_the_other_channels_speech(speech):
    """A loud leak of the other speaker in this channel's pauses is not this channel's noise."""
    clean, spans, p_speech = speech
    rng = np.random.default_rng(1)
    k = len(spans) // 2  # speaker a says the first utterances, b the rest; cut in the pause between
    half = int((spans[k - 1][1] + spans[k][0]) / 2 * RATE)
    a = np.concatenate([clean[:half], np.zeros(len(clean) - half, np.float32)])
    b = np.concatenate([np.zeros(half, np.float32), clean[half:]])
    spans_a, spans_b = spans[:k], spans[k:]
    p_a = np.mean(np.concatenate([a[int(s * RATE): int(e * RATE)] for s, e in spans_a]).astype(np.float64) ** 2)
    noise = rng.standard_normal((2, len(clean))) * np.sqrt(p_a / 10 ** (20 / 10))
    leak = 10 ** (-12 / 20)
    audio = np.stack([a + leak * b, b + leak * a]) + noise
    both = measure_channels(audio.astype(np.float32), RATE, [spans_a, spans_b])
    assert abs(both[0].snr_db - 20.0) <= 3.0, both[0]
    alone = measure_channels(audio[:1].astype(np.float32), RATE, [spans_a])[0]  # the leak counted as noise
    assert alone.snr_db < 17.0  # more than 3 dB off


def test_telephone_band_speech_is_telephone_and_full_band_is_wideband(speech):
    clean, spans, _ = speech
    rng = np.random.default_rng(2)
    noisy = clean + 1e-4 * rng.standard_normal(len(clean))
    # a telephone channel's anti-aliasing filter: 3.4 kHz pass band, steep above
    sos = scipy.signal.ellip(8, 0.5, 60, 3400, fs=RATE, output="sos")
    band = scipy.signal.sosfilt(sos, noisy)
    narrow, full = measure_channels(np.stack([band, noisy]).astype(np.float32), RATE, [spans, spans])
    assert narrow.bandwidth == "telephone" and narrow.bandwidth_hz < 4000, narrow
    # espeak-ng renders at 22.05 kHz and the truth at 16 kHz: content up to 8 kHz is wideband
    assert full.bandwidth == "wideband" and 6500 <= full.bandwidth_hz <= 8000, full
    # an 8 kHz call resampled to the canonical rate
    phone = soxr.resample(soxr.resample(noisy, RATE, 8000), 8000, RATE)[: len(noisy)]
    assert measure_channels(phone[None].astype(np.float32), RATE, [spans])[0].bandwidth == "telephone"


def test_bandwidth_classes_follow_the_itu_band_edges():
    assert [bandwidth_class(f) for f in (3400, 4000, 4800, 5000, 7000, 8000, 11000, 14000, 20000)] == \
        ["telephone"] * 3 + ["wideband"] * 3 + ["superwideband"] * 2 + ["fullband"]
    assert bandwidth_class(None) is None and list(BAND_EDGES_HZ)[0] == "telephone"


def test_clipping_share_counts_full_scale_samples_per_source_channel(tmp_path, speech):
    clean = speech[0]
    loud = np.clip(clean * 8.0, -1.0, 1.0)  # driven 18 dB into the rails
    expected = float(np.mean(np.abs(loud) >= 0.999))
    sf.write(tmp_path / "two.wav", np.stack([clean, loud], axis=1), RATE, subtype="PCM_16")
    counts, frames = clipped_counts(str(tmp_path / "two.wav"), clip_level=0.999, block_frames=5000)
    assert frames == len(clean) and counts[0] == 0
    assert expected > 0.005 and abs(counts[1] / frames - expected) < 1e-4


def test_no_speech_or_no_pause_gives_no_snr_not_a_number():
    assert snr_db(np.ones(5), np.zeros(0)) is None and snr_db(np.zeros(0), np.ones(5)) is None
    assert snr_db(np.full(5, 0.5), np.full(5, 1.0)) is None  # speech quieter than the noise
    rng = np.random.default_rng(3)
    only_noise = measure_channels(rng.standard_normal((1, RATE * 3)).astype(np.float32) * 0.01, RATE, [[]])[0]
    assert only_noise.snr_db is None and only_noise.bandwidth is None and only_noise.noise_floor_dbfs < -40
    silent = measure_channels(np.zeros((1, RATE * 3), np.float32), RATE, [[(1.0, 2.0)]])[0]
    assert silent.snr_db is None


def test_suggestions_come_from_the_worst_channel_and_the_band():
    def ch(snr, band):
        return ChannelConditions(0, snr, None, None, None, None, None, band)
    assert suggest_environment([ch(35, "wideband"), ch(32, "wideband")], 30, 15) == "quiet"
    assert suggest_environment([ch(35, "wideband"), ch(12, "wideband")], 30, 15) == "noisy"
    assert suggest_environment([ch(20, None)], 30, 15) == "moderate_noise"
    assert suggest_environment([ch(None, None)], 30, 15) is None
    assert suggest_device([ch(20, "telephone"), ch(20, "telephone"), ch(None, None)]) == "phone"
    assert suggest_device([ch(20, "telephone"), ch(20, "wideband")]) is None
    assert suggest_device([ch(20, "wideband")]) is None and suggest_device([ch(None, None)]) is None


def test_settings_frame_length_does_not_move_the_estimate(speech):
    clean, spans, p_speech = speech
    noise = np.random.default_rng(4).standard_normal(len(clean)) * np.sqrt(p_speech / 100)
    x = (clean + noise)[None].astype(np.float32)
    a = measure_channels(x, RATE, [spans], Settings(frame_s=0.02))[0].snr_db
    b = measure_channels(x, RATE, [spans], Settings(frame_s=0.032))[0].snr_db
    assert abs(a - b) < 0.5 and abs(a - 20) < 1.5


def test_padding_is_not_noise(speech):
    """A file that starts later on the shared clock is padded with zeros: they do not lower the noise."""
    clean, spans, p_speech = speech
    noise = np.random.default_rng(5).standard_normal(len(clean)) * np.sqrt(p_speech / 10 ** 2.5)
    lead = np.random.default_rng(6).standard_normal(int(1.5 * RATE)) * np.sqrt(p_speech / 10 ** 2.5)
    x = np.concatenate([np.zeros(3 * RATE), lead, clean + noise])  # 3 s before its recorder started
    found = measure_channels(x[None].astype(np.float32), RATE, [[(s + 4.5, e + 4.5) for s, e in spans]])[0]
    assert abs(found.snr_db - 25.0) <= 1.5, found


def test_unattributed_leak_inside_the_ipus_does_not_pull_the_speech_level_down(speech):
    """A leak 180 ms late (beyond the crosstalk stage's lag range) becomes IPUs on the listener's
    channel; the speech level is measured where the channel leads, so the SNR stays right."""
    clean, spans, _ = speech
    k = max(1, len(spans) // 4)  # channel 1 talks three times as long as channel 0
    half = int((spans[k - 1][1] + spans[k][0]) / 2 * RATE)
    a = np.concatenate([clean[:half], np.zeros(len(clean) - half, np.float32)])
    b = np.concatenate([np.zeros(half, np.float32), clean[half:]])
    spans_a, spans_b = spans[:k], spans[k:]
    p_a = np.mean(np.concatenate([a[int(s * RATE): int(e * RATE)] for s, e in spans_a]).astype(np.float64) ** 2)
    delay, leak = int(0.18 * RATE), 10 ** (-10 / 20)
    late = lambda x: np.concatenate([np.zeros(delay, np.float32), x[:-delay]])  # noqa: E731
    noise = np.random.default_rng(8).standard_normal((2, len(clean))) * np.sqrt(p_a / 10 ** 2.5)
    audio = (np.stack([a + leak * late(b), b + leak * late(a)]) + noise).astype(np.float32)
    leaky_a = spans_a + [(s + 0.18, e + 0.18) for s, e in spans_b]  # the leak kept as IPUs of channel 0
    found = measure_channels(audio, RATE, [leaky_a, spans_b])[0]
    assert abs(found.snr_db - 25.0) <= 3.0, found
    alone = measure_channels(audio[:1], RATE, [leaky_a])[0]  # no other channel to lead: the leak counts
    assert alone.snr_db < 22.0, alone


def test_no_shared_silence_gives_no_snr_rather_than_leak_taken_for_noise():
    """Two channels whose IPUs cover the whole recording between them (a meeting where someone
    always talks): there is no stretch of noise alone to measure."""
    rng = np.random.default_rng(9)
    audio = (0.01 * rng.standard_normal((2, 10 * RATE))).astype(np.float32)
    found = measure_channels(audio, RATE, [[(0.0, 5.0)], [(5.0, 10.0)]])
    assert [c.snr_db for c in found] == [None, None] and found[0].noise_seconds == 0.0


def test_a_few_loud_transients_in_the_pauses_do_not_make_a_quiet_line_noisy(speech):
    """A missed word or a click between turns is an event, not the background noise."""
    clean, spans, p_speech = speech
    rng = np.random.default_rng(10)
    x = clean + rng.standard_normal(len(clean)) * np.sqrt(p_speech / 10 ** 4.0)  # 40 dB
    pause = (spans[0][1] + spans[1][0]) / 2
    i = int(pause * RATE)
    x[i: i + int(0.06 * RATE)] += 0.5 * rng.standard_normal(int(0.06 * RATE))  # a 60 ms click, near full scale
    found = measure_channels(x[None].astype(np.float32), RATE, [spans])[0]
    assert abs(found.snr_db - 40.0) <= 3.0, found
