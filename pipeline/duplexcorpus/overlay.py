"""Human labels win inside reviewed windows; nothing outside them changes.

A reviewed recording has OUT/review/human/<recording>.json: its windows and the human segments,
words and events inside them (`review pull` writes it; review/merge.py). The samples stage and the
tables read through this overlay, so it lives beside the records, not in the review package. An automatic item is replaced when its midpoint
lies inside a window; items elsewhere are kept exactly as they were.
"""
from __future__ import annotations

import json
from pathlib import Path

from duplexcorpus.records import Event, Segment, Word


def _inside(windows: list[list[float]], start: float, end: float) -> bool:
    mid = (start + end) / 2
    return any(a <= mid < b for a, b in windows)


RULE_TYPES = ("pause", "gap", "overlap", "turn", "floor_transfer")  # recomputed from the merged IPUs


def overlay(review: dict, segments: list[Segment], words: list[Word], events: list[Event], recompute=None):
    """`recompute(segments) -> events`: the timing rules, run again on the merged segments; their
    pause/gap/overlap/turn/floor-transfer events replace the automatic ones inside the windows.
    Listener events (backchannel, interruption, filler, laughter, noise, crosstalk) inside a window
    are the annotator's."""
    windows = [w["window"] for w in review["windows"]]
    segs = [s for s in segments if not _inside(windows, s.start, s.end)]
    wds = [w for w in words if not _inside(windows, w.start, w.end)]
    evs = [e for e in events if not _inside(windows, e.start, e.end)]
    for w in review["windows"]:
        segs += [Segment(**s) for s in w["segments"]]
        wds += [Word.from_dict(x) for x in w["words"]]
        evs += [Event(**e) for e in w["events"]]
    segs.sort(key=lambda s: (s.channel, s.start))
    if recompute is not None:
        evs += [e for e in recompute(segs) if e.type in RULE_TYPES and _inside(windows, e.start, e.end)]
    wds.sort(key=lambda w: (w.channel, w.start))
    return segs, wds, evs


def apply_reviews(item, segments: list[Segment], words: list[Word], events: list[Event], workflow):
    """Human labels win inside the reviewed windows of this recording (no review: unchanged)."""
    if not item.review:
        return segments, words, events
    from duplexcorpus.nonverbal.detect import tag_nonverbal_ipus
    from duplexcorpus.turntaking import detect_events, has_parties

    review = json.loads(Path(item.review).read_text())
    windows = [w["window"] for w in review["windows"]]
    # laughs / coughs after review: the annotators' inside their windows, the pipeline's elsewhere, so
    # a reviewed laugh stays off the floor as the pipeline's does
    sounds = [e for e in events if e.type in ("laughter", "cough") and not _inside(windows, e.start, e.end)]
    sounds += [Event(**e) for w in review["windows"] for e in w["events"] if e["type"] in ("laughter", "cough")]

    def recompute(segs):
        if not has_parties(item.rec(), segs):
            return []
        return detect_events(tag_nonverbal_ipus(segs, sounds, words, workflow.events.nonverbal_ipu_share), workflow.events)
    return overlay(review, segments, words, events, recompute=recompute)


def review_hash(item) -> str | None:
    from duplexcorpus.storage import file_sha256

    return file_sha256(Path(item.review)) if item.review else None
