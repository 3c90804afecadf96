"""Conversational events for one recording: timing rules (pipeline/turntaking.py) on the IPUs, then
lexical refinement once words exist (pipeline/lexical.py)."""
from __future__ import annotations

from pathlib import Path

from duplexcorpus.lexical import filler_events, refine_backchannels
from duplexcorpus.stages.asr import load_words
from duplexcorpus.stages.base import Stage, WorkItem
from duplexcorpus.stages.ipus import load_segments
from duplexcorpus.storage import write_json
from duplexcorpus.turntaking import detect_events


class EventsStage(Stage):
    name = "events"
    version = "2"
    config_section = "events"
    reads = ("asr",)
    writes = ("events.json",)

    def process(self, item: WorkItem, out_dir: Path) -> None:
        segments = load_segments(item.path("asr", "segments.json"))
        words = load_words(item.path("asr", "words.json"))
        events = detect_events(segments, self.cfg) if item.rec().num_channels > 1 else []
        events = refine_backchannels(events, segments, self.cfg.backchannel_max_words)
        spans = [(e.channel, e.start, e.end) for e in events if e.type == "backchannel"]
        events += filler_events(item.recording_id, words, spans)
        write_json(out_dir / "events.json", [e.__dict__ for e in events])
