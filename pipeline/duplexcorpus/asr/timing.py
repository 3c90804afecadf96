"""Word timing: pure functions on words (dicts with `word`, `start`, `end`, `score`) and 8 ms frame
energies (dB) of the clip they were aligned in.

Cross-attention alignment starts absorb the preceding pause and its ends come early; a CTC aligner
can leave words without times. `place_words` turns either into words that are all timed and ordered,
each inside one IPU:

1. `place_words` keeps each word inside the IPU it overlaps most, snaps its start forward to the
   first loud frame and its end back to the last loud one, and drops times that collapse below
   `min_word` (the word is then unplaced);
2. `extend_ends` carries each end through the speech that follows it, up to a real pause;
3. `snap_joins` moves the shared boundary of two touching words to the energy dip nearby;
4. `interpolate` spreads unplaced words over the gap between their neighbours (by length), flagged
   `interpolated`;
5. `clamp_to_spans` puts every word back inside one IPU.

`recording_words` first makes the words contract units (`units.contract_units`: one Mandarin
character, English word or number per row, punctuation beside it), runs this in clip time on the
clip's own energy and maps the words back to recording time (`ClipPlan.to_recording`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from duplexcorpus.asr.units import contract_units
from duplexcorpus.audio import frame_energy_db

if TYPE_CHECKING:
    from duplexcorpus.asr.plan import ClipPlan

RATE = 16_000  # clips are 16 kHz (Whisper's input rate)
HOP_S = 0.008  # energy frames


def place_words(words: list[dict], spans: list[tuple[float, float]], energy: np.ndarray, t0: float,
                loud_thr: float, min_word: float) -> list[dict]:
    """Keep each word inside its IPU, snap it to the loud frames, interpolate what is unplaced."""
    spans = sorted(spans)
    placed = []
    for w in words:
        s, e = w["start"], w["end"]
        if s is not None and e is not None and e > s:
            span = max(spans, key=lambda sp: (min(sp[1], e) - max(sp[0], s), -abs(sp[0] - s)))
            s, e = min(max(s, span[0]), span[1]), min(max(e, span[0]), span[1])
            i0, i1 = int((s - t0) / HOP_S), int(np.ceil((e - t0) / HOP_S))
            loud = np.flatnonzero(energy[max(0, i0): max(0, i1)] >= loud_thr)
            if len(loud):
                s = max(s, t0 + (max(0, i0) + loud[0]) * HOP_S)
                e = min(e, t0 + (max(0, i0) + loud[-1] + 1) * HOP_S)
        ok = s is not None and e is not None and e - s >= min_word
        placed.append(dict(w, start=s if ok else None, end=e if ok else None, interpolated=not ok))
    # keep order: a word starts no earlier than the previous one ended
    last_end = None
    for w in placed:
        if w["start"] is None:
            continue
        if last_end is not None and w["start"] < last_end:
            w["start"] = last_end
            if w["end"] - w["start"] < min_word:
                w.update(start=None, end=None, interpolated=True)
                continue
        last_end = w["end"]
    extend_ends(placed, spans, energy >= loud_thr, t0)
    snap_joins(placed, energy, t0, min_word=min_word)
    return clamp_to_spans(interpolate(placed, spans, min_word), spans, min_word)


def clamp_to_spans(words: list[dict], spans: list[tuple[float, float]], min_word: float) -> list[dict]:
    """Every word ends up inside one IPU (interpolation can spread words over a gap between two)."""
    for w in words:
        mid = (w["start"] + w["end"]) / 2
        a, b = min(spans, key=lambda sp: 0.0 if sp[0] <= mid <= sp[1] else min(abs(mid - sp[0]), abs(mid - sp[1])))
        s, e = min(max(w["start"], a), b), min(max(w["end"], a), b)
        if e - s < min(min_word, b - a):
            s = min(max(a, s), b - min(min_word, b - a))
            e = s + min(min_word, b - a)
        w["start"], w["end"] = s, e
    return words


def snap_joins(words: list[dict], energy: np.ndarray, t0: float, reach: float = 0.06, min_word: float = 0.0) -> None:
    """Where two words touch (connected speech), move their shared boundary to the energy dip
    within `reach` of it: cross-attention boundaries sit on 20 ms steps and lean early. Neither
    word is left shorter than `min_word` (a shorter one would be stretched over its neighbour later)."""
    timed = [w for w in words if w["start"] is not None]
    k = int(round(reach / HOP_S))
    keep = max(1, int(np.ceil(min_word / HOP_S - 1e-9)))
    for a, b in zip(timed[:-1], timed[1:]):
        if abs(b["start"] - a["end"]) > HOP_S:
            continue
        i = int(round((a["end"] - t0) / HOP_S))
        lo = max(i - k, int(round((a["start"] - t0) / HOP_S)) + keep)
        hi = min(i + k, int(round((b["end"] - t0) / HOP_S)) - keep)
        if hi <= lo or hi > len(energy):
            continue
        j = lo + int(np.argmin(energy[lo:hi]))
        a["end"] = b["start"] = t0 + j * HOP_S


def extend_ends(words: list[dict], spans: list[tuple[float, float]], loud: np.ndarray, t0: float,
                max_quiet: float = 0.06) -> None:
    """Cross-attention ends come early (the alignment hops to the next token at its onset). Carry
    each end forward through the speech that follows it, up to the next word's start or the IPU's
    end, stopping at the first quiet stretch longer than `max_quiet` (a real pause)."""
    timed = [w for w in words if w["start"] is not None]
    for k, w in enumerate(timed):
        span_end = min((e for s, e in spans if s - 1e-6 <= w["start"] <= e + 1e-6), default=w["end"])
        limit = min(timed[k + 1]["start"], span_end) if k + 1 < len(timed) else span_end
        j, stop = int(round((w["end"] - t0) / HOP_S)), int(round((limit - t0) / HOP_S))
        quiet, last_loud = 0, j
        while j < min(stop, len(loud)):
            if loud[j]:
                quiet, last_loud = 0, j + 1
            else:
                quiet += 1
                if quiet * HOP_S > max_quiet:
                    break
            j += 1
        w["end"] = max(w["end"], min(limit, t0 + last_loud * HOP_S))


def interpolate(words: list[dict], spans: list[tuple[float, float]], min_word: float = 0.0) -> list[dict]:
    """Give runs of unplaced words the time between their placed neighbours (or the IPU edges), in
    proportion to their length in characters. Where that gap is shorter than `min_word` per word
    (an unplaced word between two that touch), the neighbours give up time for it, each keeping
    `min_word`: a word stretched to `min_word` later would otherwise overlap the next one."""
    n = len(words)
    i = 0
    while i < n:
        if words[i]["start"] is not None:
            i += 1
            continue
        j = i
        while j < n and words[j]["start"] is None:
            j += 1
        left = words[i - 1]["end"] if i > 0 else spans[0][0]
        right = words[j]["start"] if j < n else spans[-1][1]
        if i == 0 and j < n:  # leading run: the IPU that holds the next placed word
            left = max((sp[0] for sp in spans if sp[0] <= right), default=spans[0][0])
        if j == n and i > 0:  # trailing run: to the end of the IPU of the previous word
            right = min((sp[1] for sp in spans if sp[1] >= left), default=spans[-1][1])
        short = min_word * (j - i) - (right - left)
        if short > 0 and min_word > 0:
            spare_l = max(0.0, words[i - 1]["end"] - words[i - 1]["start"] - min_word) if i > 0 else 0.0
            spare_r = max(0.0, words[j]["end"] - words[j]["start"] - min_word) if j < n else 0.0
            take_l = min(spare_l, max(short / 2, short - spare_r))
            take_r = min(spare_r, short - take_l)
            if take_l > 0:
                words[i - 1]["end"] -= take_l
                left -= take_l
            if take_r > 0:
                words[j]["start"] += take_r
                right += take_r
        right = max(right, left + 0.01 * (j - i))
        weights = np.array([max(1, len(words[k]["word"])) for k in range(i, j)], float)
        edges = left + (right - left) * np.concatenate([[0], np.cumsum(weights) / weights.sum()])
        for k, (a, b) in zip(range(i, j), zip(edges[:-1], edges[1:])):
            words[k].update(start=float(a), end=float(b), interpolated=True)
        i = j
    return words


def recording_words(plan: ClipPlan, audio: np.ndarray, floor: float, language: str, words: list[dict],
                    source: str, *, pad: float, gap: float, snap_floor_db: float, min_word: float,
                    text: str | None = None) -> list[dict]:
    """A clip's words as Word records in recording time: made contract units first (one Mandarin
    character, English word or number each, punctuation in `punct`: `units.contract_units`, with
    `text`, else the plan's, telling which Latin pieces are one word), placed in clip time on the
    clip's own energy (loud = `snap_floor_db` above the channel's noise `floor`), then shifted back.
    A unit whose time is a share of a longer token's span stays flagged `interpolated`."""
    if not words:
        return []
    words = contract_units(words, language, text if text is not None else plan.text)
    if not words:
        return []
    energy = frame_energy_db(audio[None, :], int(HOP_S * RATE))[0]
    split = [w["split"] for w in words]
    words = place_words(words, plan.to_clip_spans(pad, gap), energy, 0.0, floor + snap_floor_db, min_word)
    out = []
    for w, was_split in zip(words, split):
        mid = plan.to_recording((w["start"] + w["end"]) / 2, pad, gap)
        shift = mid - (w["start"] + w["end"]) / 2  # one piece per word: a plain shift
        row = dict(channel=plan.channel, language=w["language"], source=source, word=w["word"],
                   start=round(w["start"] + shift, 3), end=round(w["end"] + shift, 3),
                   score=w["score"], interpolated=bool(w["interpolated"] or was_split))
        if w["punct"] is not None:
            row["punct"] = w["punct"]
        out.append(row)
    return out
