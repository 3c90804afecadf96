"""Conversational events for one recording: timing rules (turntaking.py) on the IPUs, per speaker,
then lexical refinement once words exist (lexical.py)."""
from __future__ import annotations

from pathlib import Path

from duplexcorpus.lexical import filler_events, refine_backchannels
from duplexcorpus.records import load_events, record_dicts
from duplexcorpus.stages.asr import AsrStage
from duplexcorpus.stages.base import Output, Stage, WorkItem
from duplexcorpus.storage import write_json
from duplexcorpus.turntaking import detect_events, has_parties


class EventsStage(Stage):
    name = "events"
    version = "2"
    config_section = "events"
    reads = ("asr",)
    EVENTS = Output("events.json", read=load_events, description="turn-taking and lexical events (Event records)")

    def process(self, item: WorkItem, out_dir: Path) -> None:
        segments = item.read(AsrStage.SEGMENTS)
        words = item.read(AsrStage.WORDS)
        events = detect_events(segments, self.cfg) if has_parties(item.rec(), segments) else []
        events = refine_backchannels(events, segments, self.cfg.backchannel_max_words)
        spans = [(e.channel, e.start, e.end) for e in events if e.type == "backchannel"]
        events += filler_events(item.recording_id, words, spans)
        write_json(out_dir / self.EVENTS.file, record_dicts(events))
