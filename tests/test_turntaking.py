"""Event rules on hand-built timelines (two and three channels, two speakers sharing a channel), and
the sweep against the former quadratic scan on random IPU sets."""
import collections
import dataclasses
import math
import random

from duplexcorpus.config import EventsConfig
from duplexcorpus.records import Segment
from duplexcorpus.turntaking import detect_events
from tests.turntaking_reference import detect_events as reference_events


def seg(ch, s, e, text=None):
    return Segment("r", ch, f"s{ch}", s, e, 0.9, attributes={"text": text} if text else {})


def kinds(events, type_):
    return [(e.channel, e.start, e.end, e.attributes) for e in events if e.type == type_]


def test_gap_pause_and_floor_transfer():
    ev = detect_events([seg(0, 0, 2), seg(0, 2.5, 4), seg(1, 4.4, 6)], EventsConfig())
    assert [(c, s, e) for c, s, e, _ in kinds(ev, "pause")] == [(0, 2.0, 2.5)]
    assert [(s, e) for _, s, e, _ in kinds(ev, "gap")] == [(4.0, 4.4)]
    (transfer,) = kinds(ev, "floor_transfer")
    assert transfer[3]["offset"] == 0.4 and transfer[3]["from_channel"] == 0


def test_backchannel_does_not_take_the_floor():
    ev = detect_events([seg(0, 0, 5), seg(1, 2, 2.5), seg(0, 5.5, 7)], EventsConfig())
    assert [(c, s, e) for c, s, e, _ in kinds(ev, "backchannel")] == [(1, 2.0, 2.5)]
    assert not kinds(ev, "floor_transfer")
    (overlap,) = kinds(ev, "overlap")
    assert overlap[3]["kind"] == "within"


def test_long_text_is_not_a_backchannel():
    ev = detect_events([seg(0, 0, 5), seg(1, 2, 2.8, "well I think that is wrong"), seg(0, 5.5, 7)], EventsConfig())
    assert not kinds(ev, "backchannel")


def test_successful_and_attempted_interruptions():
    ev = detect_events([seg(0, 0, 4), seg(1, 3, 6), seg(0, 6.5, 12), seg(1, 8, 9.5), seg(0, 12.5, 13)], EventsConfig())
    got = [(c, s, e, a["successful"]) for c, s, e, a in kinds(ev, "interruption")]
    assert got == [(1, 3.0, 4.0, True), (1, 8.0, 9.5, False)]
    offsets = [a["offset"] for *_, a in kinds(ev, "floor_transfer")]
    assert offsets == [-1.0, 0.5]


def test_short_overlap_at_turn_change_is_not_an_interruption():
    ev = detect_events([seg(0, 0, 3), seg(1, 2.8, 5)], EventsConfig())
    assert not kinds(ev, "interruption")
    (overlap,) = kinds(ev, "overlap")
    assert overlap[3]["kind"] == "between"
    assert kinds(ev, "floor_transfer")[0][3]["offset"] == -0.2


def test_three_channels():
    ev = detect_events([seg(0, 0, 3), seg(1, 3.3, 6), seg(2, 4, 4.4), seg(2, 6.2, 8)], EventsConfig())
    assert [(c, s, e) for c, s, e, _ in kinds(ev, "backchannel")] == [(2, 4.0, 4.4)]
    assert [(a["from_channel"], a["to_channel"]) for *_, a in kinds(ev, "floor_transfer")] == [(0, 1), (1, 2)]


# --- every event type on hand-made IPUs, with its speaker ----------------------------------------
def spk(ch, speaker, s, e, text=None, conf=0.9):
    return Segment("r", ch, speaker, s, e, conf, attributes={"text": text} if text else {})


def typed(events, type_):
    return [(e.channel, e.speaker_id, e.start, e.end, e.attributes) for e in events if e.type == type_]


def test_pause_is_one_speakers_silence():
    ev = detect_events([seg(0, 0, 2), seg(0, 2.5, 4), seg(1, 4.4, 6)], EventsConfig())
    assert typed(ev, "pause") == [(0, "s0", 2.0, 2.5, {"from_channel": 0, "to_channel": 0})]


def test_gap_between_speakers():
    ev = detect_events([seg(0, 0, 2), seg(1, 2.3, 4), seg(0, 4, 5)], EventsConfig())
    assert typed(ev, "gap") == [(None, None, 2.0, 2.3, {"from_channel": 0, "to_channel": 1, "floor_change": True})]
    assert not typed(ev, "pause")


def test_gap_without_floor_change_after_a_backchannel():
    # s1's backchannel ends, then silence, then s0 goes on: a gap that does not move the floor
    ev = detect_events([seg(0, 0, 3), seg(1, 3.2, 3.6), seg(0, 4, 6)], EventsConfig())
    assert [(s, e, a["floor_change"]) for _, _, s, e, a in typed(ev, "gap")] == [(3.0, 3.2, False), (3.6, 4.0, False)]
    assert [(c, s, e) for c, _, s, e, _ in typed(ev, "backchannel")] == [(1, 3.2, 3.6)]


def test_overlap_between_and_within():
    ev = detect_events([seg(0, 0, 3), seg(1, 2.8, 6), seg(0, 4, 4.5), seg(0, 6.5, 8)], EventsConfig())
    got = [(s, e, a) for _, sp, s, e, a in typed(ev, "overlap")]
    assert got == [(2.8, 3.0, {"channels": [0, 1], "kind": "between"}),
                   (4.0, 4.5, {"channels": [0, 1], "kind": "within"})]
    assert all(sp is None for _, sp, *_ in typed(ev, "overlap"))


def test_overlap_shorter_than_min_overlap_is_not_reported():
    ev = detect_events([seg(0, 0, 3), seg(1, 2.97, 6)], EventsConfig(min_overlap=0.05))
    assert not typed(ev, "overlap")


def test_backchannel_names_its_speaker_and_the_floor():
    ev = detect_events([seg(0, 0, 5), seg(1, 2, 2.5, "yeah"), seg(0, 5.5, 7)], EventsConfig())
    assert typed(ev, "backchannel") == [(1, "s1", 2.0, 2.5, {"floor_channel": 0})]


def test_backchannel_in_the_others_pause():
    ev = detect_events([seg(0, 0, 3), seg(1, 3.3, 3.7), seg(0, 4, 6)], EventsConfig())
    assert [(c, s, e) for c, _, s, e, _ in typed(ev, "backchannel")] == [(1, 3.3, 3.7)]
    assert [(c, s, e) for c, _, s, e, _ in typed(ev, "turn")] == [(0, 0.0, 6.0)]


def test_interruptions_successful_and_failed():
    ev = detect_events([seg(0, 0, 4), seg(1, 3, 6), seg(0, 6.5, 12), seg(1, 8, 9.5), seg(0, 12.5, 13)], EventsConfig())
    assert typed(ev, "interruption") == [
        (1, "s1", 3.0, 4.0, {"successful": True, "interrupted_channel": 0, "yield_time": 1.0}),
        (1, "s1", 8.0, 9.5, {"successful": False, "interrupted_channel": 0, "yield_time": None}),
    ]


def test_turns_and_floor_transfer_offsets():
    ev = detect_events([seg(0, 0, 2), seg(1, 2.5, 4), seg(0, 3.5, 6), seg(0, 6.2, 7), seg(1, 7, 8)], EventsConfig())
    assert [(c, sp, s, e) for c, sp, s, e, _ in typed(ev, "turn")] == [
        (0, "s0", 0.0, 2.0), (1, "s1", 2.5, 4.0), (0, "s0", 3.5, 7.0), (1, "s1", 7.0, 8.0)]
    got = [(c, sp, s, e, a["offset"], a["from_channel"], a["to_channel"])
           for c, sp, s, e, a in typed(ev, "floor_transfer")]
    assert got == [(1, "s1", 2.0, 2.5, 0.5, 0, 1), (0, "s0", 3.5, 4.0, -0.5, 1, 0), (1, "s1", 7.0, 7.0, 0.0, 0, 1)]


# --- two speakers on one channel (a mono recording after diarization) ----------------------------
def test_shared_channel_overlap_and_backchannel_are_per_speaker():
    ev = detect_events([spk(0, "A", 0, 5), spk(0, "B", 2, 2.5, "mm-hmm"), spk(0, "A", 5.5, 7)], EventsConfig())
    assert typed(ev, "backchannel") == [(0, "B", 2.0, 2.5, {"floor_channel": 0})]
    assert typed(ev, "overlap") == [(None, None, 2.0, 2.5, {"channels": [0], "kind": "within"})]
    assert typed(ev, "pause") == [(0, "A", 5.0, 5.5, {"from_channel": 0, "to_channel": 0})]
    assert [(sp, s, e) for _, sp, s, e, _ in typed(ev, "turn")] == [("A", 0.0, 7.0)]
    assert not typed(ev, "floor_transfer")


def test_shared_channel_turn_change_gap_and_interruption():
    ev = detect_events([spk(0, "A", 0, 3), spk(0, "B", 2.8, 5), spk(0, "A", 5.4, 9), spk(0, "B", 6, 7.5),
                        spk(0, "A", 9.5, 10)], EventsConfig())
    assert [(sp, s, e) for _, sp, s, e, _ in typed(ev, "turn")] == [("A", 0.0, 3.0), ("B", 2.8, 5.0), ("A", 5.4, 10.0)]
    got = [(sp, a["offset"], a["from_channel"], a["to_channel"]) for _, sp, _, _, a in typed(ev, "floor_transfer")]
    assert got == [("B", -0.2, 0, 0), ("A", 0.4, 0, 0)]
    assert typed(ev, "gap") == [(None, None, 5.0, 5.4, {"from_channel": 0, "to_channel": 0, "floor_change": True})]
    assert typed(ev, "interruption") == [
        (0, "B", 6.0, 7.5, {"successful": False, "interrupted_channel": 0, "yield_time": None})]
    overlaps = [(s, e, a["kind"]) for _, _, s, e, a in typed(ev, "overlap")]
    assert overlaps == [(2.8, 3.0, "between"), (6.0, 7.5, "within")]
    assert typed(ev, "pause") == [(0, "A", 9.0, 9.5, {"from_channel": 0, "to_channel": 0})]


def test_one_speaker_alone_on_a_shared_channel_has_no_overlap():
    # overlapping IPUs of the same speaker (e.g. at a review-window edge) are not an overlap
    ev = detect_events([spk(0, "A", 0, 3), spk(0, "A", 2, 4), spk(1, "B", 4.5, 6)], EventsConfig())
    assert not typed(ev, "overlap")
    assert [(sp, s, e) for _, sp, s, e, _ in typed(ev, "turn")] == [("A", 0.0, 4.0), ("B", 4.5, 6.0)]


# --- the sweep against the former quadratic scan (tests/turntaking_reference.py) -----------------
TEXTS = [None, None, None, "yeah", "mm hmm right", "well I think that is not quite right"]


def random_ipus(r: random.Random, speakers: list[tuple[int, str]], n: int, same_party_overlap: bool):
    """IPUs of a few speakers with lots of overlaps, touching boundaries, very short IPUs and equal
    start times: times come from per-speaker walks, snapped now and then onto earlier boundaries."""
    boundaries: list[float] = [0.0]
    segs = []
    clock = {sp: r.uniform(0, 2) for sp in speakers}
    for _ in range(n):
        ch, name = r.choice(speakers)
        roll = r.random()
        if roll < 0.25:
            start = r.choice(boundaries)  # equal start / touching another IPU
        elif roll < 0.35:
            start = r.choice(boundaries) + r.choice([5e-7, -5e-7, 1e-6, 2e-6, -1e-6])  # within EPS
        else:
            start = clock[(ch, name)] + r.choice([0.0, 0.0, r.uniform(0.05, 0.6), r.uniform(0.5, 3)])
        if not same_party_overlap:
            start = max(start, clock[(ch, name)])
        dur = r.choice([r.uniform(0.05, 0.99), r.uniform(0.2, 1.2), r.uniform(1, 6), 1e-7, 0.0,
                        r.uniform(0.3, 0.45), 1.0])
        if r.random() < 0.2:
            end = r.choice([b for b in boundaries if b > start] or [start + dur])  # end on a boundary
        else:
            end = start + dur
        if r.random() < 0.6:
            start, end = round(start, 3), round(end, 3)
        end = max(end, start)
        clock[(ch, name)] = max(clock[(ch, name)], end)
        boundaries += [start, end]
        segs.append(Segment("r", ch, name, start, end, round(r.random(), 3),
                            attributes={"text": t} if (t := r.choice(TEXTS)) else {}))
    r.shuffle(segs)
    return segs


def random_config(r: random.Random) -> EventsConfig:
    return EventsConfig(min_overlap=r.choice([0.05, 0.05, 0.0, 1e-7]),
                        backchannel_context=r.choice([1.5, 1.5, 0.3]),
                        interruption_min_overlap=r.choice([0.4, 0.4, 0.1]))


def outcome(e):
    a = e.attributes
    return e.type, a.get("kind", a.get("successful", a.get("floor_change")))


def test_sweep_matches_the_reference_one_speaker_per_channel():
    r = random.Random(20240611)
    compared = collections.Counter()
    for case in range(1500):
        k = r.randint(2, 4)
        speakers = [(c, f"spk{c}") for c in range(k)]
        segs = random_ipus(r, speakers, r.choice([1, 2, 3, 5, 10, 25, 60]), same_party_overlap=case % 3 == 0)
        cfg = random_config(r)
        new, old = detect_events(segs, cfg), reference_events(segs, cfg)
        assert new == old, f"case {case}"
        compared.update(outcome(e) for e in new)
    # the generator reaches every rule and every outcome, many times
    assert min(compared.values()) > 100, compared


def test_sweep_matches_the_reference_on_near_boundaries():
    # boundaries a few micro-seconds apart exercise every EPS comparison
    r = random.Random(7)
    for case in range(300):
        base = sorted(round(r.uniform(0, 10), 2) for _ in range(8))

        def t():
            return r.choice(base) + r.choice([0, 0, 0, 5e-7, -5e-7, 1e-6, -1e-6, 2e-6, 1e-9])

        segs = []
        for _ in range(r.randint(1, 40)):
            ch = r.randrange(3)
            s, e = sorted((t(), t()))
            if r.random() < 0.3:
                e = s + r.choice([0.2, 0.5, 0.99, 1.0, 1e-7])
            segs.append(Segment("r", ch, f"s{ch}", s, e, round(r.random(), 3)))
        cfg = random_config(r)
        assert detect_events(segs, cfg) == reference_events(segs, cfg), f"case {case}"


def _without_channels(events):
    keys = ("floor_channel", "interrupted_channel", "from_channel", "to_channel", "channels")
    return sorted((e.type, e.start, e.end, e.confidence, e.speaker_id,
                   tuple(sorted((k, v) for k, v in e.attributes.items() if k not in keys))) for e in events)


def test_shared_channel_gives_the_same_events_as_separate_channels():
    """Per-speaker rules: moving every speaker onto channel 0 changes only the channel fields."""
    r = random.Random(99)
    for case in range(300):
        k = r.randint(2, 4)
        separate = random_ipus(r, [(c, f"spk{c}") for c in range(k)], r.choice([2, 5, 10, 25, 50]),
                               same_party_overlap=False)
        shared = [dataclasses.replace(s, channel=0) for s in separate]
        cfg = random_config(r)
        a, b = detect_events(separate, cfg), detect_events(shared, cfg)
        assert _without_channels(a) == _without_channels(b), f"case {case}"
        assert all(e.channel in (None, 0) for e in b)
        for e in b:  # speaker-bearing events name the speaker of their IPU
            if e.type in ("pause", "backchannel", "interruption", "turn", "floor_transfer"):
                assert e.speaker_id in {s.speaker_id for s in shared}
            else:
                assert e.speaker_id is None


def test_sweep_matches_the_reference_when_a_midpoint_rounds_up():
    # between neighbouring floats the midpoint can round onto the later boundary; the talkers of
    # such a piece are those at that boundary, as the reference's `start <= mid < end` has it
    a = math.nextafter(1.0, 2.0)  # odd last bit: (a + b) / 2 rounds to b
    b = math.nextafter(a, 2.0)
    assert (a + b) / 2 == b
    cfg = EventsConfig(min_overlap=0.0)
    for segs in ([seg(0, 0, b), seg(1, a, 5)], [seg(0, 0, a), seg(1, a, 3), seg(0, b, 4)],
                 [seg(0, 0, b), seg(1, a, b), seg(2, a, 6)]):
        assert detect_events(segs, cfg) == reference_events(segs, cfg)


# --- non-verbal IPUs (laughter, coughs) -------------------------------------------------------------
def test_a_laugh_in_the_other_speakers_turn_is_a_backchannel_and_takes_no_floor():
    cfg = EventsConfig()
    a1 = Segment("r", 0, "A", 0.0, 4.0, 0.9)
    laugh = Segment("r", 1, "B", 1.5, 3.2, 0.8, attributes={"nonverbal": "laughter"})  # 1.7 s: too long for a word backchannel
    a2 = Segment("r", 0, "A", 4.3, 6.0, 0.9)
    events = detect_events([a1, laugh, a2], cfg)
    kinds = [(e.type, e.channel) for e in events]
    assert ("backchannel", 1) in kinds
    bc = next(e for e in events if e.type == "backchannel")
    assert bc.attributes == {"floor_channel": 0, "nonverbal": "laughter"} and bc.speaker_id == "B"
    assert [e.channel for e in events if e.type == "turn"] == [0]
    assert not [e for e in events if e.type in ("interruption", "overlap", "floor_transfer", "gap")]
    # the same IPU without the tag is an interruption attempt that overlaps A
    plain = detect_events([a1, Segment("r", 1, "B", 1.5, 3.2, 0.8), a2], cfg)
    assert any(e.type == "interruption" for e in plain)


def test_a_cough_between_turns_makes_no_turn_gap_or_backchannel():
    cfg = EventsConfig()
    a = Segment("r", 0, "A", 0.0, 2.0, 0.9)
    cough = Segment("r", 1, "B", 2.5, 3.0, 0.7, attributes={"nonverbal": "cough"})
    a2 = Segment("r", 0, "A", 3.6, 5.0, 0.9)
    events = detect_events([a, cough, a2], cfg)
    assert [e.type for e in events] == ["turn", "pause"]
    assert events[1].start == 2.0 and events[1].end == 3.6  # one pause: the cough does not split it


def test_sweep_matches_the_reference_with_nonverbal_ipus():
    r = random.Random(1313)
    compared = collections.Counter()
    for case in range(600):
        speakers = [(c, f"spk{c}") for c in range(r.randint(2, 3))]
        segs = random_ipus(r, speakers, r.choice([2, 5, 10, 25]), same_party_overlap=False)
        segs = [dataclasses.replace(s, attributes=dict(s.attributes, nonverbal=r.choice(["laughter", "cough"])))
                if r.random() < 0.25 else s for s in segs]
        cfg = random_config(r)
        new, old = detect_events(segs, cfg), reference_events(segs, cfg)
        assert new == old, f"case {case}"
        compared.update(e.type for e in new if e.attributes.get("nonverbal"))
    assert compared["backchannel"] > 50, compared
