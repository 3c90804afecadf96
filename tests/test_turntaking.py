"""Event rules on hand-built timelines (two and three channels)."""
from duplexcorpus.config import EventsConfig
from duplexcorpus.records import Segment
from duplexcorpus.turntaking import detect_events


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
