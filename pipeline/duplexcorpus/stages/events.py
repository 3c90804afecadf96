"""Conversational events for one recording: timing rules (turntaking.py) on the IPUs, per speaker,
then lexical refinement once words exist (lexical.py). The non-verbal stage's events are passed
through, and the IPUs they cover whole (a laugh, a cough; no words) are tagged `nonverbal` first, so
they never take the floor (a listener's laugh becomes a backchannel with `nonverbal: laughter`)."""
from __future__ import annotations

from pathlib import Path

from duplexcorpus.lexical import filler_events, refine_backchannels
from duplexcorpus.nonverbal.detect import tag_nonverbal_ipus
from duplexcorpus.records import load_events, record_dicts
from duplexcorpus.stages.asr import AsrStage
from duplexcorpus.stages.base import Output, Stage, WorkItem
from duplexcorpus.stages.nonverbal import NonverbalStage
from duplexcorpus.storage import write_json
from duplexcorpus.turntaking import detect_events, has_parties


class EventsStage(Stage):
    name = "events"
    version = "4"
    config_section = "events"
    reads = ("asr", "nonverbal")
    EVENTS = Output("events.json", read=load_events,
                    description="turn-taking, lexical and non-verbal events (Event records)")

    def process(self, item: WorkItem, out_dir: Path) -> None:
        segments = item.read(AsrStage.SEGMENTS)
        words = item.read(AsrStage.WORDS)
        nonverbal = item.read(NonverbalStage.EVENTS)
        tagged = tag_nonverbal_ipus(segments, nonverbal, words, self.cfg.nonverbal_ipu_share)
        events = detect_events(tagged, self.cfg) if has_parties(item.rec(), segments) else []
        events = refine_backchannels(events, segments, self.cfg.backchannel_max_words)
        spans = [(e.channel, e.start, e.end) for e in events if e.type == "backchannel"]
        events += filler_events(item.recording_id, words, spans)
        events += nonverbal
        write_json(out_dir / self.EVENTS.file, record_dicts(events))
