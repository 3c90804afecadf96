#!/usr/bin/env python3
"""Code-switched Mandarin/English dialogues: Mandarin sentences with English words inside ("我想听
Let It Go", "帮我打开 Bluetooth", "这个 meeting 改到明天"), two channels with turn-taking, one call
per seed, exact truth per word with its language.

    .venv/bin/python bench/stress/make_codeswitch.py --seeds 100-119 --out /tmp/cs_choose

A generator for *our* code-switching measurements (bench/bench_codeswitch.py), seeded and
reproducible; not an evaluation set. Choose on seeds 100-119, report on 200-219 (the house rule).

Synthesis: espeak-ng, the Mandarin spans with `cmn-latn-pinyin` (pinyin text, one syllable = one
character) and the English spans with an English voice (en-us or en-gb) of the same variant
(+f1..f5 / +m1..m6), each span synthesised alone at the speaker's rate and concatenated with a short
silence; word times from libespeak-ng's word events (data_samples/make_samples.py's
`espeak_word_starts` / `word_spans`, imported). espeak's Mandarin is robotic: Whisper base reads it
far worse than real speech (README), so this measures what the code-switch pass does with English
spans, not Mandarin accuracy.

Per seed (numpy default_rng(seed)):
- cast: two speakers, each a random variant, an English accent (en-us / en-gb) and a speaking rate
  U(130, 175) words per minute; span gap U(0.03, 0.15) s per utterance;
- script: 7 utterances (`turn` alternating A/B, sometimes `cont` by the same speaker), each
  code-switched with probability 0.7 (a random frame of FRAMES with a random English filler of its
  kind; the English may open, sit inside or close the sentence) else Mandarin only (MANDARIN_ONLY);
  no sentence twice in a call; turn gaps U(-0.3, 0.9) s (negative: overlap); up to two listener
  backchannels 嗯 / 对 inside the other speaker's longer utterances (dropped if one would outlast its
  turn, as in make_stress);
- channels: each speaker's own track plus the other's leak at U(-35, -20) dB delayed U(0, 40) ms,
  pink noise at U(20, 35) dB SNR against the channel's speech.

Output under --out (the same layout as bench/stress/make_stress.py):
  audio/cs_NNNN.flac (two channels, 16 kHz), audio/metadata.csv (language zh per channel)
  truth/words.parquet   one row per Han character or English word: recording_id, channel, utterance,
                        index, word, start, end, joined, kind, language (zh | en), code_switched
                        (whether its utterance holds English)
  truth/utterances.parquet  per utterance: recording_id, channel, utterance, kind, start, end, text
                        (written), code_switched, english (the English span)
  truth/segments.parquet events.parquet (data_samples/truth's format), conditions.parquet
  tts_cache/            (synthesis cache; safe to delete)
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "data_samples"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_samples as ms  # noqa: E402
from make_stress import parse_seeds, write_truth  # noqa: E402,F401 - the stress generator's seed syntax and truth tables

SR = ms.SR
CHOOSE_SEEDS = range(100, 120)
REPORT_SEEDS = range(200, 220)

# (Han with {} for the English, pinyin with {} for the English, kind of English that fits)
FRAMES: list[tuple[str, str, str]] = [
    ("我想听{}", "wo3 xiang3 ting1 {}", "song"),
    ("帮我播放{}", "bang1 wo3 bo1 fang4 {}", "song"),
    ("你听过{}这首歌吗", "ni3 ting1 guo4 {} zhe4 shou3 ge1 ma5", "song"),
    ("我最喜欢的歌是{}", "wo3 zui4 xi3 huan1 de5 ge1 shi4 {}", "song"),
    ("下一首放{}吧", "xia4 yi4 shou3 fang4 {} ba5", "song"),
    ("{}是我最喜欢的歌", "{} shi4 wo3 zui4 xi3 huan1 de5 ge1", "song"),
    ("帮我打开{}", "bang1 wo3 da3 kai1 {}", "tech"),
    ("我的{}又出问题了", "wo3 de5 {} you4 chu1 wen4 ti2 le5", "tech"),
    ("你先把{}关掉再试一下", "ni3 xian1 ba3 {} guan1 diao4 zai4 shi4 yi2 xia4", "tech"),
    ("手机上的{}怎么用", "shou3 ji1 shang4 de5 {} zen3 me5 yong4", "tech"),
    ("{}的密码忘了", "{} de5 mi4 ma3 wang4 le5", "tech"),
    ("这个{}改到明天", "zhe4 ge4 {} gai3 dao4 ming2 tian1", "work"),
    ("今天下午有一个{}", "jin1 tian1 xia4 wu3 you3 yi2 ge4 {}", "work"),
    ("我还没看那个{}", "wo3 hai2 mei2 kan4 na4 ge4 {}", "work"),
    ("老板说{}必须今天完成", "lao3 ban3 shuo1 {} bi4 xu1 jin1 tian1 wan2 cheng2", "work"),
    ("{}几点开始", "{} ji3 dian3 kai1 shi3", "work"),
    ("我昨天买了一个新的{}", "wo3 zuo2 tian1 mai3 le5 yi2 ge4 xin1 de5 {}", "product"),
    ("你的{}是在哪里买的", "ni3 de5 {} shi4 zai4 na3 li3 mai3 de5", "product"),
    ("我们去{}坐一下吧", "wo3 men5 qu4 {} zuo4 yi2 xia4 ba5", "place"),
    ("楼下新开了一家{}", "lou2 xia4 xin1 kai1 le5 yi4 jia1 {}", "place"),
    ("你在{}上看过这个吗", "ni3 zai4 {} shang4 kan4 guo4 zhe4 ge4 ma5", "platform"),
    ("我每天晚上都看{}", "wo3 mei3 tian1 wan3 shang4 dou1 kan4 {}", "platform"),
]
ENGLISH: dict[str, list[str]] = {
    "song": ["Let It Go", "Yesterday", "Hello", "Shape of You", "Someone Like You", "Bad Guy",
             "Hotel California", "Let It Be", "Perfect", "Happy"],
    "tech": ["Bluetooth", "email", "app", "password", "laptop", "printer", "camera", "keyboard"],
    "work": ["meeting", "project", "report", "presentation", "deadline", "schedule", "interview", "budget"],
    "product": ["iPhone", "iPad", "laptop", "camera", "Kindle"],
    "place": ["Starbucks", "Costco", "Walmart", "Subway"],
    "platform": ["Netflix", "YouTube", "Google", "Twitter", "Facebook"],
}
MANDARIN_ONLY: list[tuple[str, str]] = [
    ("好的没问题", "hao3 de5 mei2 wen4 ti2"),
    ("我们明天早上见", "wo3 men5 ming2 tian1 zao3 shang4 jian4"),
    ("你吃饭了吗", "ni3 chi1 fan4 le5 ma5"),
    ("今天天气真不错", "jin1 tian1 tian1 qi4 zhen1 bu2 cuo4"),
    ("那我先去忙了", "na4 wo3 xian1 qu4 mang2 le5"),
    ("这个问题我想一想", "zhe4 ge4 wen4 ti2 wo3 xiang3 yi4 xiang3"),
    ("我觉得可以试试", "wo3 jue2 de5 ke3 yi3 shi4 shi5"),
    ("周末我们去爬山吧", "zhou1 mo4 wo3 men5 qu4 pa2 shan1 ba5"),
] + [(h, p) for p, h in ms.HANZI.items() if len(h) >= 6]  # make_samples' Mandarin lines
BACKCHANNELS = [("嗯", "en4"), ("对", "dui4")]
ACCENTS = ["en-us", "en-gb"]
for _han, _pin, _kind in FRAMES:
    assert len(_han.replace("{}", "")) == len(_pin.replace("{}", "").split()), _han
assert all(len(h) == len(p.split()) for h, p in MANDARIN_ONLY)


@dataclasses.dataclass(frozen=True)
class Span:
    language: str  # zh | en
    spoken: str  # what espeak reads: pinyin syllables or English words
    written: tuple[str, ...]  # the truth words: one Han character per syllable, or the English words


@dataclasses.dataclass(frozen=True)
class Voice:
    mandarin: str  # espeak voice for the pinyin spans
    english: str  # espeak voice for the English spans
    rate: int  # words per minute
    span_gap: float  # silence between spans (s)


def sentence(han: str, pinyin: str, english: str | None) -> tuple[Span, ...]:
    """The spans of a frame with its English filled in (or a Mandarin-only line)."""
    if english is None:
        return (Span("zh", pinyin, tuple(han)),)
    out = []
    for h, p in zip(han.split("{}"), pinyin.split("{}")):
        if p.strip():
            out.append(Span("zh", p.strip(), tuple(h)))
        out.append(Span("en", english, tuple(english.split())))
    return tuple(out[:-1])  # the last English was the split's tail


# --------------------------------------------------------------------------------------- script
@dataclasses.dataclass(frozen=True)
class Conditions:
    seed: int
    recording_id: str
    voice_a: Voice
    voice_b: Voice
    script: tuple[tuple[str, str, float, float, tuple[Span, ...]], ...]  # speaker, kind, gap, at, spans
    leak_db: float
    leak_delay_ms: float
    snr_db: float


def draw_conditions(seed: int) -> Conditions:
    rng = np.random.default_rng(seed)
    voices = []
    for _ in range(2):
        male = bool(rng.random() < 0.5)
        variant = f"+m{int(rng.integers(1, 7))}" if male else f"+f{int(rng.integers(1, 6))}"
        accent = ACCENTS[int(rng.integers(len(ACCENTS)))]
        voices.append(Voice(f"cmn-latn-pinyin{variant}", f"{accent}{variant}", int(rng.integers(130, 176)),
                            round(float(rng.uniform(0.03, 0.15)), 3)))
    frames = [int(i) for i in rng.permutation(len(FRAMES))]
    plain = [int(i) for i in rng.permutation(len(MANDARIN_ONLY))]
    steps = []
    speaker = "A"
    for u in range(7):
        if u == 0:
            kind = "turn"
        elif rng.random() < 0.2:
            kind = "cont"
        else:
            kind, speaker = "turn", "B" if speaker == "A" else "A"
        gap = float(rng.uniform(-0.3, 0.9))
        if rng.random() < 0.7:
            han, pin, what = FRAMES[frames.pop()]
            english = ENGLISH[what][int(rng.integers(len(ENGLISH[what])))]
            spans = sentence(han, pin, english)
        else:
            spans = sentence(*MANDARIN_ONLY[plain.pop()], None)
        steps.append((speaker, kind, round(gap, 3), 0.5, spans))
        if len(spans) > 1 or len(spans[0].written) >= 7:  # a longer utterance: maybe a backchannel
            if rng.random() < 0.35:
                han, pin = BACKCHANNELS[int(rng.integers(len(BACKCHANNELS)))]
                steps.append(("B" if speaker == "A" else "A", "bc", 0.0, round(float(rng.uniform(0.3, 0.5)), 3),
                              (Span("zh", pin, (han,)),)))
    return Conditions(seed, f"cs_{seed:04d}", voices[0], voices[1], tuple(steps),
                      round(float(rng.uniform(-35, -20)), 2), round(float(rng.uniform(0, 40)), 3),
                      round(float(rng.uniform(20, 35)), 2))


# ------------------------------------------------------------------------------------ synthesis
_CACHE_DIR: Path | None = None


def _espeak_events(voice: str, rate: int, text: str) -> bytes:
    """make_samples' `--espeak-words` output for one text: in a forked child while this process is
    single-threaded and has never loaded libespeak-ng (its state leaks between utterances, so the
    library must start clean; a fork of a threaded process copies locks other threads hold), else in
    a fresh Python (a test process has torch's and BLAS's threads: the forked library's audio then
    differed from the CLI's)."""
    status = Path("/proc/self/status").read_text()
    threads = int(re.search(r"^Threads:\s*(\d+)", status, re.M).group(1))
    if threads > 1 or "libespeak-ng" in Path("/proc/self/maps").read_text():
        return subprocess.run([sys.executable, ms.__file__, "--espeak-words", voice, str(rate), text],
                              check=True, capture_output=True).stdout
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: make_samples' own driver, its stdout into the pipe
        try:
            os.close(read)
            sys.stdout = io.TextIOWrapper(os.fdopen(write, "wb"))  # whatever captured stdout before
            ms._espeak_words_main(voice, str(rate), text)
            sys.stdout.flush()
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        raw = f.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0 and len(raw) >= 4, f"libespeak-ng word events failed for {text!r}"
    return raw


def word_starts(text: str, voice: str, rate: int, cli_pcm: np.ndarray) -> list[float | None]:
    """make_samples.espeak_word_starts (word-start times from libespeak-ng's word events, checked
    against the CLI's audio), the library driven by `_espeak_events` (a forked child where it can:
    re-importing make_samples in a fresh Python for every span costs seconds on a busy machine)."""
    raw = _espeak_events(voice, rate, text)
    count = int(np.frombuffer(raw[:4], np.int32)[0])
    events = np.frombuffer(raw[4: 4 + 8 * count], np.int32).reshape(count, 2)
    pcm = np.frombuffer(raw[4 + 8 * count:], np.int16)
    assert len(pcm) <= len(cli_pcm) and np.array_equal(pcm, cli_pcm[: len(pcm)]), \
        f"libespeak-ng audio differs from the CLI's for {text!r}"
    offsets = [m.start() + 1 for m in re.finditer(r"\S+", text)]  # 1-based, as espeak counts
    # espeak may split one written word in two ("iPad" -> i, Pad): a word starts at its first event
    first: dict[int, float] = {}
    for pos, t in events:
        k = max(i for i, o in enumerate(offsets) if o <= max(int(pos), offsets[0]))
        first.setdefault(k, t / 1000)
    assert 0 in first, (text, events)
    return [first.get(k) for k in range(len(offsets))]


def synthesise_span(text: str, voice: str, rate: int) -> tuple[np.ndarray, list[tuple[float, float, bool]]]:
    """One span: espeak-ng at `rate`, trimmed, peak 0.5, with its words' [start, end) (cached)."""
    key = hashlib.sha1(f"{text}\x00{voice}\x00{rate}".encode()).hexdigest()
    path = _CACHE_DIR / f"{key}.npz" if _CACHE_DIR else None
    if path is not None and path.exists():
        z = np.load(path)
        return z["audio"].copy(), [(float(a), float(b), bool(j)) for a, b, j in z["words"]]
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", tmp.name, text], check=True)
        pcm, sr = sf.read(tmp.name, dtype="int16")
    starts = word_starts(text, voice, rate, pcm)
    audio = soxr.resample(pcm.astype(np.float32) / 32768.0, sr, SR).astype(np.float32)
    idx = np.flatnonzero(np.abs(audio) > 1e-3)
    audio = audio[idx[0]: idx[-1] + 1]
    audio = 0.5 * audio / np.max(np.abs(audio))
    words = ms.word_spans(audio, [None if t is None else t - idx[0] / SR for t in starts])
    if path is not None:
        tmp_path = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp_path, audio=audio, words=np.array([(a, b, float(j)) for a, b, j in words], np.float64))
        os.replace(tmp_path, path)
    return audio, words


def synthesise_spans(spans: tuple[Span, ...], voice: Voice) -> tuple[np.ndarray, list[tuple[float, float, bool]]]:
    """An utterance: its spans one after another, `span_gap` of silence between them; one (start,
    end, joined) per written word."""
    pieces, words, t = [], [], 0.0
    gap = np.zeros(int(round(voice.span_gap * SR)), np.float32)
    for k, span in enumerate(spans):
        audio, spoken = synthesise_span(span.spoken, voice.english if span.language == "en" else voice.mandarin,
                                        voice.rate)
        assert len(spoken) == len(span.written), (span, spoken)
        if k:
            pieces.append(gap)
            t += len(gap) / SR
        words += [(round(t + a, 3), round(t + b, 3), j) for a, b, j in spoken]
        pieces.append(audio)
        t += len(audio) / SR
    return np.concatenate(pieces), words


@contextmanager
def _patched(c: Conditions):
    """make_samples' placement and truth functions, told how to speak and write this script: its
    `synthesise` reads a step's text as an index into the script, HANZI gives the written text."""
    voices = {"A": c.voice_a, "B": c.voice_b}
    old_synth, old_hanzi = ms.synthesise, dict(ms.HANZI)

    def synth(text: str, voice: str, seed: int):
        speaker, _, _, _, spans = c.script[int(text)]
        return synthesise_spans(spans, voices[speaker])

    ms.synthesise = synth
    ms.HANZI.update({str(i): written(s[4]) for i, s in enumerate(c.script)})
    try:
        yield
    finally:
        ms.synthesise = old_synth
        ms.HANZI.clear()
        ms.HANZI.update(old_hanzi)


def written(spans: tuple[Span, ...]) -> str:
    """An utterance's text: characters run together, English words apart by spaces."""
    from duplexcorpus.text import join_text

    return join_text([w for s in spans for w in s.written])


def render(c: Conditions, out: Path) -> dict:
    """Render one call into out/audio; return its table rows."""
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rid = c.recording_id
    with _patched(c):
        script = [ms.Step(spk, kind, str(i), gap=gap if kind == "turn" else 0.5, pause=max(0.3, gap + 0.4), at=at)
                  for i, (spk, kind, gap, at, _) in enumerate(c.script)]
        dlg = ms.Dialogue(rid, "zh", {"A": "a", "B": "b"}, script, scenario="casual_chat")
        try:
            placed = ms.place(dlg, c.seed)
        except AssertionError:  # a backchannel would outlast its turn: the call without backchannels
            dlg.steps = [s for s in script if s.kind != "bc"]
            placed = ms.place(dlg, c.seed)
        n = int(round((max(p.end for p in placed) + 0.8) * SR))
        channel_of = {"A": 0, "B": 1}
        tracks = [np.zeros(n, np.float32) for _ in range(2)]
        for p in placed:
            i0 = int(round(p.start * SR))
            tracks[channel_of[p.speaker]][i0: i0 + len(p.audio)] += p.audio
        ipus = {ch: ms.activity(tracks[ch]) for ch in (0, 1)}
        spec = ms.Render(dlg, {"A": "cs_a", "B": "cs_b"}, crosstalk_db=c.leak_db, crosstalk_delay_ms=c.leak_delay_ms,
                         seed=c.seed)
        segments, events = ms.truth_for(spec, placed, channel_of, ipus)

    words, utterances = [], []
    for u, p in enumerate(placed):
        spans = c.script[int(p.step.text)][4]
        ch = channel_of[p.speaker]
        cs = any(s.language == "en" for s in spans)
        english = " ".join(w for s in spans if s.language == "en" for w in s.written)
        utterances.append(dict(recording_id=rid, channel=ch, utterance=u, kind=p.step.kind, start=round(p.start, 3),
                               end=round(p.end, 3), text=written(spans), code_switched=cs, english=english,
                               truncated=p.truncated))
        flat = [(w, s.language) for s in spans for w in s.written]
        for k, ((word, lang), (a, b, joined)) in enumerate(zip(flat, p.words)):
            words.append(dict(recording_id=rid, channel=ch, utterance=u, index=k, word=word, start=round(p.start + a, 3),
                              end=round(p.start + b, 3), joined=joined, kind=p.step.kind, language=lang,
                              code_switched=cs))

    rng = np.random.default_rng([c.seed, 1])
    d = int(round(c.leak_delay_ms * SR / 1000))
    mixed = []
    for i in (0, 1):
        leak = 10 ** (c.leak_db / 20) * np.concatenate([np.zeros(d, np.float32), tracks[1 - i][: n - d]])
        mask = np.zeros(n, bool)
        for s, e in ipus[i]:
            mask[int(s * SR): int(e * SR)] = True
        speech_rms = float(np.sqrt(np.mean(tracks[i][mask] ** 2))) if mask.any() else 0.1
        noise = _pink(n, rng) * speech_rms / 10 ** (c.snr_db / 20)
        mixed.append(tracks[i] + leak + noise)
    audio = np.stack(mixed, axis=1)
    audio *= min(1.0, 0.95 / float(np.max(np.abs(audio))))
    sf.write(out / "audio" / f"{rid}.flac", audio, SR, subtype="PCM_16")
    cond = dict(seed=c.seed, recording_id=rid, duration_s=round(n / SR, 3), leak_db=c.leak_db,
                leak_delay_ms=c.leak_delay_ms, snr_db=c.snr_db,
                **{f"{k}_{s}": v for s, vo in (("a", c.voice_a), ("b", c.voice_b))
                   for k, v in dataclasses.asdict(vo).items()},
                utterances=len(placed), code_switched_utterances=sum(u["code_switched"] for u in utterances),
                backchannels=sum(p.step.kind == "bc" for p in placed))
    return dict(segments=segments, events=events, words=words, utterances=utterances, conditions=cond)


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f-power noise, unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    spec /= np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0))
    x = np.fft.irfft(spec, n)
    return (x / x.std()).astype(np.float32)


def write_tables(results: list[dict], out: Path) -> None:
    truth = out / "truth"
    results = write_truth(results, truth)
    pq.write_table(pa.Table.from_pylist([row for r in results for row in r["utterances"]]), truth / "utterances.parquet")
    lines = ["recording_id,channel,speaker_id,language"]
    lines += [f"{r['conditions']['recording_id']},{ch},{r['conditions']['recording_id']}_{s},zh"
              for r in results for ch, s in ((0, "a"), (1, "b"))]
    (out / "audio" / "metadata.csv").write_text("\n".join(lines) + "\n")


def _render_seed(args: tuple[int, str]) -> dict:
    seed, out = args
    global _CACHE_DIR
    _CACHE_DIR = Path(out) / "tts_cache"
    _CACHE_DIR.mkdir(parents=True, exist_ok=True)
    return render(draw_conditions(seed), Path(out))


def render_set(seeds: list[int], out: str | Path, jobs: int = 2) -> list[dict]:
    """Render every seed into `out` (earlier cs_* audio removed) and write the tables."""
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    for old in (out / "audio").glob("cs_*"):
        old.unlink()
    work = [(s, str(out)) for s in seeds]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(_render_seed, work))
    else:
        results = [_render_seed(w) for w in work]
    write_tables(results, out)
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="100-119", help='e.g. "100-119" or "200-219"')
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    a = ap.parse_args(argv)
    results = render_set(parse_seeds(a.seeds), a.out, a.jobs)
    total = sum(r["conditions"]["duration_s"] for r in results)
    cs = sum(r["conditions"]["code_switched_utterances"] for r in results)
    utts = sum(r["conditions"]["utterances"] for r in results)
    print(f"{len(results)} calls, {total / 60:.1f} min, {cs} of {utts} utterances code-switched -> {a.out}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "pipeline"))
    main()
