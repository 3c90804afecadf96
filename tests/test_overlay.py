"""Human labels win inside reviewed windows; everything outside stays exactly as it was."""
from __future__ import annotations

from duplexcorpus.config import EventsConfig
from duplexcorpus.overlay import overlay
from duplexcorpus.records import Event, Segment, Word
from duplexcorpus.turntaking import detect_events


def test_overlay_replaces_inside_windows_only():
    segs = [Segment("r", 0, "a", 0.0, 2.0, 0.9), Segment("r", 1, "b", 5.0, 6.0, 0.8), Segment("r", 0, "a", 12.0, 13.0, 0.9)]
    words = [Word(0, "hello", 0.1, 0.5, 0.9), Word(1, "yes", 5.1, 5.5, 0.4), Word(0, "bye", 12.1, 12.5, 0.9)]
    events = [Event("r", "backchannel", 1, 5.0, 6.0, 0.5)]
    review = {"windows": [{"window": [4.0, 8.0],
                           "segments": [dict(recording_id="r", channel=1, speaker_id="b", start=5.2, end=6.1,
                                             confidence=1.0, source="human")],
                           "words": [dict(channel=1, word="yeah", start=5.3, end=5.6, score=1.0, source="human")],
                           "events": []}]}
    new_segs, new_words, new_events = overlay(review, segs, words, events,
                                              recompute=lambda s: detect_events(s, EventsConfig()))
    assert [(s.start, s.source) for s in new_segs if s.channel == 1] == [(5.2, "human")]
    assert [w.word for w in new_words] == ["hello", "bye", "yeah"]  # sorted by channel, then time
    assert all(isinstance(w, Word) for w in new_words)
    assert segs[0] in new_segs and segs[2] in new_segs  # untouched outside the window
    assert not [e for e in new_events if e.type == "backchannel"]  # the annotator gave none
    inside = [e for e in new_events if 4.0 <= (e.start + e.end) / 2 < 8.0]
    assert all(e.type in ("pause", "gap", "overlap", "turn", "floor_transfer") for e in inside)
