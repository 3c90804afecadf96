"""Turn-taking events from IPUs, per speaker: any number of speakers, on their own channels or sharing
one (a mono recording after diarization).

The parties are speakers (`Segment.speaker_id`; a segment without one stands for its channel). Each
IPU belongs to one speaker; two speakers on one channel overlap, interrupt and hand over the floor
exactly as two speakers on two channels do. Events keep the `channel` of the IPU they belong to and
name its speaker in `speaker_id`; their channel attributes (`floor_channel`, `interrupted_channel`,
`from_channel`, `to_channel`, `channels`) name the channels of the IPUs involved, so on a shared
channel `from_channel` may equal `to_channel`.

Definitions (dGSLM on Fisher; Full-Duplex-Bench), thresholds in `EventsConfig`:
- pause: silence from everyone between two IPUs of the same speaker.
- gap: silence from everyone between an IPU of one speaker and the next IPU of another.
- overlap: two or more speakers talking at once; `kind` = between (at a floor transfer) or within.
- backchannel: a short listener IPU (< 1 s; <= 3 words once text exists) inside the other's IPU or
  pause, after which the other keeps the floor.
- interruption: a listener starts (not a backchannel) while the other speaks and the overlap lasts
  at least `interruption_min_overlap`; `successful` when the other stops first and the listener
  keeps the floor. Shorter overlaps at a turn change are smooth overlapped transitions.
- turn / floor_transfer: the floor passes between speakers (backchannels and failed interruptions
  do not take it); `offset` = next turn start - previous turn end (negative when overlapped).
- non-verbal IPUs (`attributes.nonverbal` = laughter or cough, set by the events stage when such an
  event covers the IPU and it has no words but laugh tokens) never take the floor and make no
  turn, gap, pause, overlap or interruption: the rules above run on the verbal IPUs alone. A laugh
  sitting in another speaker's floor (the backchannel test, without its duration and word limits)
  is a listener response and is reported as a `backchannel` with `nonverbal: "laughter"`: an
  attribute, not a new event type, because for the floor it behaves exactly like "mm-hmm" (the
  speaker keeps the floor) and a duplex model's backchannel frame label should include it; the
  `laughter` event beside it says what the sound was. A cough is never a response.

Cost: O(n log n) in the number of IPUs (times the number of speakers, a small constant). The IPUs
are sorted once; "who is speaking at t" is a sweep with one heap per speaker, "the last IPU of
another speaker to end before t" and "the next IPU to start after t" are bisections of sorted
arrays, the elementary timeline is a sweep over the sorted boundaries, and the IPUs ending or
starting at a silence are range queries. `tests/turntaking_reference.py` keeps the former quadratic
scan, which identified parties by channel; on one speaker per channel both return the same events
(a property test checks it).

Everything here is a pure function of the IPUs, so the same code serves automatic and human labels.
"""
from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Callable, Hashable, Iterable, Iterator, Sequence

from duplexcorpus.config import EventsConfig
from duplexcorpus.records import Event, Recording, Segment
from duplexcorpus.text import units

EPS = 1e-6


@dataclass(frozen=True, slots=True)
class _Ipu:
    index: int  # position in start order
    channel: int
    start: float
    end: float
    confidence: float
    words: int | None  # None until text exists
    speaker: str | None
    party: Hashable  # the speaker; ("channel", c) when the segment names none

    @property
    def duration(self) -> float:
        return self.end - self.start


def _first(n: int, pred: Callable[[int], bool], lo: int = 0) -> int:
    """The first i in [lo, n) where `pred` holds (False ... False True ... True), else n."""
    hi = n
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _near(values: Sequence[float], t: float) -> tuple[int, int]:
    """The range [lo, hi) of the sorted `values` with abs(value - t) < EPS, computed exactly as
    written (fl(value - t) is monotone in value, so the range is contiguous). Values outside
    [t - 2 EPS, t + 2 EPS] are surely outside (times far below 2**40 s), so C bisection narrows the
    search first."""
    lo, hi = bisect_left(values, t - 2 * EPS), bisect_right(values, t + 2 * EPS)
    return _first(hi, lambda i: values[i] - t > -EPS, lo), _first(hi, lambda i: values[i] - t >= EPS, lo)


class _RangeMin:
    """Position of the smallest key (primary[i], secondary[i]) in a range of positions (iterative
    segment tree; keys distinct)."""

    def __init__(self, primary: Sequence[float], secondary: Sequence[int]):
        self.primary, self.secondary, self.size = primary, secondary, 1
        while self.size < len(primary):
            self.size *= 2
        tree: list[int | None] = [None] * (2 * self.size)
        tree[self.size:self.size + len(primary)] = range(len(primary))
        for i in range(self.size - 1, 0, -1):
            tree[i] = self._better(tree[2 * i], tree[2 * i + 1])
        self.tree = tree

    def _better(self, i: int | None, j: int | None) -> int | None:
        if i is None or j is None:
            return j if i is None else i
        pi, pj = self.primary[i], self.primary[j]
        return i if pi < pj or (pi == pj and self.secondary[i] < self.secondary[j]) else j

    def query(self, lo: int, hi: int) -> int | None:
        best, lo, hi = None, lo + self.size, hi + self.size
        while lo < hi:
            if lo & 1:
                best, lo = self._better(best, self.tree[lo]), lo + 1
            if hi & 1:
                hi -= 1
                best = self._better(best, self.tree[hi])
            lo, hi = lo // 2, hi // 2
        return best


class _Speaking:
    """Who is speaking at t, per party: among one party's IPUs with start < t - EPS and end > t + EPS,
    the one that started last (ties: the first in start order). Queries come in non-decreasing t: a
    sweep with one heap per party, IPUs entering once they start and leaving once they have ended."""

    def __init__(self, by_party: dict[Hashable, list[_Ipu]]):
        self.lists = by_party
        self.entered = {p: 0 for p in by_party}
        self.heaps: dict[Hashable, list] = {p: [] for p in by_party}

    def at(self, t: float) -> dict[Hashable, _Ipu]:
        lo, hi = t - EPS, t + EPS
        out = {}
        for p, us in self.lists.items():
            i, heap = self.entered[p], self.heaps[p]
            while i < len(us) and us[i].start < lo:
                heapq.heappush(heap, (-us[i].start, us[i].index, us[i]))
                i += 1
            self.entered[p] = i
            while heap and heap[0][2].end <= hi:  # ended for good: later queries only ask later
                heapq.heappop(heap)
            if heap:
                out[p] = heap[0][2]
        return out


def _latest(talking: dict[Hashable, _Ipu], party: Hashable) -> _Ipu | None:
    """The IPU of another party that started last (ties: the first in start order)."""
    others = [v for p, v in talking.items() if p != party]
    return min(others, key=lambda v: (-v.start, v.index)) if others else None


class _Timeline:
    """Per-party sorted arrays of the IPUs, for the bisections the rules need."""

    def __init__(self, ipus: list[_Ipu]):
        self.ipus = ipus
        self.starts = [u.start for u in ipus]
        self.by_party: dict[Hashable, list[_Ipu]] = {}
        for u in ipus:
            self.by_party.setdefault(u.party, []).append(u)
        self.party_starts = {p: [u.start for u in us] for p, us in self.by_party.items()}
        self.party_end_max = {}  # running max of the end, in start order
        for p, us in self.by_party.items():
            running, out = float("-inf"), []
            for u in us:
                running = max(running, u.end)
                out.append(running)
            self.party_end_max[p] = out
        self.party_by_end = {p: sorted(us, key=lambda u: (u.end, u.index)) for p, us in self.by_party.items()}
        self.party_ends = {p: [u.end for u in us] for p, us in self.party_by_end.items()}
        self.by_end = sorted(ipus, key=lambda u: (u.end, u.index))
        self.ends = [u.end for u in self.by_end]
        self.party_bit = {p: 1 << k for k, p in enumerate(self.by_party)}
        self.channels = sorted({u.channel for u in ipus})
        self.channel_bit = {c: 1 << k for k, c in enumerate(self.channels)}

    def last_ended(self, party: Hashable, t: float) -> _Ipu | None:
        """Among other parties' IPUs with end <= t, the one that ended last (ties: first in start order)."""
        best = None
        for p, ends in self.party_ends.items():
            if p == party:
                continue
            j = bisect_right(ends, t)
            if j:
                v = self.party_by_end[p][bisect_left(ends, ends[j - 1])]
                if best is None or (-v.end, v.index) < (-best.end, best.index):
                    best = v
        return best

    def speaking_through(self, party: Hashable, start_before: float, end_after: float) -> bool:
        """Does `party` have an IPU with start < start_before and end > end_after?"""
        k = bisect_left(self.party_starts[party], start_before)
        return k > 0 and self.party_end_max[party][k - 1] > end_after

    def next_start(self, u: _Ipu, t: float) -> _Ipu | None:
        """The first IPU (start order) other than `u` with start >= t."""
        j = bisect_left(self.starts, t)
        if j == u.index:
            j += 1
        return self.ipus[j] if j < len(self.ipus) else None


def _backchannel_holder(u: _Ipu, tl: _Timeline, talking: dict[Hashable, _Ipu],
                        cfg: EventsConfig) -> tuple[Hashable, int] | None:
    """(party, channel) whose floor the IPU sits in, if `u` is a backchannel; else None."""
    # who holds the floor when u starts: someone speaking, or the last to stop (recently)
    v = _latest(talking, u.party)
    if v is None:
        v = tl.last_ended(u.party, u.start + EPS)
        if v is None or u.start - v.end > cfg.backchannel_context:
            return None
    holder = v.party
    # the holder keeps the floor: still talking at u.end, or the next to start talking
    if tl.speaking_through(holder, u.end - EPS, u.end + EPS):
        return holder, v.channel
    nxt = tl.next_start(u, u.end - EPS)
    if nxt is not None and nxt.party == holder and nxt.start - u.end <= cfg.backchannel_context:
        return holder, v.channel
    return None


def _pieces(tl: _Timeline) -> Iterator[tuple[float, float, int, int]]:
    """Split the timeline at every boundary, by a sweep over the sorted starts and ends:
    (start, end, parties talking, their channels) pieces, the parties and channels as bit masks
    (`_Timeline.party_bit`, `channel_bit`). A piece's talkers are the IPUs with start <= mid < end,
    mid its midpoint: those talking just after its start, or just after its end when the midpoint
    of two neighbouring floats rounds onto the end."""
    ipus, by_end, starts, ends = tl.ipus, tl.by_end, tl.starts, tl.ends
    n = len(ipus)
    party_count = dict.fromkeys(tl.party_bit.values(), 0)
    channel_count = dict.fromkeys(tl.channel_bit.values(), 0)
    parties = channels = 0
    i = j = 0
    prev = None
    while i < n or j < n:
        t = starts[i] if i < n and (j >= n or starts[i] <= ends[j]) else ends[j]
        if t != t:
            raise ValueError("an IPU boundary is NaN")
        while i < n and starts[i] == t:
            u = ipus[i]
            i += 1
            if u.start < u.end:  # an empty IPU never talks
                pb, cb = tl.party_bit[u.party], tl.channel_bit[u.channel]
                party_count[pb] += 1
                channel_count[cb] += 1
                parties, channels = parties | pb, channels | cb
        while j < n and ends[j] == t:
            u = by_end[j]
            j += 1
            if u.start < u.end:
                pb, cb = tl.party_bit[u.party], tl.channel_bit[u.channel]
                party_count[pb] -= 1
                channel_count[cb] -= 1
                if not party_count[pb]:
                    parties &= ~pb
                if not channel_count[cb]:
                    channels &= ~cb
        if prev is not None:
            a, a_parties, a_channels = prev
            if (a + t) / 2 == t:  # a <= mid <= t; equal to t only for neighbouring floats
                yield a, t, parties, channels
            else:
                yield a, t, a_parties, a_channels
        prev = t, parties, channels


def _overlap_confidence(regions: list[tuple[float, float, int]], tl: _Timeline) -> list[float | None]:
    """Per overlap region (a, b, parties), the lowest confidence among its members (IPUs of those
    parties with start < b and end > a), None without members. Regions are disjoint and in time
    order, so one IPU's regions are a range: per party, IPUs in rising confidence paint the regions
    of their range not painted yet (next-unpainted pointers)."""
    best: list[float | None] = [None] * len(regions)
    for p, us in tl.by_party.items():
        bit = tl.party_bit[p]
        mine = [r for r, (_, _, parties) in enumerate(regions) if parties & bit]
        if not mine:
            continue
        starts = [regions[r][0] for r in mine]
        ends = [regions[r][1] for r in mine]
        nxt = list(range(len(mine) + 1))

        def find(i: int) -> int:
            root = i
            while nxt[root] != root:
                root = nxt[root]
            while nxt[i] != root:
                nxt[i], i = root, nxt[i]
            return root

        for u in sorted(us, key=lambda u: u.confidence):
            hi = bisect_left(starts, u.end)  # regions with a < u.end
            j = find(bisect_right(ends, u.start))  # ... and b > u.start
            while j < hi:
                r = mine[j]
                best[r] = u.confidence if best[r] is None else min(best[r], u.confidence)
                nxt[j] = j + 1
                j = find(j + 1)
    return best


def has_parties(recording: Recording, segments: Iterable[Segment]) -> bool:
    """Turn-taking needs two speakers: the recording's channels name them, or diarization found
    them on a shared channel. A one-speaker recording gets no timing events."""
    return len({c.speaker_id for c in recording.channels} | {s.speaker_id for s in segments}) > 1


def _ipus(segs: list[Segment]) -> list[_Ipu]:
    return [
        _Ipu(i, s.channel, s.start, s.end, s.confidence,
             len(units(s.attributes["text"])) if s.attributes.get("text") else None, s.speaker_id,
             s.speaker_id if s.speaker_id is not None else ("channel", s.channel))
        for i, s in enumerate(segs)
    ]


def _laugh_responses(laughs: list[Segment], verbal: list[_Ipu], cfg: EventsConfig) -> list[Event]:
    """Backchannel events (`nonverbal: laughter`) for the laughs that sit in another speaker's floor."""
    if not laughs or not verbal:
        return []
    tl = _Timeline(verbal)
    speaking = _Speaking(tl.by_party)
    out = []
    for s in laughs:  # sorted by start: the sweep's queries must not go back in time
        u = _Ipu(-1, s.channel, s.start, s.end, s.confidence, None, s.speaker_id,
                 s.speaker_id if s.speaker_id is not None else ("channel", s.channel))
        found = _backchannel_holder(u, tl, speaking.at(u.start), cfg)
        if found is not None:
            out.append(Event(s.recording_id, "backchannel", u.channel, round(u.start, 3), round(u.end, 3),
                             round(float(u.confidence), 3), "rules", {"floor_channel": found[1], "nonverbal": "laughter"},
                             u.speaker))
    return out


def detect_events(segments: Iterable[Segment], cfg: EventsConfig) -> list[Event]:
    segs = sorted(segments, key=lambda s: (s.start, s.channel, s.speaker_id or ""))
    verbal = [s for s in segs if not s.attributes.get("nonverbal")]
    laughs = [s for s in segs if s.attributes.get("nonverbal") == "laughter"]
    events = _verbal_events(verbal, cfg)
    events += _laugh_responses(laughs, _ipus(verbal), cfg)
    return sorted(events, key=lambda e: (e.start, e.type, -1 if e.channel is None else e.channel))


def _verbal_events(segs: list[Segment], cfg: EventsConfig) -> list[Event]:
    if not segs:
        return []
    rid = segs[0].recording_id
    ipus = _ipus(segs)
    tl = _Timeline(ipus)
    events: list[Event] = []

    def emit(type_: str, channel: int | None, speaker: str | None, start: float, end: float, conf: float, **attrs):
        events.append(Event(rid, type_, channel, round(start, 3), round(end, 3), round(float(conf), 3), "rules",
                            attrs, speaker))

    def lowest(members: Iterable[_Ipu]) -> float:
        return min((m.confidence for m in members), default=1.0)

    # --- listener behaviour: backchannels and interruptions ------------------------------------
    backchannel: set[int] = set()
    speaking = _Speaking(tl.by_party)
    for u in ipus:
        if u.duration >= cfg.backchannel_max_duration:
            continue
        if u.words is not None and u.words > cfg.backchannel_max_words:
            continue
        found = _backchannel_holder(u, tl, speaking.at(u.start), cfg)
        if found is not None:
            backchannel.add(u.index)
            emit("backchannel", u.channel, u.speaker, u.start, u.end, u.confidence, floor_channel=found[1])

    failed: set[int] = set()
    speaking = _Speaking({p: [u for u in us if u.index not in backchannel] for p, us in tl.by_party.items()})
    for u in ipus:
        if u.index in backchannel:
            continue
        v = _latest(speaking.at(u.start), u.party)
        if v is None:
            continue
        overlap_end = min(u.end, v.end)
        if overlap_end - u.start < cfg.interruption_min_overlap:
            continue  # a smooth overlapped turn change, not an interruption
        successful = v.end < u.end - EPS
        if not successful:
            failed.add(u.index)
        emit("interruption", u.channel, u.speaker, u.start, overlap_end, lowest([u, v]), successful=successful,
             interrupted_channel=v.channel, yield_time=round(v.end - u.start, 3) if successful else None)

    # --- the floor: turns and floor transfers ---------------------------------------------------
    turns: list[list[_Ipu]] = []
    turn_end: list[float] = []  # the latest end in each turn
    for u in ipus:
        if u.index in backchannel or u.index in failed:
            continue
        if turns and turns[-1][-1].party == u.party:
            turns[-1].append(u)
            turn_end[-1] = max(turn_end[-1], u.end)
        elif turns and u.end <= turn_end[-1] + EPS:
            continue  # swallowed inside the current turn; does not take the floor
        else:
            turns.append([u])
            turn_end.append(u.end)
    for t, end in zip(turns, turn_end):
        emit("turn", t[0].channel, t[0].speaker, t[0].start, end, lowest(t))
    # A new turn ends more than EPS after the previous one and starts no earlier, so both ends of
    # the transfers below rise with their order: they are sorted by start and by end alike.
    transfers = []
    for (prev, prev_end), nxt in zip(zip(turns, turn_end), turns[1:]):
        next_start = nxt[0].start
        transfers.append((min(prev_end, next_start), max(prev_end, next_start)))
        emit("floor_transfer", nxt[0].channel, nxt[0].speaker, min(prev_end, next_start),
             max(prev_end, next_start), lowest([prev[-1], nxt[0]]), offset=round(next_start - prev_end, 3),
             from_channel=prev[0].channel, to_channel=nxt[0].channel)
    transfer_starts = [s for s, _ in transfers]
    transfer_ends = [e for _, e in transfers]
    # "an overlap inside a transfer": s - EPS <= a and b <= e + EPS, as prefix maxima over s - EPS
    loose = sorted((s - EPS, e + EPS) for s, e in transfers)
    loose_starts, loose_end_max, running = [s for s, _ in loose], [], float("-inf")
    for _, e in loose:
        running = max(running, e)
        loose_end_max.append(running)

    # --- overlaps, gaps and pauses from the elementary timeline ----------------------------------
    merged: list[list] = []
    for a, b, parties, chans in _pieces(tl):
        kind = "overlap" if parties.bit_count() >= 2 else ("silence" if not parties else None)
        if kind and merged and merged[-1][0] == kind and abs(merged[-1][2] - a) < EPS and (
                kind == "silence" or merged[-1][3] == parties):
            merged[-1][2] = b
        elif kind:
            merged.append([kind, a, b, parties, chans])
    overlaps = [(a, b, parties) for kind, a, b, parties, _ in merged if kind == "overlap" and b - a >= cfg.min_overlap]
    overlap_conf = iter(_overlap_confidence(overlaps, tl))
    first, last = ipus[0].start, max(u.end for u in ipus)
    by_end, ends = tl.by_end, tl.ends
    latest_start = _RangeMin([-u.start for u in by_end], [u.index for u in by_end])  # of the IPUs ending at a silence
    earliest_end = _RangeMin([u.end for u in ipus], range(len(ipus)))  # of those starting after it
    for kind, a, b, parties, chans in merged:
        if kind == "overlap":
            if b - a < cfg.min_overlap:
                continue
            conf = next(overlap_conf)
            k = bisect_right(loose_starts, a)
            between = k > 0 and b <= loose_end_max[k - 1]
            emit("overlap", None, None, a, b, 1.0 if conf is None else conf,
                 channels=[c for k, c in enumerate(tl.channels) if chans >> k & 1],
                 kind="between" if between else "within")
            continue
        if a <= first + EPS or b >= last - EPS:
            continue
        before, after = latest_start.query(*_near(ends, a)), earliest_end.query(*_near(tl.starts, b))
        if before is None or after is None:
            continue
        prev_u, next_u = by_end[before], ipus[after]
        lo, hi = _near(transfer_starts, a)
        elo, ehi = _near(transfer_ends, b)
        floor_change = max(lo, elo) < min(hi, ehi)
        if prev_u.party == next_u.party:
            emit("pause", prev_u.channel, prev_u.speaker, a, b, lowest([prev_u, next_u]),
                 from_channel=prev_u.channel, to_channel=next_u.channel)
        else:
            emit("gap", None, None, a, b, lowest([prev_u, next_u]), from_channel=prev_u.channel,
                 to_channel=next_u.channel, floor_change=floor_change)
    return events
