#!/usr/bin/env python3
"""Stress generator: the scripted espeak-ng dialogues of data_samples under conditions drawn from
wide ranges, one two-channel call per seed, with exact truth.

    .venv/bin/python bench/stress/make_stress.py --seeds 100-139 --out /tmp/stress [--jobs 2]

This is a generator for *our* robustness sweeps (bench/bench_stress.py), seeded and reproducible; it
is not an evaluation set. Choose parameters on the choose seeds (100-119) only, report on others
(200-239) -- see bench/bench_stress.py.

Reused from data_samples/make_samples.py (imported, not copied): the scripted dialogues and speaker
cast, espeak-ng synthesis with word times (`synthesise`), placement of the script on a timeline
(`place`), the truth functions (`activity`, `truth_for`, `word_truth`), brown noise with hum
(`coloured_noise`), the telephone band (`telephone`), the contract's Arrow schemas (`arrow_schema`).
Two small wrappers live here: a disk cache around `synthesise` (each utterance costs a fresh Python
process in make_samples; the cache is keyed by text, voice and speaking rate, so results are
identical), and the Mandarin listener token 是啊 ("shi4 a5") added to make_samples' HANZI map at
import time so that its written form is characters like the other Mandarin lines.

Per seed (numpy default_rng(seed); every draw is made whether used or not, so one condition never
shifts another's value between seeds), channel 0 = script speaker A, channel 1 = B:

- dialogue: one of en_support / en_chat / en_planning / zh_chat (make_samples' two-party scripts,
  30-70 s each; the 3-speaker meeting is left out), random cast of the language's speakers and
  random espeak voice variants (+m1..m6 / +f1..f5 by the cast's gender, accent -> en-us / en-gb /
  en-gb-scotland), per-speaker loudness U(-3, 0) dB. Each scripted backchannel's text is redrawn
  from the listener tokens: en "mm hmm" "yeah" "okay" "uh huh" "right"; zh 嗯 (en4), 对 (dui4),
  是啊 (shi4 a5). If a drawn token is too long for its slot (make_samples' placement asserts a
  backchannel ends 0.2 s before the turn it sits in), the script's own tokens are used.
  Interruptions (successful and failed) are the scripts' own.
- leak (crosstalk): each channel receives the other speaker's clean track, delayed by
  `leak_delay_ms` ~ U(0, 300) (rounded to a 16 kHz sample), at `leak_db` ~ U(-40, -8) dB relative
  to the source track (an energy ratio: the reverberant impulse response below has unit energy).
  Same delay and level in both directions.
- reverberant leak with probability 0.5: the leaked voice is convolved with `room_impulse_response`
  (a direct-path impulse plus exponentially decaying Gaussian noise reaching -60 dB at `rt60_s`
  ~ U(0.2, 0.8) s, direct-to-reverberant ratio 0 dB, unit energy). The direct path stays at the
  drawn delay.
- noise: per channel, coloured noise (`noise` = brown_hum: make_samples' low-passed noise with
  50 Hz hum, or pink: 1/f power) at `snr_db` ~ U(10, 30) dB, the SNR measured against the
  channel's own clean speech on its speech-active samples (inside the truth IPUs).
- gain after mixing: channel 1 minus channel 0 level `gain_diff_db` ~ U(-15, 15) dB; the louder
  channel stays at 0 dB, the quieter is attenuated (gain_db_ch0 / gain_db_ch1). A file whose peak
  would pass 0.95 is scaled down as a whole (both channels; the difference is kept).
- telephone with probability 0.25: 300-3400 Hz band and 8 kHz (make_samples' `telephone`), then a
  codec round trip per channel: `codec` = ulaw (G.711 μ-law, encoded and decoded by soundfile /
  libsndfile in memory) or gsm (GSM 06.10 full rate, encoded and decoded by `sox -t gsm`), 50/50.
  The decoded audio is written as FLAC at 8 kHz.
- two files with probability 0.3: delivered as `<id>.ch0.flac` and `<id>.ch1.flac`, recorded by two
  recorders. `offset_s` = sign * U(0, 10) s (sign +/- 50/50, rounded to a 16 kHz sample):
  **positive = channel 1's recorder started offset_s seconds after channel 0's** (its file begins
  later in true time), negative = it started |offset_s| earlier. `drift_ppm` ~ U(-200, 200):
  channel 1's clock runs (1 + drift) fast. A sound at true time t (= channel 0's file time, the
  truth's timeline) is in file 1 at  tau = (t - offset_s) * (1 + drift_ppm * 1e-6).
  File 1 is the true channel-1 signal (own voice + leak + noise + gain) from true time offset_s on,
  resampled by (1 + drift). The dialogue starts max(0, offset_s) later on the true timeline so
  that neither file misses speech; before a negative offset's start file 1 holds noise only.
  A syncer must find offset and drift from the shared leak.

Truth is computed from the clean per-speaker tracks (before leak, noise, gain, codecs), on channel
0's timeline. Output under --out:
  audio/*.flac, audio/metadata.csv           (the pipeline's input folder)
  truth/segments.parquet events.parquet words.parquet timeline.json   (data_samples/truth's format)
  truth/conditions.parquet                   (seed, recording_id, every drawn condition, offset_s /
                                              drift_ppm of two-file calls, NaN otherwise)
  tts_cache/                                 (synthesis cache; safe to delete)
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.signal
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "data_samples"))
import make_samples as ms  # noqa: E402

SR = ms.SR
ms.HANZI.setdefault("shi4 a5", "是啊")  # listener token 是啊, written as characters like the others

# name -> (script, language, scenario)
DIALOGUES: dict[str, tuple[list, str, str]] = {
    "en_support": (ms.EN_SUPPORT, "en", "customer_service"),
    "en_chat": (ms.EN_CHAT, "en", "casual_chat"),
    "en_planning": (ms.EN_PLANNING, "en", "casual_chat"),
    "zh_chat": (ms.ZH_CHAT, "zh", "casual_chat"),
}
LISTENER_TOKENS = {"en": ["mm hmm", "yeah", "okay", "uh huh", "right"], "zh": ["en4", "dui4", "shi4 a5"]}
ACCENT_VOICE = {"us": "en-us", "gb": "en-gb", "scottish": "en-gb-scotland", "mandarin_standard": "cmn-latn-pinyin"}
CHOOSE_SEEDS = range(100, 120)
REPORT_SEEDS = range(200, 240)


@dataclasses.dataclass
class Conditions:
    seed: int
    recording_id: str
    dialogue: str
    language: str
    speaker_ch0: str
    speaker_ch1: str
    voice_ch0: str
    voice_ch1: str
    loudness_db_ch0: float
    loudness_db_ch1: float
    listener_tokens: str  # JSON list: drawn text per backchannel step, in script order
    leak_delay_ms: float
    leak_db: float
    reverb: bool
    rt60_s: float  # NaN without reverb
    gain_diff_db: float  # channel 1 minus channel 0
    gain_db_ch0: float
    gain_db_ch1: float
    snr_db: float
    noise: str  # brown_hum | pink
    telephone: bool
    codec: str  # none | ulaw | gsm
    two_file: bool
    offset_s: float  # NaN unless two_file; + = channel 1's recorder started later
    drift_ppm: float  # NaN unless two_file; + = channel 1's clock fast


def draw_conditions(seed: int, **force) -> Conditions:
    """The seed's conditions; keyword arguments replace drawn values (tests)."""
    rng = np.random.default_rng(seed)
    names = sorted(DIALOGUES)
    dialogue = names[int(rng.integers(len(names)))]
    lang = DIALOGUES[dialogue][1]
    cast_pool = sorted(k for k, v in ms.SPEAKERS.items() if v["language"] == lang)
    cast = [cast_pool[i] for i in rng.permutation(len(cast_pool))[:2]]
    voices = []
    for spk in cast:
        info = ms.SPEAKERS[spk]
        k = int(rng.integers(1, 7 if info["gender"] == "male" else 6))
        voices.append(f"{ACCENT_VOICE[info['accent']]}+{'m' if info['gender'] == 'male' else 'f'}{k}")
    loud = rng.uniform(-3, 0, 2)
    script = DIALOGUES[dialogue][0]
    tokens = [str(rng.choice(LISTENER_TOKENS[lang])) for s in script if s.kind in ("bc", "bc_pause")]
    delay = rng.uniform(0, 300)
    leak = rng.uniform(-40, -8)
    reverb = bool(rng.random() < 0.5)
    rt60 = rng.uniform(0.2, 0.8)
    gdiff = rng.uniform(-15, 15)
    snr = rng.uniform(10, 30)
    noise = ["brown_hum", "pink"][int(rng.integers(2))]
    tel = bool(rng.random() < 0.25)
    codec = ["ulaw", "gsm"][int(rng.integers(2))]
    two = bool(rng.random() < 0.3)
    offset = (1 if rng.random() < 0.5 else -1) * rng.uniform(0, 10)
    drift = rng.uniform(-200, 200)
    c = Conditions(
        seed=seed, recording_id=f"stress_{seed:04d}", dialogue=dialogue, language=lang,
        speaker_ch0=cast[0], speaker_ch1=cast[1], voice_ch0=voices[0], voice_ch1=voices[1],
        loudness_db_ch0=float(loud[0]), loudness_db_ch1=float(loud[1]), listener_tokens=json.dumps(tokens),
        leak_delay_ms=float(delay), leak_db=float(leak), reverb=reverb, rt60_s=float(rt60) if reverb else math.nan,
        gain_diff_db=float(gdiff), gain_db_ch0=0.0, gain_db_ch1=0.0, snr_db=float(snr), noise=noise,
        telephone=tel, codec=codec if tel else "none", two_file=two,
        offset_s=float(offset) if two else math.nan, drift_ppm=float(drift) if two else math.nan)
    c = dataclasses.replace(c, **force)
    if c.reverb and math.isnan(c.rt60_s):
        c.rt60_s = float(rt60)
    if not c.reverb:
        c.rt60_s = math.nan
    if c.telephone and c.codec == "none":
        c.codec = codec
    if not c.telephone:
        c.codec = "none"
    if c.two_file:
        c.offset_s = round((offset if math.isnan(c.offset_s) else c.offset_s) * SR) / SR  # whole samples
        c.drift_ppm = drift if math.isnan(c.drift_ppm) else c.drift_ppm
    else:
        c.offset_s = c.drift_ppm = math.nan
    c.leak_delay_ms = round(c.leak_delay_ms * SR / 1000) * 1000 / SR  # whole samples
    if "gain_db_ch0" not in force and "gain_db_ch1" not in force:  # louder channel at 0 dB
        c.gain_db_ch0, c.gain_db_ch1 = min(0.0, -c.gain_diff_db), min(0.0, c.gain_diff_db)
    c.gain_diff_db = c.gain_db_ch1 - c.gain_db_ch0
    return c


# --------------------------------------------------------------------------------- synthesis cache
_CACHE_DIR: Path | None = None
_synthesise = ms.synthesise


def _cached_synthesise(text: str, voice: str, seed: int):
    """make_samples.synthesise with a disk cache keyed by what determines its output."""
    speed = 160 + (seed * 7) % 25  # make_samples.synthesise's rate rule: output depends on this only
    if _CACHE_DIR is None:
        return _synthesise(text, voice, seed)
    import hashlib

    key = hashlib.sha1(f"{text}\x00{voice}\x00{speed}".encode()).hexdigest()
    path = _CACHE_DIR / f"{key}.npz"
    if path.exists():
        z = np.load(path)
        return z["audio"].copy(), [(float(a), float(b), bool(j)) for a, b, j in z["words"]]
    audio, words = _synthesise(text, voice, seed)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, audio=audio, words=np.array([(a, b, float(j)) for a, b, j in words], np.float64))
    os.replace(tmp, path)
    return audio, words


ms.synthesise = _cached_synthesise  # `place` looks synthesise up in make_samples' globals


# ------------------------------------------------------------------------------------- acoustics
def room_impulse_response(rt60_s: float, rng: np.random.Generator, sr: int = SR, drr_db: float = 0.0) -> np.ndarray:
    """Synthetic room impulse response: a unit direct-path impulse at t = 0, then from 2.5 ms on
    Gaussian noise under an exponential envelope 10**(-3 t / rt60) (energy down 60 dB at t = rt60),
    1.2 * rt60 long. The tail's energy is set to the direct path's energy / 10**(drr_db / 10), and
    the whole response is scaled to unit energy, so convolving keeps a signal's energy (on average)
    and the direct path keeps the delay."""
    n = int(1.2 * rt60_s * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60_s)
    tail[t < 0.0025] = 0.0
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    h = tail
    h[0] = 1.0
    return (h / np.sqrt(np.sum(h**2))).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f-power noise (FFT shaping of white noise, flat below 20 Hz), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec /= np.sqrt(np.maximum(f, 20.0))
    x = np.fft.irfft(spec, n)
    return (x / x.std()).astype(np.float32)


def codec_round_trip(x: np.ndarray, sr: int, codec: str) -> np.ndarray:
    """Encode and decode one channel: ulaw with libsndfile (WAV μ-law) in memory, gsm with sox
    (GSM 06.10, needs 8 kHz mono)."""
    if codec == "ulaw":
        buf = io.BytesIO()
        sf.write(buf, x, sr, format="WAV", subtype="ULAW")
        buf.seek(0)
        return sf.read(buf, dtype="float32")[0]
    if codec == "gsm":
        assert sr == 8000
        with tempfile.TemporaryDirectory() as tmp:
            src, enc, dec = (os.path.join(tmp, n) for n in ("in.wav", "x.gsm", "out.wav"))
            sf.write(src, x, sr, subtype="PCM_16")
            subprocess.run(["sox", "-q", src, "-t", "gsm", enc], check=True)
            subprocess.run(["sox", "-q", "-t", "gsm", "-r", "8000", "-c", "1", enc, "-b", "16", dec], check=True)
            y = sf.read(dec, dtype="float32")[0]
        out = np.zeros(len(x), np.float32)
        out[: min(len(x), len(y))] = y[: len(x)]
        return out
    raise ValueError(codec)


def _place(c: Conditions, dialogue_name: str):
    script, lang, scenario = DIALOGUES[dialogue_name]
    voices = {"A": c.voice_ch0, "B": c.voice_ch1}
    tokens = iter(json.loads(c.listener_tokens))
    drawn = [dataclasses.replace(s, text=next(tokens, s.text)) if s.kind in ("bc", "bc_pause") else s for s in script]
    for steps in (drawn, list(script)):
        dlg = ms.Dialogue(c.recording_id, lang, voices, steps, scenario=scenario,
                          environment=_environment(c.snr_db), device="phone" if c.telephone else "headset")
        try:
            return dlg, ms.place(dlg, c.seed * 100), steps is drawn
        except AssertionError:
            if steps is not drawn:
                raise
    raise AssertionError("unreachable")


def _environment(snr_db: float) -> str:
    return "street" if snr_db < 17 else "cafe" if snr_db < 24 else "quiet_room"


def clean_tracks(c: Conditions):
    """The script placed on the truth timeline and the two close-talk speaker tracks (loudness
    applied; no leak, noise, gain or codec): (dialogue, placed, drawn_tokens, [track A, track B])."""
    dlg, placed, drawn_tokens = _place(c, c.dialogue)
    lead = max(0.0, c.offset_s) if c.two_file else 0.0  # neither recorder misses speech
    for p in placed:
        p.start += lead
    n = int(round((max(p.end for p in placed) + 0.8) * SR))
    tracks = [np.zeros(n, np.float32) for _ in range(2)]
    for p in placed:
        i0 = int(round(p.start * SR))
        tracks[CHANNEL_OF[p.speaker]][i0: i0 + len(p.audio)] += p.audio
    tracks[0] *= 10 ** (c.loudness_db_ch0 / 20)
    tracks[1] *= 10 ** (c.loudness_db_ch1 / 20)
    return dlg, placed, drawn_tokens, tracks


CHANNEL_OF = {"A": 0, "B": 1}


def mono_mix(c: Conditions) -> tuple[np.ndarray, int]:
    """The call as one device would hear it: the sum of the two close-talk tracks (no leak: a mono
    recording has no second channel to leak into), the seed's noise at its SNR against the mixed
    speech, and the telephone band + codec when the seed draws one. On the truth timeline of
    `render` (a two-file seed's lead included), so the truth tables of the two-channel call apply."""
    _, _, _, tracks = clean_tracks(c)
    mix = tracks[0] + tracks[1]
    rng = np.random.default_rng([c.seed, 2])
    mask = np.zeros(len(mix), bool)
    for ch in (0, 1):
        for s, e in ms.activity(tracks[ch]):
            mask[int(s * SR): int(e * SR)] = True
    noise_rms = float(np.sqrt(np.mean(mix[mask] ** 2))) / 10 ** (c.snr_db / 20)
    noise = pink_noise(len(mix), rng) * noise_rms if c.noise == "pink" else \
        ms.coloured_noise(len(mix), 20 * np.log10(noise_rms), rng)
    mix = (mix + noise).astype(np.float32)
    mix *= min(1.0, 0.95 / float(np.max(np.abs(mix))))
    if c.telephone:
        return codec_round_trip(np.clip(ms.telephone(mix), -1, 1), 8000, c.codec), 8000
    return mix, SR


def render(c: Conditions, out: Path) -> dict:
    """Render one call with conditions `c` into out/audio (audio files) and return its table rows:
    segments, events, words, metadata, timeline, conditions."""
    audio_dir = out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    dlg, placed, drawn_tokens, tracks = clean_tracks(c)
    two = c.two_file
    rid = c.recording_id
    duration = max(p.end for p in placed) + 0.8
    n = len(tracks[0])
    channel_of = CHANNEL_OF

    # ---- truth from the clean tracks, channel 0's timeline
    ipus = {ch: ms.activity(tracks[ch]) for ch in (0, 1)}
    cast = {"A": c.speaker_ch0, "B": c.speaker_ch1}
    render_spec = ms.Render(dlg, cast, crosstalk_db=c.leak_db, crosstalk_delay_ms=c.leak_delay_ms,
                            channel_gain_db=(c.gain_db_ch0, c.gain_db_ch1),
                            delivery="mono_pair" if two else ("telephone" if c.telephone else "flac"), seed=c.seed)
    segments, events = ms.truth_for(render_spec, placed, channel_of, ipus)
    words = ms.word_truth(render_spec, placed, channel_of)

    # ---- the world: true time from -pre on (pre-roll only when file 1 starts before file 0)
    rng = np.random.default_rng([c.seed, 1])
    pre = int(round(max(0.0, -c.offset_s) * SR)) if two else 0
    world = [np.concatenate([np.zeros(pre, np.float32), t]) for t in tracks]
    rir = room_impulse_response(c.rt60_s, rng) if c.reverb else None
    leak_gain = 10 ** (c.leak_db / 20)
    d = int(round(c.leak_delay_ms * SR / 1000))
    mixed = []
    for i in (0, 1):
        src = world[1 - i]
        if rir is not None:
            src = scipy.signal.fftconvolve(src, rir)[: len(src)].astype(np.float32)
        chan = world[i] + leak_gain * np.concatenate([np.zeros(d, np.float32), src[: len(src) - d]])
        own = tracks[i]
        mask = np.zeros(n, bool)
        for s, e in ipus[i]:
            mask[int(s * SR): int(e * SR)] = True
        speech_rms = float(np.sqrt(np.mean(own[mask] ** 2)))
        noise_rms = speech_rms / 10 ** (c.snr_db / 20)
        if c.noise == "pink":
            noise = pink_noise(len(chan), rng) * noise_rms
        else:
            noise = ms.coloured_noise(len(chan), 20 * np.log10(noise_rms), rng)
        chan = chan + noise
        chan *= 10 ** ((c.gain_db_ch0, c.gain_db_ch1)[i] / 20)
        mixed.append(chan.astype(np.float32))
    peak = max(float(np.max(np.abs(m))) for m in mixed)
    scale = min(1.0, 0.95 / peak)
    mixed = [m * scale for m in mixed]

    # ---- delivery
    file0 = mixed[0][pre:]
    files = [file0]
    if two:
        start1 = pre + int(round(c.offset_s * SR))
        files.append(soxr.resample(mixed[1][start1:], SR, SR * (1 + c.drift_ppm * 1e-6)).astype(np.float32))
    else:
        files.append(mixed[1][pre:])
    rate = SR
    if c.telephone:
        rate = 8000
        files = [codec_round_trip(np.clip(ms.telephone(f), -1, 1), rate, c.codec) for f in files]
    if two:
        for k, f in enumerate(files):
            sf.write(audio_dir / f"{rid}.ch{k}.flac", f, rate, subtype="PCM_16")
    else:
        sf.write(audio_dir / f"{rid}.flac", np.stack(files, axis=1), rate, subtype="PCM_16")

    meta = [dict(recording_id=rid, channel=ch, speaker_id=spk, **{k: ms.SPEAKERS[spk][k] for k in
                 ("gender", "age_group", "accent", "language")}, scenario=dlg.scenario,
                 environment=dlg.environment, device=dlg.device)
            for ch, spk in ((0, c.speaker_ch0), (1, c.speaker_ch1))]
    noise_dbfs = 20 * np.log10(np.mean([np.std(m[: int(0.5 * SR)]) for m in mixed]) + 1e-12)
    timeline = dict(recording_id=rid, language=dlg.lang, delivery=render_spec.delivery,
                    crosstalk_db=round(c.leak_db, 2), noise_dbfs=round(float(noise_dbfs), 2),
                    channel_gain_db=[round(c.gain_db_ch0, 2), round(c.gain_db_ch1, 2)], duration=round(duration, 3),
                    utterances=[dict(speaker=p.speaker, channel=channel_of[p.speaker], kind=p.step.kind,
                                     text=p.step.text, written=ms.HANZI.get(p.step.text, " ".join(ms.written_words(p.step.text))),
                                     start=round(p.start, 3), end=round(p.end, 3), truncated=p.truncated)
                                for p in placed])
    cond = dataclasses.asdict(c)
    if not drawn_tokens:
        cond["listener_tokens"] = json.dumps([s.text for s in DIALOGUES[c.dialogue][0] if s.kind in ("bc", "bc_pause")])
    cond.update(duration_s=round(duration, 3), sample_rate=rate, output_scale_db=round(20 * math.log10(scale), 2))
    return dict(segments=segments, events=events, words=words, meta=meta, timeline=timeline, conditions=cond)


def write_truth(results: list[dict], truth: Path) -> list[dict]:
    """segments / events / words in data_samples/truth's format and one conditions row per seed,
    every table in seed order (returned); a generator adds its own tables beside them."""
    truth.mkdir(parents=True, exist_ok=True)
    results = sorted(results, key=lambda r: r["conditions"]["seed"])
    cat = lambda key: [row for r in results for row in r[key]]  # noqa: E731
    pq.write_table(pa.Table.from_pylist(cat("segments"), schema=ms.arrow_schema("segments")), truth / "segments.parquet")
    pq.write_table(pa.Table.from_pylist(cat("events"), schema=ms.arrow_schema("events")), truth / "events.parquet")
    pq.write_table(pa.Table.from_pylist(cat("words")), truth / "words.parquet")
    pq.write_table(pa.Table.from_pylist([r["conditions"] for r in results]), truth / "conditions.parquet")
    return results


def write_tables(results: list[dict], out: Path) -> None:
    """metadata.csv beside the audio; truth tables in data_samples/truth's format + conditions."""
    truth = out / "truth"
    results = write_truth(results, truth)
    cat = lambda key: [row for r in results for row in r[key]]  # noqa: E731
    (truth / "timeline.json").write_text(json.dumps([r["timeline"] for r in results], indent=1, ensure_ascii=False))
    cols = ["recording_id", "channel", "speaker_id", "gender", "age_group", "accent", "language",
            "scenario", "environment", "device"]
    lines = [",".join(cols)] + [",".join("" if r[k] is None else str(r[k]) for k in cols) for r in cat("meta")]
    (out / "audio" / "metadata.csv").write_text("\n".join(lines) + "\n")


def _render_seed(args: tuple[int, str]) -> dict:
    seed, out = args
    global _CACHE_DIR
    _CACHE_DIR = Path(out) / "tts_cache"
    _CACHE_DIR.mkdir(parents=True, exist_ok=True)
    return render(draw_conditions(seed), Path(out))


def render_seed(seed: int, out: str | Path, conditions: Conditions | None = None, **force) -> dict:
    """Render one seed (drawn conditions, or `conditions`, with `force` overrides) into `out` and
    write its tables there (a one-recording set)."""
    global _CACHE_DIR
    out = Path(out)
    _CACHE_DIR = out / "tts_cache"
    _CACHE_DIR.mkdir(parents=True, exist_ok=True)
    c = conditions or draw_conditions(seed, **force)
    result = render(c, out)
    write_tables([result], out)
    return result


def parse_seeds(spec: str) -> list[int]:
    """"100-139" or "100,103,110-112"."""
    seeds: list[int] = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        seeds += list(range(int(a), int(b or a) + 1))
    return seeds


def render_set(seeds: list[int], out: str | Path, jobs: int = 2) -> None:
    """Render every seed into `out` (audio/ cleared of earlier stress files first) and write the tables."""
    out = Path(out)
    audio = out / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    for old in audio.glob("stress_*"):
        old.unlink()
    work = [(s, str(out)) for s in seeds]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(_render_seed, work))
    else:
        results = [_render_seed(w) for w in work]
    write_tables(results, out)
    total = sum(r["conditions"]["duration_s"] for r in results)
    print(f"{len(results)} calls, {total / 60:.1f} min of audio -> {out}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="100-139", help='e.g. "100-139" or "100,105,110-112"')
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    a = ap.parse_args(argv)
    render_set(parse_seeds(a.seeds), a.out, a.jobs)


if __name__ == "__main__":
    main()
