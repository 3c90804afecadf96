"""Turn-taking events for one recording (rules in pipeline/turntaking.py)."""
from __future__ import annotations

from pathlib import Path

from pipeline.stages.base import Stage, WorkItem
from pipeline.stages.ipus import load_segments
from pipeline.storage import write_json
from pipeline.turntaking import detect_events


class EventsStage(Stage):
    name = "events"
    version = "1"
    config_section = "events"
    reads = ("ipus",)
    writes = ("events.json",)

    def process(self, item: WorkItem, out_dir: Path) -> None:
        segments = load_segments(item.path("ipus", "segments.json"))
        events = detect_events(segments, self.cfg) if item.rec().num_channels > 1 else []
        write_json(out_dir / "events.json", [e.__dict__ for e in events])
