"""Lexical conversational events, once words exist (bilingual lexicons in pipeline/text.py).

- backchannels: the timing rules (turntaking.py) already apply the Full-Duplex-Bench limits (under
  1 s, at most 3 words); here each one also gets its text and whether every unit is a listener
  token ("mm-hmm", "yeah", "嗯", "对"). A timing backchannel whose words are not listener tokens
  keeps its place but loses half its confidence, so review (and trainers) can find it;
- fillers: every filler word ("uh", "um", "呃", "嗯" inside a turn) becomes a `filler` event.
"""
from __future__ import annotations

import dataclasses

from duplexcorpus.records import Event, Segment, Word
from duplexcorpus.text import is_backchannel_text, is_filler


def refine_backchannels(events: list[Event], segments: list[Segment], max_units: int) -> list[Event]:
    out = []
    for ev in events:
        if ev.type == "backchannel":
            seg = next((s for s in segments if s.channel == ev.channel and s.start <= ev.start + 1e-3
                        and s.end >= ev.end - 1e-3), None)
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
    out = []
    for w in words:
        if not is_filler(w.word):
            continue
        if any(c == w.channel and s - 1e-3 <= w.start and w.end <= e + 1e-3 for c, s, e in backchannel_spans):
            continue
        out.append(Event(recording_id, "filler", w.channel, w.start, w.end, w.score, "lexicon",
                         {"word": w.word, "language": w.language}, w.speaker_id))
    return out
