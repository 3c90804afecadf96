"""THE REFERENCE USED ONLY BY TESTS: the turn-taking rules as they were before the sweep rewrite
(commit a258cfd, `duplexcorpus/turntaking.py`), kept verbatim as a test oracle.

It scans every IPU for each IPU (quadratic) and identifies the parties by channel, so it is the
oracle for one-speaker-per-channel recordings only: `tests/test_turntaking.py` checks that
`duplexcorpus.turntaking.detect_events` returns exactly these events on random IPU sets, and
`bench/bench_turntaking.py` times it for comparison. Never import it from the package.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from duplexcorpus.config import EventsConfig
from duplexcorpus.records import Event, Segment
from duplexcorpus.text import units

EPS = 1e-6


@dataclass(frozen=True)
class _Ipu:
    index: int
    channel: int
    start: float
    end: float
    confidence: float
    words: int | None  # None until text exists
    speaker: str | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


def _elementary(ipus: Sequence[_Ipu]) -> list[tuple[float, float, frozenset[int]]]:
    """Split the timeline at every boundary: (start, end, channels talking) pieces."""
    points = sorted({t for u in ipus for t in (u.start, u.end)})
    pieces = []
    for a, b in zip(points, points[1:]):
        mid = (a + b) / 2
        pieces.append((a, b, frozenset(u.channel for u in ipus if u.start <= mid < u.end)))
    return pieces


def _is_backchannel(u: _Ipu, ipus: Sequence[_Ipu], cfg: EventsConfig, limits: bool = True) -> int | None:
    """The channel whose floor the IPU sits in, if `u` is a backchannel; else None (`limits`: the
    duration and word limits apply; a laugh is tested without them)."""
    if limits and u.duration >= cfg.backchannel_max_duration:
        return None
    if limits and u.words is not None and u.words > cfg.backchannel_max_words:
        return None
    others = [v for v in ipus if v.channel != u.channel]
    # who holds the floor when u starts: someone speaking, or the last to stop (recently)
    talking = [v for v in others if v.start < u.start - EPS and v.end > u.start + EPS]
    if talking:
        holder = max(talking, key=lambda v: v.start).channel
    else:
        before = [v for v in others if v.end <= u.start + EPS and u.start - v.end <= cfg.backchannel_context]
        if not before:
            return None
        holder = max(before, key=lambda v: v.end).channel
    # the holder keeps the floor: still talking at u.end, or the next to start talking
    if any(v.channel == holder and v.start < u.end - EPS and v.end > u.end + EPS for v in others):
        return holder
    after = [v for v in ipus if v.start >= u.end - EPS and v.index != u.index]
    if not after:
        return None
    nxt = min(after, key=lambda v: v.start)
    if nxt.channel == holder and nxt.start - u.end <= cfg.backchannel_context:
        return holder
    return None


def detect_events(segments: Iterable[Segment], cfg: EventsConfig) -> list[Event]:
    """Added with the non-verbal events: laughs and coughs (`attributes.nonverbal`) are taken out of
    the rules; a laugh in another's floor is a backchannel with `nonverbal: laughter`."""
    segs = sorted(segments, key=lambda s: (s.start, s.channel))
    verbal = [s for s in segs if not s.attributes.get("nonverbal")]
    events = _verbal_events(verbal, cfg)
    ipus = [_Ipu(i, s.channel, s.start, s.end, s.confidence, None, s.speaker_id) for i, s in enumerate(verbal)]
    for s in segs:
        if s.attributes.get("nonverbal") == "laughter" and ipus:
            u = _Ipu(-1, s.channel, s.start, s.end, s.confidence, None, s.speaker_id)
            holder = _is_backchannel(u, ipus, cfg, limits=False)
            if holder is not None:
                events.append(Event(s.recording_id, "backchannel", s.channel, round(s.start, 3), round(s.end, 3),
                                    round(float(s.confidence), 3), "rules",
                                    {"floor_channel": holder, "nonverbal": "laughter"}, s.speaker_id))
    return sorted(events, key=lambda e: (e.start, e.type, -1 if e.channel is None else e.channel))


def _verbal_events(segs: list[Segment], cfg: EventsConfig) -> list[Event]:
    if not segs:
        return []
    rid = segs[0].recording_id
    ipus = [
        _Ipu(i, s.channel, s.start, s.end, s.confidence,
             len(units(s.attributes["text"])) if s.attributes.get("text") else None, s.speaker_id)
        for i, s in enumerate(segs)
    ]
    conf = {u.index: u.confidence for u in ipus}
    events: list[Event] = []

    def emit(type_: str, channel: int | None, start: float, end: float, members: Iterable[_Ipu], **attrs):
        members = list(members)
        c = min((conf[m.index] for m in members), default=1.0)
        speaker = next((m.speaker for m in members if m.channel == channel), None) if channel is not None else None
        events.append(Event(rid, type_, channel, round(start, 3), round(end, 3), round(float(c), 3), "rules", attrs,
                            speaker))

    # --- listener behaviour: backchannels and interruptions ------------------------------------
    backchannel_of: dict[int, int] = {}
    for u in ipus:
        holder = _is_backchannel(u, ipus, cfg)
        if holder is not None:
            backchannel_of[u.index] = holder
            emit("backchannel", u.channel, u.start, u.end, [u], floor_channel=holder)

    failed: set[int] = set()
    for u in ipus:
        if u.index in backchannel_of:
            continue
        speaking = [v for v in ipus if v.channel != u.channel and v.start < u.start - EPS and v.end > u.start + EPS
                    and v.index not in backchannel_of]
        if not speaking:
            continue
        v = max(speaking, key=lambda v: v.start)
        overlap_end = min(u.end, v.end)
        if overlap_end - u.start < cfg.interruption_min_overlap:
            continue  # a smooth overlapped turn change, not an interruption
        successful = v.end < u.end - EPS
        if not successful:
            failed.add(u.index)
        emit("interruption", u.channel, u.start, overlap_end, [u, v], successful=successful,
             interrupted_channel=v.channel, yield_time=round(v.end - u.start, 3) if successful else None)

    # --- the floor: turns and floor transfers ---------------------------------------------------
    floor = [u for u in ipus if u.index not in backchannel_of and u.index not in failed]
    turns: list[list[_Ipu]] = []
    for u in floor:
        if turns and turns[-1][-1].channel == u.channel:
            turns[-1].append(u)
        elif turns and u.end <= max(x.end for x in turns[-1]) + EPS:
            continue  # swallowed inside the current turn; does not take the floor
        else:
            turns.append([u])
    transfers = []
    for t in turns:
        emit("turn", t[0].channel, t[0].start, max(x.end for x in t), t)
    for prev, nxt in zip(turns, turns[1:]):
        prev_end, next_start = max(x.end for x in prev), nxt[0].start
        transfers.append((min(prev_end, next_start), max(prev_end, next_start)))
        emit("floor_transfer", nxt[0].channel, min(prev_end, next_start), max(prev_end, next_start),
             [prev[-1], nxt[0]], offset=round(next_start - prev_end, 3),
             from_channel=prev[0].channel, to_channel=nxt[0].channel)

    # --- overlaps, gaps and pauses from the elementary timeline ----------------------------------
    pieces = _elementary(ipus)
    merged: list[list] = []
    for a, b, chans in pieces:
        kind = "overlap" if len(chans) >= 2 else ("silence" if not chans else None)
        if kind and merged and merged[-1][0] == kind and abs(merged[-1][2] - a) < EPS and (
                kind == "silence" or merged[-1][3] == chans):
            merged[-1][2] = b
        elif kind:
            merged.append([kind, a, b, chans])
    first, last = ipus[0].start, max(u.end for u in ipus)
    for kind, a, b, chans in merged:
        if kind == "overlap":
            if b - a < cfg.min_overlap:
                continue
            members = [u for u in ipus if u.channel in chans and u.start < b and u.end > a]
            between = any(s - EPS <= a and b <= e + EPS for s, e in transfers)
            emit("overlap", None, a, b, members, channels=sorted(chans), kind="between" if between else "within")
            continue
        if a <= first + EPS or b >= last - EPS:
            continue
        before = [u for u in ipus if abs(u.end - a) < EPS]
        after = [u for u in ipus if abs(u.start - b) < EPS]
        if not before or not after:
            continue
        prev_u, next_u = max(before, key=lambda u: u.start), min(after, key=lambda u: u.end)
        floor_change = any(abs(s - a) < EPS and abs(e - b) < EPS for s, e in transfers)
        if prev_u.channel == next_u.channel:
            emit("pause", prev_u.channel, a, b, [prev_u, next_u], from_channel=prev_u.channel, to_channel=next_u.channel)
        else:
            emit("gap", None, a, b, [prev_u, next_u], from_channel=prev_u.channel, to_channel=next_u.channel,
                 floor_change=floor_change)
    return sorted(events, key=lambda e: (e.start, e.type, -1 if e.channel is None else e.channel))
