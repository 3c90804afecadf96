#!/usr/bin/env python3
"""Render the bundled sample conversations with espeak-ng, with exact ground truth.

Each dialogue is a scripted timeline (DIALOGUES below). Utterances are synthesised one by one,
placed on per-speaker tracks, and the truth is computed from those clean tracks *before* any
nuisance is added: IPUs from the clean signal's energy, gaps/pauses/overlaps by a sweep over the
IPUs, backchannels and interruptions from the script's own labels. Then the nuisances of real
recordings are applied: crosstalk of the other speakers (-18 to -30 dB, a few ms late), background
noise, a 12 dB level mismatch, an 8 kHz mu-law telephone file, a recording delivered as two mono
files, a mono mix, a 3-channel close-talk meeting and a set of broken files.

This script deliberately shares no code with `pipeline/`: the truth must not inherit the pipeline's
bugs. Output (committed): audio/*.flac|wav, audio/metadata.csv, truth/*.parquet, truth/timeline.json.

    python data_samples/make_samples.py            # re-render everything (deterministic)
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.signal
import soundfile as sf
import soxr

HERE = Path(__file__).resolve().parent
AUDIO = HERE / "audio"
TRUTH = HERE / "truth"
SR = 16_000  # sample rate of the rendered conversations (the telephone one is resampled to 8 kHz)
FRAME = 0.005  # truth activity resolution (s)
BRIDGE = 0.200  # silences shorter than this inside a speaker's speech are bridged (IPU definition)
SCHEMA_DIR = HERE.parent / "schemas" / "v1"


# --------------------------------------------------------------------------------------- script
@dataclass
class Step:
    """One scripted utterance.

    kind: turn (take the floor after `gap` s, negative = overlapped), cont (same speaker after a
    `pause`), bc (listener backchannel at fraction `at` of the floor holder's current utterance),
    bc_pause (backchannel in the pause after it), int_ok (interrupt at `at`; the holder stops
    `overlap` s later and the interrupter keeps the floor), int_fail (interrupt at `at`; the holder
    keeps talking and the interrupter gives up).
    """

    speaker: str
    kind: str
    text: str
    gap: float = 0.5
    pause: float = 0.7
    at: float = 0.5
    overlap: float = 0.8


@dataclass
class Dialogue:
    id: str
    lang: str
    voices: dict[str, str]
    steps: list[Step]
    speakers: dict[str, dict] = field(default_factory=dict)
    scenario: str = "casual_chat"
    environment: str = "quiet_room"
    device: str = "headset"


S = Step
EN_SUPPORT = [
    S("A", "turn", "thanks for calling the help desk how can I help you today"),
    S("B", "turn", "hi my internet connection keeps dropping every single evening", gap=0.45),
    S("A", "bc", "uh huh", at=0.55),
    S("B", "cont", "it started last week right after the big storm", pause=0.65),
    S("A", "turn", "I see let me pull up your account", gap=-0.25),
    S("A", "cont", "can you read me the number on the back of the router", pause=0.6),
    S("B", "bc_pause", "okay"),
    S("A", "cont", "it should start with the letters A and C", pause=1.6),
    S("B", "turn", "sure it says A C four four nine two", gap=0.7),
    S("A", "turn", "thank you and are all the lights on the front solid green", gap=0.35),
    S("B", "int_ok", "oh wait one of them is blinking orange now", at=0.55, overlap=0.8),
    S("A", "turn", "that explains it the line is resynchronising", gap=0.5),
    S("A", "cont", "please leave it running for about ten minutes and call us back if the light stays orange", pause=0.5),
    S("B", "int_fail", "so should I unplug the whole thing", at=0.2),
    S("B", "turn", "great thanks a lot for your help", gap=0.4),
]

EN_CHAT = [
    S("A", "turn", "did you end up going to the concert on saturday"),
    S("B", "turn", "yes we did and it was absolutely packed", gap=0.3),
    S("A", "bc", "yeah", at=0.6),
    S("B", "cont", "we waited almost an hour just to get inside", pause=0.55),
    S("A", "turn", "that sounds exhausting honestly", gap=-0.2),
    S("B", "turn", "it was but the band played for nearly three hours", gap=0.5),
    S("A", "int_ok", "wait three hours without a break", at=0.5, overlap=0.7),
    S("B", "turn", "only one short break in the middle", gap=0.25),
    S("B", "cont", "and the encore was the best part of the whole night", pause=0.8),
    S("A", "bc_pause", "mm hmm"),
    S("B", "cont", "they played all the old songs we used to love back when we were still in school together", pause=1.5),
    S("A", "int_fail", "did they play the one from the movie", at=0.2),
    S("B", "cont", "I really want to see them again next year", pause=0.5),
    S("A", "turn", "count me in for that", gap=0.6),
]

EN_PLANNING = [
    S("A", "turn", "so when do you want to start the kitchen renovation"),
    S("B", "turn", "probably in march once the weather gets warmer", gap=0.55),
    S("A", "bc", "right", at=0.5),
    S("B", "cont", "the contractor said it would take about six weeks", pause=0.7),
    S("A", "turn", "six weeks is longer than I expected", gap=-0.15),
    S("B", "int_ok", "well they have to replace all the pipes too", at=0.6, overlap=0.75),
    S("A", "turn", "okay that makes sense then", gap=0.4),
    S("A", "cont", "we should get a second quote before we sign anything", pause=0.65),
    S("B", "bc_pause", "yeah"),
    S("A", "cont", "my sister used someone good last spring", pause=1.5),
    S("B", "turn", "can you send me their number tonight", gap=0.45),
]

EN_MEETING = [
    S("A", "turn", "okay let us get started with the weekly review"),
    S("B", "turn", "I can go first if that works for everyone", gap=0.5),
    S("C", "bc", "sure", at=0.6),
    S("B", "cont", "we shipped the new search page on tuesday", pause=0.6),
    S("A", "bc", "nice", at=0.5),
    S("C", "turn", "did the latency numbers hold up in production", gap=0.4),
    S("B", "turn", "mostly yes except for the very long queries", gap=-0.2),
    S("A", "int_ok", "how long are we talking about here", at=0.55, overlap=0.7),
    S("B", "turn", "around two seconds for the worst ones which mostly come from the old reporting dashboard", gap=0.35),
    S("C", "int_fail", "that seems far too slow to me", at=0.2),
    S("B", "cont", "we already have a fix planned for next week", pause=0.5),
    S("A", "turn", "good let us check on it again on friday", gap=0.5),
]

ZH_CHAT = [
    S("A", "turn", "ni3 zhe4 ge4 zhou1 mo4 you3 shen2 me5 an1 pai2"),
    S("B", "turn", "wo3 da3 suan4 qu4 gong1 yuan2 pa2 shan1", gap=0.45),
    S("A", "bc", "en4", at=0.5),
    S("B", "cont", "ting1 shuo1 na4 li3 de5 feng1 jing3 fei1 chang2 hao3", pause=0.6),
    S("A", "turn", "wo3 ye3 xiang3 yi4 qi3 qu4 ke3 yi3 ma5", gap=-0.2),
    S("B", "turn", "dang1 ran2 ke3 yi3 wo3 men5 zao3 shang4 ba1 dian3 chu1 fa1", gap=0.4),
    S("A", "int_ok", "ba1 dian3 tai4 zao3 le5 jiu2 dian3 ba5", at=0.55, overlap=0.7),
    S("B", "turn", "hao3 de5 na4 jiu4 jiu3 dian3", gap=0.3),
    S("B", "cont", "ji4 de5 dai4 shang4 shui3 he2 yi2 xie1 chi1 de5", pause=0.7),
    S("A", "bc_pause", "dui4"),
    S("B", "cont", "shan1 shang4 mai3 dong1 xi1 hen3 gui4 er2 qie3 xuan3 ze2 ye3 bu4 duo1 suo3 yi3 zui4 hao3 zi4 ji3 dai4", pause=1.5),
    S("A", "int_fail", "na4 wo3 men5 zuo4 gong1 jiao1 qu4 ba5", at=0.2),
    S("B", "cont", "wo3 kai1 che1 lai2 jie1 ni3", pause=0.5),
]

# What the pinyin above says, one character per syllable: the text truth for Mandarin (espeak reads
# the pinyin; a recogniser writes characters).
HANZI = {
    "ni3 zhe4 ge4 zhou1 mo4 you3 shen2 me5 an1 pai2": "你这个周末有什么安排",
    "wo3 da3 suan4 qu4 gong1 yuan2 pa2 shan1": "我打算去公园爬山",
    "en4": "嗯",
    "ting1 shuo1 na4 li3 de5 feng1 jing3 fei1 chang2 hao3": "听说那里的风景非常好",
    "wo3 ye3 xiang3 yi4 qi3 qu4 ke3 yi3 ma5": "我也想一起去可以吗",
    "dang1 ran2 ke3 yi3 wo3 men5 zao3 shang4 ba1 dian3 chu1 fa1": "当然可以我们早上八点出发",
    "ba1 dian3 tai4 zao3 le5 jiu2 dian3 ba5": "八点太早了九点吧",
    "hao3 de5 na4 jiu4 jiu3 dian3": "好的那就九点",
    "ji4 de5 dai4 shang4 shui3 he2 yi2 xie1 chi1 de5": "记得带上水和一些吃的",
    "dui4": "对",
    "shan1 shang4 mai3 dong1 xi1 hen3 gui4 er2 qie3 xuan3 ze2 ye3 bu4 duo1 suo3 yi3 zui4 hao3 zi4 ji3 dai4":
        "山上买东西很贵而且选择也不多所以最好自己带",
    "na4 wo3 men5 zuo4 gong1 jiao1 qu4 ba5": "那我们坐公交去吧",
    "wo3 kai1 che1 lai2 jie1 ni3": "我开车来接你",
}
assert all(len(k.split()) == len(v) for k, v in HANZI.items())


def written_words(text: str) -> list[str]:
    """The words a transcript writes for a scripted line (characters for pinyin lines)."""
    return list(HANZI[text]) if text in HANZI else text.split()


# Small cast: speaker ids are global, so one person may appear in several recordings (the
# speaker-disjoint split must keep such recordings together).
SPEAKERS = {
    "spk_en_m1": dict(gender="male", age_group="adult", accent="us", language="en"),
    "spk_en_f1": dict(gender="female", age_group="adult", accent="us", language="en"),
    "spk_en_m2": dict(gender="male", age_group="senior", accent="gb", language="en"),
    "spk_en_f2": dict(gender="female", age_group="young_adult", accent="gb", language="en"),
    "spk_en_m3": dict(gender="male", age_group="adult", accent="scottish", language="en"),
    "spk_zh_f1": dict(gender="female", age_group="adult", accent="mandarin_standard", language="zh"),
    "spk_zh_m1": dict(gender="male", age_group="young_adult", accent="mandarin_standard", language="zh"),
}


@dataclass
class Render:
    """How one dialogue becomes a recording: nuisances and delivery format."""

    dialogue: Dialogue
    cast: dict[str, str]  # script speaker -> speaker id
    crosstalk_db: float | None = None  # leak level of every other speaker into each channel
    crosstalk_delay_ms: float = 4.0
    noise_dbfs: float = -60.0
    channel_gain_db: tuple[float, ...] | None = None
    delivery: str = "flac"  # flac | telephone | mono_pair | mono_mix
    seed: int = 0


def rendering_plan() -> list[Render]:
    d = Dialogue
    return [
        Render(d("en_support_clean", "en", {"A": "en-us+m3", "B": "en-us+f3"}, EN_SUPPORT,
                 scenario="customer_service", environment="quiet_office", device="headset"),
               {"A": "spk_en_m1", "B": "spk_en_f1"}, crosstalk_db=-30, noise_dbfs=-62, seed=1),
        Render(d("en_chat_crosstalk", "en", {"A": "en-gb+m2", "B": "en-us+f2"}, EN_CHAT,
                 scenario="casual_chat", environment="cafe", device="phone"),
               {"A": "spk_en_m2", "B": "spk_en_f1"}, crosstalk_db=-18, crosstalk_delay_ms=3.0,
               noise_dbfs=-45, seed=2),
        Render(d("en_planning_mismatch", "en", {"A": "en-us+f4", "B": "en-gb-scotland+m1"}, EN_PLANNING,
                 scenario="casual_chat", environment="living_room", device="laptop"),
               {"A": "spk_en_f2", "B": "spk_en_m3"}, crosstalk_db=-22, crosstalk_delay_ms=6.0,
               noise_dbfs=-52, channel_gain_db=(0.0, -12.0), seed=3),
        Render(d("en_support_telephone", "en", {"A": "en-us+m4", "B": "en-gb+f1"}, EN_SUPPORT,
                 scenario="customer_service", environment="street", device="phone"),
               {"A": "spk_en_m3", "B": "spk_en_f2"}, crosstalk_db=-25, crosstalk_delay_ms=5.0,
               noise_dbfs=-48, delivery="telephone", seed=4),
        Render(d("zh_weekend_chat", "zh", {"A": "cmn-latn-pinyin+f3", "B": "cmn-latn-pinyin+m2"}, ZH_CHAT,
                 scenario="casual_chat", environment="quiet_room", device="headset"),
               {"A": "spk_zh_f1", "B": "spk_zh_m1"}, crosstalk_db=-20, crosstalk_delay_ms=3.5,
               noise_dbfs=-50, seed=5),
        Render(d("en_chat_two_files", "en", {"A": "en-us+m1", "B": "en-us+f5"}, EN_CHAT,
                 scenario="casual_chat", environment="quiet_room", device="phone"),
               {"A": "spk_en_m1", "B": "spk_en_f2"}, crosstalk_db=-26, crosstalk_delay_ms=2.0,
               noise_dbfs=-55, delivery="mono_pair", seed=6),
        Render(d("en_meeting_3ch", "en", {"A": "en-us+m2", "B": "en-gb+f3", "C": "en-us+m5"}, EN_MEETING,
                 scenario="meeting", environment="meeting_room", device="headset"),
               {"A": "spk_en_m2", "B": "spk_en_f1", "C": "spk_en_m3"}, crosstalk_db=-21,
               crosstalk_delay_ms=3.0, noise_dbfs=-52, seed=7),
        Render(d("en_planning_mono", "en", {"A": "en-us+f2", "B": "en-us+m6"}, EN_PLANNING,
                 scenario="casual_chat", environment="quiet_room", device="laptop"),
               {"A": "spk_en_f1", "B": "spk_en_m2"}, noise_dbfs=-55, delivery="mono_mix", seed=8),
    ]


# ------------------------------------------------------------------------------------ synthesis
def synthesise(text: str, voice: str, seed: int) -> tuple[np.ndarray, list[tuple[float, float, bool]]]:
    """espeak-ng -> float32 mono at SR, trimmed to the first/last audible sample, and the
    [start, end) of every word (a pinyin syllable = one character) in the trimmed audio."""
    speed = 160 + (seed * 7) % 25
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", tmp.name, text], check=True)
        pcm, sr = sf.read(tmp.name, dtype="int16")
    word_starts = espeak_word_starts(text, voice, speed, pcm)
    audio = soxr.resample(pcm.astype(np.float32) / 32768.0, sr, SR).astype(np.float32)
    idx = np.flatnonzero(np.abs(audio) > 1e-3)
    audio = audio[idx[0]: idx[-1] + 1]
    return 0.5 * audio / np.max(np.abs(audio)), word_spans(audio, [None if t is None else t - idx[0] / SR for t in word_starts])


def espeak_word_starts(text: str, voice: str, speed: int, cli_pcm: np.ndarray) -> list[float | None]:
    """Word-start times (s) from libespeak-ng's word events, for exactly the CLI's audio.

    The library is driven through ctypes in a fresh process (its state leaks between utterances),
    and the audio it returns must equal the CLI's sample for sample, so the times belong to the
    committed audio and are exact to espeak's 1 ms event resolution."""
    out = subprocess.run([sys.executable, __file__, "--espeak-words", voice, str(speed), text],
                         check=True, capture_output=True)
    count = int(np.frombuffer(out.stdout[:4], np.int32)[0])
    events = np.frombuffer(out.stdout[4: 4 + 8 * count], np.int32).reshape(count, 2)
    pcm = np.frombuffer(out.stdout[4 + 8 * count:], np.int16)
    # the library's audio is a prefix of the CLI's (the CLI also flushes a quiet tail)
    assert len(pcm) <= len(cli_pcm) and np.array_equal(pcm, cli_pcm[: len(pcm)]), \
        f"libespeak-ng audio differs from the CLI's for {text!r}"
    # espeak sometimes speaks two short words as one (one event): those words share one span
    offsets = [m.start() + 1 for m in re.finditer(r"\S+", text)]  # 1-based, as espeak counts
    by_offset = {int(pos): ms / 1000 for pos, ms in events}
    assert offsets[0] in by_offset and set(by_offset) <= set(offsets), (text, events)
    return [by_offset.get(o) for o in offsets]


def _espeak_words_main(voice: str, speed: str, text: str) -> None:
    import ctypes

    class Event(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("uid", ctypes.c_uint), ("text_position", ctypes.c_int),
                    ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                    ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]

    lib = ctypes.CDLL("libespeak-ng.so.1")
    lib.espeak_Initialize(2, 0, None, 0)  # AUDIO_OUTPUT_SYNCHRONOUS
    chunks, starts = [], []

    @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event))
    def callback(wav, n, events):
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != 0:  # espeakEVENT_LIST_TERMINATED
            if events[i].type == 1 and events[i].length > 0:  # espeakEVENT_WORD
                starts.append((events[i].text_position, events[i].audio_position))
            i += 1
        return 0

    lib.espeak_SetSynthCallback(callback)
    lib.espeak_SetVoiceByName(voice.encode())
    lib.espeak_SetParameter(1, int(speed), 0)  # espeakRATE
    data = text.encode()
    lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, 1, None, None)  # espeakCHARS_UTF8
    lib.espeak_Synchronize()
    sys.stdout.buffer.write(np.array([len(starts)] + [v for pair in starts for v in pair], np.int32).tobytes()
                            + np.concatenate(chunks).astype(np.int16).tobytes())


def word_spans(audio: np.ndarray, starts: list[float | None]) -> list[tuple[float, float, bool]]:
    """Each word spans its audible 5 ms frames (same -40 dB rule as the IPUs) between its own
    start event and the next one. Words espeak spoke as one (no event of their own) share their
    group's span and are flagged `joined` (their inner boundary is unknown)."""
    hop = int(FRAME * SR)
    n = len(audio) // hop + 1
    padded = np.zeros(n * hop, np.float32)
    padded[: len(audio)] = audio
    level = 20 * np.log10(np.sqrt(np.mean(padded.reshape(n, hop) ** 2, axis=1)) + 1e-12)
    loud = level > level.max() - 40
    groups: list[list[int]] = []
    for k, t in enumerate(starts):
        if t is None:
            groups[-1].append(k)
        else:
            groups.append([k])
    bounds = [max(0.0, starts[g[0]]) for g in groups] + [len(audio) / SR]
    spans: list[tuple[float, float, bool]] = [None] * len(starts)
    for g, a, b in zip(groups, bounds[:-1], bounds[1:]):
        idx = np.flatnonzero(loud[int(a / FRAME): int(np.ceil(b / FRAME))]) + int(a / FRAME)
        span = (round(idx[0] * FRAME, 3), round(min((idx[-1] + 1) * FRAME, len(audio) / SR), 3)) \
            if len(idx) else (round(a, 3), round(b, 3))
        for k in g:
            spans[k] = (*span, len(g) > 1)
    return spans


@dataclass
class Placed:
    step: Step
    speaker: str
    start: float
    audio: np.ndarray
    words: list[tuple[float, float, bool]]  # [start, end) of each word relative to `start`, joined
    truncated: bool = False

    @property
    def end(self) -> float:
        return self.start + len(self.audio) / SR


def place(dialogue: Dialogue, seed: int) -> list[Placed]:
    """Turn the script into absolutely timed utterances (see Step for the kinds)."""
    placed: list[Placed] = []
    holder: Placed | None = None
    pending_bc: Placed | None = None
    for i, step in enumerate(dialogue.steps):
        audio, words = synthesise(step.text, dialogue.voices[step.speaker], seed + i)
        if holder is None:
            start = 0.6
        elif step.kind == "turn":
            start = holder.end + step.gap
        elif step.kind == "cont":
            start = holder.end + step.pause
            if pending_bc is not None:  # leave room after a backchannel in the pause
                start = max(start, pending_bc.end + 0.35)
        elif step.kind in ("bc", "int_ok", "int_fail"):
            start = holder.start + step.at * (holder.end - holder.start)
        elif step.kind == "bc_pause":
            start = holder.end + 0.45
        else:
            raise ValueError(step.kind)
        item = Placed(step, step.speaker, start, audio, words)
        if step.kind == "bc":
            assert item.end < holder.end - 0.2, f"{dialogue.id} step {i}: backchannel outlasts the turn"
        if step.kind == "int_fail":
            assert item.end < holder.end - 0.3, f"{dialogue.id} step {i}: failed interruption outlasts the turn"
        if step.kind == "int_ok":  # the holder is cut off `overlap` seconds after the interruption starts
            keep = int((start + step.overlap - holder.start) * SR)
            fade = np.linspace(1.0, 0.0, int(0.03 * SR), dtype=np.float32)
            cut = holder.audio[:keep].copy()
            cut[-len(fade):] *= fade
            holder.audio, holder.truncated = cut, True
            cut_at = len(cut) / SR  # words after the cut were never heard; the one across it ends there
            holder.words = [(a, min(b, cut_at), j) for a, b, j in holder.words if a < cut_at - 0.02]
        placed.append(item)
        pending_bc = item if step.kind == "bc_pause" else None
        if step.kind in ("turn", "cont", "int_ok"):
            holder = item
        elif holder is None:
            holder = item
    return placed


# ---------------------------------------------------------------------------------------- truth
def activity(track: np.ndarray) -> list[tuple[float, float]]:
    """IPUs of a clean track: 5 ms frames above -40 dB re the track's peak, gaps < BRIDGE bridged."""
    hop = int(FRAME * SR)
    n = len(track) // hop
    frames = track[: n * hop].reshape(n, hop)
    level = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-12)
    active = level > level.max() - 40
    spans: list[list[float]] = []
    for idx in np.flatnonzero(active):
        t0, t1 = idx * FRAME, (idx + 1) * FRAME
        if spans and t0 - spans[-1][1] < BRIDGE:
            spans[-1][1] = t1
        else:
            spans.append([t0, t1])
    return [(round(a, 3), round(b, 3)) for a, b in spans]


def timing_events(ipus: dict[int, list[tuple[float, float]]]) -> list[dict]:
    """overlap / gap / pause by a sweep over all channels' IPUs (definitions in the README)."""
    points = sorted({t for spans in ipus.values() for s in spans for t in s})
    events = []
    for a, b in zip(points, points[1:]):
        mid = (a + b) / 2
        talking = [c for c, spans in ipus.items() if any(s <= mid < e for s, e in spans)]
        kind = "overlap" if len(talking) >= 2 else ("silence" if not talking else None)
        if kind and events and events[-1]["type"] == kind and abs(events[-1]["end"] - a) < 1e-9 and (
            kind == "silence" or events[-1]["channels"] == talking
        ):
            events[-1]["end"] = b
        elif kind:
            events.append({"type": kind, "start": a, "end": b, "channels": talking})
    out = []
    first = min(s for spans in ipus.values() for s, _ in spans)
    last = max(e for spans in ipus.values() for _, e in spans)
    for ev in events:
        if ev["type"] == "overlap":
            out.append(dict(type="overlap", channel=None, start=ev["start"], end=ev["end"],
                            attributes={"channels": ev["channels"]}))
            continue
        if ev["start"] <= first or ev["end"] >= last:
            continue
        before = [c for c, spans in ipus.items() if any(abs(e - ev["start"]) < 1e-9 for _, e in spans)]
        after = [c for c, spans in ipus.items() if any(abs(s - ev["end"]) < 1e-9 for s, _ in spans)]
        same = before == after and len(before) == 1
        out.append(dict(type="pause" if same else "gap", channel=before[0] if same else None,
                        start=ev["start"], end=ev["end"],
                        attributes={"from_channel": before[0], "to_channel": after[0]}))
    return out


def ipu_containing(ipus: list[tuple[float, float]], start: float, end: float) -> tuple[float, float]:
    best = max(ipus, key=lambda s: min(s[1], end) - max(s[0], start))
    assert min(best[1], end) > max(best[0], start)
    return best


def truth_for(render: Render, placed: list[Placed], channel_of: dict[str, int],
              ipus: dict[int, list[tuple[float, float]]]) -> tuple[list[dict], list[dict]]:
    rid = render.dialogue.id
    segments = []
    for ch, spans in ipus.items():
        for k, (s, e) in enumerate(spans):
            texts = ["".join(written_words(p.step.text)) if p.step.text in HANZI else p.step.text
                     for p in placed if channel_of[p.speaker] == ch and p.start < e and p.end > s]
            segments.append(dict(recording_id=rid, segment_id=f"{rid}_c{ch}_{k:05d}", channel=ch,
                                 speaker_id=render.cast[[k_ for k_, v in channel_of.items() if v == ch][0]]
                                 if render.delivery != "mono_mix" else "mix",
                                 start=s, end=e, confidence=1.0, source="truth", crosstalk_suppressed=0.0,
                                 attributes=json.dumps({"text": " ".join(texts)}, ensure_ascii=False)))
    events = timing_events(ipus) if len(ipus) > 1 else []
    holder_at = {}
    for p in placed if len(ipus) > 1 else []:  # a mono mix has no per-speaker events
        ch = channel_of[p.speaker]
        span = ipu_containing(ipus[ch], p.start, p.end)
        if p.step.kind in ("bc", "bc_pause"):
            events.append(dict(type="backchannel", channel=ch, start=span[0], end=span[1],
                               attributes={"text": p.step.text}))
        elif p.step.kind in ("int_ok", "int_fail"):
            other = holder_at["holder"]
            other_span = ipu_containing(ipus[other], p.start - 0.01, p.start + 0.01)
            events.append(dict(type="interruption", channel=ch, start=span[0],
                               end=min(span[1], other_span[1]),
                               attributes={"successful": p.step.kind == "int_ok", "interrupted_channel": other}))
        if p.step.kind in ("turn", "cont", "int_ok") or "holder" not in holder_at:
            holder_at["holder"] = ch
    events.sort(key=lambda e: (e["start"], e["type"]))
    rows = []
    for k, ev in enumerate(events):
        rows.append(dict(recording_id=rid, event_id=f"{rid}_{ev['type']}_{k:05d}", type=ev["type"],
                         channel=ev["channel"], start=round(ev["start"], 3), end=round(ev["end"], 3),
                         confidence=1.0, source="truth", attributes=json.dumps(ev["attributes"])))
    return segments, rows


def word_truth(render: Render, placed: list[Placed], channel_of: dict[str, int]) -> list[dict]:
    """One row per word (per character in Mandarin) with its exact time on its channel."""
    rows = []
    for u, p in enumerate(placed):
        written = written_words(p.step.text)
        for k, (word, (a, b, joined)) in enumerate(zip(written, p.words)):
            rows.append(dict(recording_id=render.dialogue.id, channel=channel_of[p.speaker], utterance=u, index=k,
                             word=word, start=round(p.start + a, 3), end=round(p.start + b, 3), joined=joined,
                             kind=p.step.kind, language=render.dialogue.lang))
    return rows


# ------------------------------------------------------------------------------------ nuisances
def delayed(x: np.ndarray, delay_s: float) -> np.ndarray:
    d = int(round(delay_s * SR))
    return np.concatenate([np.zeros(d, np.float32), x[: len(x) - d]])


def coloured_noise(n: int, dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """Low-pass (brown-ish) noise with a bit of 50 Hz hum, at `dbfs` RMS."""
    white = rng.standard_normal(n).astype(np.float32)
    b, a = scipy.signal.butter(1, 1500 / (SR / 2))
    noise = scipy.signal.lfilter(b, a, white).astype(np.float32)
    noise += 0.3 * np.sin(2 * np.pi * 50 * np.arange(n) / SR).astype(np.float32) * noise.std()
    return noise * (10 ** (dbfs / 20) / (noise.std() + 1e-12))


def mix_channels(render: Render, tracks: list[np.ndarray]) -> np.ndarray:
    rng = np.random.default_rng(render.seed)
    out = []
    for i, own in enumerate(tracks):
        chan = own.copy()
        if render.crosstalk_db is not None:
            for j, other in enumerate(tracks):
                if j != i:
                    jitter = rng.uniform(-2.0, 2.0)  # each leak path a little different
                    gain = 10 ** ((render.crosstalk_db + jitter) / 20)
                    chan += gain * delayed(other, (render.crosstalk_delay_ms + j) / 1000)
        chan += coloured_noise(len(chan), render.noise_dbfs, rng)
        if render.channel_gain_db:
            chan *= 10 ** (render.channel_gain_db[i] / 20)
        out.append(chan)
    return np.stack(out, axis=1)


def telephone(audio: np.ndarray) -> np.ndarray:
    """300-3400 Hz band, 8 kHz."""
    sos = scipy.signal.butter(4, [300, 3400], btype="band", fs=SR, output="sos")
    band = scipy.signal.sosfilt(sos, audio, axis=0).astype(np.float32)
    return soxr.resample(band, SR, 8000).astype(np.float32)


# ------------------------------------------------------------------------------------- broken
def write_broken(metadata_rows: list[dict]) -> list[dict]:
    """Files that must be quarantined, each for one specific reason."""
    rng = np.random.default_rng(99)
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(SR * 2) / SR)).astype(np.float32)
    stereo = np.stack([tone, tone[::-1]], axis=1)
    expected = []

    path = AUDIO / "broken_truncated.flac"
    sf.write(path, stereo, SR, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expected.append(dict(input=path.name, reason_code="truncated"))

    (AUDIO / "broken_empty.wav").write_bytes(b"")
    expected.append(dict(input="broken_empty.wav", reason_code="empty"))

    (AUDIO / "broken_not_audio.wav").write_text("recording_id,notes\nthis is a spreadsheet, not audio\n")
    expected.append(dict(input="broken_not_audio.wav", reason_code="unreadable"))

    nan = stereo.copy()
    nan[SR // 2: SR // 2 + 400, 0] = np.nan
    sf.write(AUDIO / "broken_nan.wav", nan, SR, subtype="FLOAT")
    expected.append(dict(input="broken_nan.wav", reason_code="non_finite"))

    loud = np.clip(stereo * 8 + 0.01 * rng.standard_normal(stereo.shape), -1, 1).astype(np.float32)
    sf.write(AUDIO / "broken_clipped.flac", loud, SR, subtype="PCM_16")
    expected.append(dict(input="broken_clipped.flac", reason_code="clipped"))

    sf.write(AUDIO / "broken_rate.wav", stereo[:400], 200, subtype="PCM_16")
    expected.append(dict(input="broken_rate.wav", reason_code="bad_sample_rate"))

    sf.write(AUDIO / "broken_channels.wav", np.tile(tone[: SR // 2, None], (1, 12)), SR, subtype="PCM_16")
    expected.append(dict(input="broken_channels.wav", reason_code="bad_channel_count"))
    return expected


# ---------------------------------------------------------------------------------------- main
def arrow_schema(table: str) -> pa.Schema:
    """Read the contract's Arrow schema without importing the pipeline package."""
    prim = {"string": pa.string(), "int32": pa.int32(), "float32": pa.float32(), "float64": pa.float64()}
    spec = json.loads((SCHEMA_DIR / f"{table}.arrow.json").read_text())
    return pa.schema([pa.field(f["name"], prim[f["type"]], nullable=f["nullable"]) for f in spec["fields"]])


def render_one(render: Render) -> tuple[list[dict], list[dict], list[dict], dict, list[dict]]:
    dlg = render.dialogue
    placed = place(dlg, render.seed * 100)
    order = sorted(dlg.voices)
    channel_of = {spk: i for i, spk in enumerate(order)}
    duration = max(p.end for p in placed) + 0.8
    n = int(duration * SR)
    tracks = [np.zeros(n, np.float32) for _ in order]
    for p in placed:
        i0 = int(round(p.start * SR))
        tracks[channel_of[p.speaker]][i0: i0 + len(p.audio)] += p.audio
    rng = np.random.default_rng(render.seed)
    for k, spk in enumerate(order):  # speakers differ in loudness a little
        tracks[k] *= 10 ** (rng.uniform(-3, 0) / 20)

    if render.delivery == "mono_mix":
        ipus = {0: activity(sum(tracks))}
        channel_of = {spk: 0 for spk in order}
    else:
        ipus = {channel_of[s]: activity(tracks[channel_of[s]]) for s in order}
    segments, events = truth_for(render, placed, channel_of, ipus)
    words = word_truth(render, placed, channel_of)

    mixed = mix_channels(render, tracks)
    rid = dlg.id
    if render.delivery == "flac":
        sf.write(AUDIO / f"{rid}.flac", mixed, SR, subtype="PCM_16")
    elif render.delivery == "telephone":
        sf.write(AUDIO / f"{rid}.wav", telephone(mixed), 8000, format="WAV", subtype="ULAW")
    elif render.delivery == "mono_pair":
        for k in range(mixed.shape[1]):
            sf.write(AUDIO / f"{rid}.ch{k}.flac", mixed[:, k], SR, subtype="PCM_16")
    elif render.delivery == "mono_mix":
        mono = mixed.sum(axis=1) / 2 + coloured_noise(n, render.noise_dbfs, rng)
        sf.write(AUDIO / f"{rid}.flac", mono, SR, subtype="PCM_16")

    meta = []
    for spk in order:
        meta.append(dict(recording_id=rid, channel=channel_of[spk] if render.delivery != "mono_mix" else 0,
                         speaker_id=render.cast[spk] if render.delivery != "mono_mix" else "mix",
                         **(SPEAKERS[render.cast[spk]] if render.delivery != "mono_mix" else
                            dict(gender=None, age_group=None, accent=None, language=dlg.lang)),
                         scenario=dlg.scenario, environment=dlg.environment, device=dlg.device))
        if render.delivery == "mono_mix":
            break
    timeline = dict(recording_id=rid, language=dlg.lang, delivery=render.delivery,
                    crosstalk_db=render.crosstalk_db, noise_dbfs=render.noise_dbfs,
                    channel_gain_db=render.channel_gain_db, duration=round(duration, 3),
                    utterances=[dict(speaker=p.speaker, channel=channel_of[p.speaker], kind=p.step.kind,
                                     text=p.step.text, written=" ".join(written_words(p.step.text))
                                     if p.step.text not in HANZI else HANZI[p.step.text],
                                     start=round(p.start, 3), end=round(p.end, 3),
                                     truncated=p.truncated) for p in placed])
    return segments, events, meta, timeline, words


def main() -> None:
    AUDIO.mkdir(exist_ok=True)
    TRUTH.mkdir(exist_ok=True)
    for old in AUDIO.iterdir():
        old.unlink()
    segments, events, meta, timelines, words = [], [], [], [], []
    for render in rendering_plan():
        s, e, m, t, w = render_one(render)
        words += w
        segments += s
        events += e
        meta += m
        timelines.append(t)
        print(f"{render.dialogue.id}: {t['duration']:.1f} s, {len(s)} IPUs, {len(e)} events")
    broken = write_broken(meta)
    pq.write_table(pa.Table.from_pylist(segments, schema=arrow_schema("segments")), TRUTH / "segments.parquet")
    pq.write_table(pa.Table.from_pylist(events, schema=arrow_schema("events")), TRUTH / "events.parquet")
    pq.write_table(pa.Table.from_pylist(words), TRUTH / "words.parquet")
    (TRUTH / "timeline.json").write_text(json.dumps(timelines, indent=1, ensure_ascii=False))
    (TRUTH / "quarantine_expected.json").write_text(json.dumps(broken, indent=1))
    cols = ["recording_id", "channel", "speaker_id", "gender", "age_group", "accent", "language",
            "scenario", "environment", "device"]
    lines = [",".join(cols)] + [",".join("" if r[c] is None else str(r[c]) for c in cols) for r in meta]
    (AUDIO / "metadata.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--espeak-words"]:
        _espeak_words_main(*sys.argv[2:5])
    else:
        main()
