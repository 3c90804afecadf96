"""English inside Mandarin: which stretches of a Mandarin channel's words to hear again as English.

Whisper decoding a Mandarin channel with `language="zh"` writes an English title or phrase as Han
characters that sound like it ("Let It Go" -> "来特诶特购") or drops it, and those characters come
out with low probability: the decoder was forced into the wrong script. So the low-probability runs
of Han characters are the candidates. Each run is cut out (its IPU bounds the cut) and decoded once
more with the language left open: Whisper's own language identification on that audio decides
between the channel's languages, and a run is written in English only when
- the identification chooses English for it, and
- the English words are confident (their mean probability at least `min_english`): Whisper asked
  for English on Mandarin speech translates, and a translation's words are unsure;
- and the English text is not a known hallucination phrase ("thank you").
Otherwise the Mandarin rows stay. Unsure English words at the run's edges (below `edge_floor`) are
left out: the cut holds a little Mandarin either side. What the English replaces is decided by time,
not by the run: a Mandarin row goes when the kept English covers most of it, or when it covers most
of one English word (the same sound written twice: a title's last syllable the first decode gave
even odds, or cut short at the run's end); a row of the run the kept English does not reach stays.
"""
from __future__ import annotations

from dataclasses import dataclass

from duplexcorpus.asr import gates
from duplexcorpus.asr.units import has_han
from duplexcorpus.text import hallucination_phrase

LOW = 0.5  # a character the decoder gave less than even odds
MIN_RUN_S = 0.3  # an English word is at least a syllable long
CONTEXT_S = 0.2  # audio kept either side of a run (inside its IPU)


@dataclass(frozen=True)
class Run:
    channel: int
    start: float  # the audio to hear again (recording time), inside one IPU
    end: float
    rows: tuple[int, ...]  # indices of the Mandarin rows it would replace


def suspect_runs(words: list[dict], ipus: list[tuple[int, float, float]], low: float = LOW,
                 min_run: float = MIN_RUN_S, context: float = CONTEXT_S) -> list[Run]:
    """Runs of Mandarin rows under `low` probability (one confident row may sit inside a run), one
    IPU each; `ipus`: (channel, start, end)."""
    order = sorted((i for i, w in enumerate(words) if w.get("language") == "zh" and has_han(w["word"])),
                   key=lambda i: (words[i]["channel"], words[i]["start"]))
    runs: list[Run] = []
    k = 0
    while k < len(order):
        if words[order[k]]["score"] >= low:
            k += 1
            continue
        ipu = _ipu_of(words[order[k]], ipus)
        j = k
        while True:  # extend over low rows, bridging one confident row, inside the same IPU
            nxt = [m for m in (j + 1, j + 2) if m < len(order) and words[order[m]]["score"] < low
                   and _ipu_of(words[order[m]], ipus) == ipu]
            if not nxt:
                break
            j = nxt[0]
        rows = tuple(order[k: j + 1])
        start, end = words[rows[0]]["start"], words[rows[-1]]["end"]
        if ipu is not None and end - start >= min_run:
            ch, a, b = ipu
            runs.append(Run(ch, round(max(a, start - context), 3), round(min(b, end + context), 3), rows))
        k = j + 1
    return runs


def _ipu_of(word: dict, ipus: list[tuple[int, float, float]]) -> tuple[int, float, float] | None:
    mid = (word["start"] + word["end"]) / 2
    for ipu in ipus:
        if ipu[0] == word["channel"] and ipu[1] - 1e-3 <= mid <= ipu[2] + 1e-3:
            return ipu
    return None


def english_words(language: str, text: str, words: list[dict], min_english: float,
                  edge_floor: float) -> list[dict] | None:
    """The words of a run heard again, when they are English to keep (see the module docstring),
    unsure edge words left out; None to keep the Mandarin."""
    if language != "en" or not words or has_han(text) or hallucination_phrase(text, "en", weak=True):
        return None
    if gates.loop_cut(words) is not None or gates.compression_ratio(text) > gates.COMPRESSION_RATIO:
        return None  # a decoding failure (Whisper's own fallback rules), not English
    if sum(w["score"] for w in words) / len(words) < min_english:
        return None
    lo, hi = 0, len(words)
    while lo < hi and words[lo]["score"] < edge_floor:
        lo += 1
    while hi > lo and words[hi - 1]["score"] < edge_floor:
        hi -= 1
    return words[lo:hi] or None


def covered_rows(words: list[dict], channel: int, english: list[dict]) -> set[int]:
    """Indices of the Mandarin rows on `channel` that the placed English words stand for (see the
    module docstring): at least half of the row inside the English words' span, or at least half of
    one English word inside the row."""
    if not english:
        return set()
    lo, hi = min(w["start"] for w in english), max(w["end"] for w in english)
    out = set()
    for i, w in enumerate(words):
        if w.get("channel") != channel or w.get("language") != "zh" or not has_han(w["word"]):
            continue
        length = max(w["end"] - w["start"], 1e-3)
        if _overlap(w, lo, hi) >= length / 2 or any(
                _overlap(w, e["start"], e["end"]) >= max(e["end"] - e["start"], 1e-3) / 2 for e in english):
            out.add(i)
    return out


def _overlap(word: dict, start: float, end: float) -> float:
    return max(0.0, min(word["end"], end) - max(word["start"], start))
