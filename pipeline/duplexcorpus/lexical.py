"""Lexical conversational events, once words exist (bilingual lexicons in pipeline/text.py).

- backchannels: the timing rules (turntaking.py) already apply the Full-Duplex-Bench limits (under
  1 s, at most 3 words); here each one also gets its text and whether every unit is a listener
  token ("mm-hmm", "yeah", "嗯", "对"). A timing backchannel whose words are not listener tokens
  keeps its place but loses half its confidence, so review (and trainers) can find it;
- fillers: every filler word ("uh", "um", "呃", "嗯" inside a turn) becomes a `filler` event.
"""
from __future__ import annotations

import bisect
import dataclasses

from duplexcorpus.records import Event, Segment, Word
from duplexcorpus.text import is_backchannel_text, is_filler


def _containing(index: dict, key, start: float, end: float):
    """The segment of `key` (channel, speaker) that contains [start, end], by bisection."""
    starts, segs = index.get(key, ((), ()))
    k = bisect.bisect_right(starts, start + 1e-3) - 1  # the last one starting at or before `start`
    return segs[k] if k >= 0 and segs[k].end >= end - 1e-3 else None


def _by_party(items, key) -> dict:
    groups: dict = {}
    for x in sorted(items, key=lambda x: x.start):
        groups.setdefault(key(x), []).append(x)
    return {k: ([x.start for x in v], v) for k, v in groups.items()}


def refine_backchannels(events: list[Event], segments: list[Segment], max_units: int) -> list[Event]:
    index = _by_party(segments, lambda s: (s.channel, s.speaker_id))
    out = []
    for ev in events:
        if ev.type == "backchannel" and not ev.attributes.get("nonverbal"):  # a laugh has no listener token
            keys = [(ev.channel, ev.speaker_id)] if ev.speaker_id is not None else [k for k in index if k[0] == ev.channel]
            seg = next((s for k in keys if (s := _containing(index, k, ev.start, ev.end))), None)
            text = seg.attributes.get("text") if seg else None
            if text is not None:
                lexical = is_backchannel_text(text, max_units)
                attrs = dict(ev.attributes, text=text, lexical=lexical)
                conf = ev.confidence if lexical else round(ev.confidence * 0.5, 3)
                ev = dataclasses.replace(ev, attributes=attrs, confidence=conf)
        out.append(ev)
    return out


def filler_events(recording_id: str, words: list[Word], backchannel_spans: list[tuple[int, float, float]]) -> list[Event]:
    """A filler word inside a turn; the same token standing alone as a backchannel is not one."""
    spans: dict[int, list[tuple[float, float]]] = {}
    for c, s, e in sorted(backchannel_spans, key=lambda x: x[1]):
        spans.setdefault(c, []).append((s, e))
    starts = {c: [s for s, _ in v] for c, v in spans.items()}
    out = []
    for w in words:
        if not is_filler(w.word):
            continue
        k = bisect.bisect_right(starts.get(w.channel, []), w.start + 1e-3) - 1
        if any(s - 1e-3 <= w.start and w.end <= e + 1e-3 for s, e in spans.get(w.channel, [])[max(0, k - 2): k + 1]):
            continue
        out.append(Event(recording_id, "filler", w.channel, w.start, w.end, w.score, "lexicon",
                         {"word": w.word, "language": w.language}, w.speaker_id))
    return out
