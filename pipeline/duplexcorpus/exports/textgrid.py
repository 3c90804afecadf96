"""Export a finished run as Praat TextGrids (Praat, ELAN's import, Montreal Forced Aligner, praatio).

    DIR/<recording_id>.TextGrid   per speaker (channel order, diarized speakers of a mono call too):
                                    "<speaker> IPUs"    interval per IPU, its text ("[speech]" when it has none)
                                    "<speaker> words"   interval per word (Mandarin: per character)
                                  per event type, interval tiers "pause", "gap", "overlap", "backchannel",
                                    "interruption", "turn", "crosstalk", "filler", ...: label = who (+ details)
                                  "floor_transfer": a point tier, one point where the next turn starts,
                                    labelled "<from> -> <to> <offset> s"

Why one tier per event type: a Praat interval tier is a partition of time, so two intervals on one
tier may not overlap, and events do overlap each other by design (an overlap inside a turn, a
backchannel inside the other's pause, the turns of two people talking at once). Events of one type
rarely overlap, and the type is what an annotator filters on; when they do (two speakers' turns
during an overlap), the type gets another lane ("turn 2"), filled first-fit, so no event is dropped
or shortened. Who an event belongs to is in its label. A floor transfer is a moment (its offset can
be 0), so it is a point, not an interval. Words of one speaker that touch each other (aligner
rounding) are clipped at the previous word's end; one that would be left with no duration is left
out and counted in the summary.
"""
from __future__ import annotations

import json
from pathlib import Path

from praatio import textgrid

from duplexcorpus.exports.corpus import ExportRecording, export_recordings, open_run
from duplexcorpus.storage import atomic_path

POINT_EVENTS = ("floor_transfer",)
NO_TEXT = "[speech]"
MIN_INTERVAL = 1e-4  # seconds; below this an interval is a rounding artefact, not a word


def _non_overlapping(entries: list[tuple[float, float, str]], lo: float, hi: float) -> tuple[list, int]:
    """Intervals of one tier, clipped into [lo, hi] and after their predecessor; how many vanished."""
    kept, dropped, last_end = [], 0, lo
    for start, end, label in sorted(entries, key=lambda e: (e[0], e[1])):
        start, end = max(start, last_end, lo), min(end, hi)
        if end - start < MIN_INTERVAL:
            dropped += 1
            continue
        kept.append((start, end, label))
        last_end = end
    return kept, dropped


def lanes(entries: list[tuple], points: bool = False) -> list[list[tuple]]:
    """Spread items over as few non-overlapping lanes as possible (first-fit in start order is optimal
    for intervals). Intervals (start, end, label) may touch; points (time, label) may not coincide."""
    out: list[list[tuple]] = []
    for item in sorted(entries, key=lambda e: e[:-1]):
        for lane in out:
            free = item[0] > lane[-1][0] if points else item[0] >= lane[-1][1]
            if free:
                lane.append(item)
                break
        else:
            out.append([item])
    return out


def event_label(event, speaker_of_channel: dict[int, str]) -> str:
    """Who and the details that matter for reading the event (successful, kind, offset, text)."""
    attrs = json.loads(event.attributes) if event.attributes else {}

    def who(channel) -> str:
        return speaker_of_channel.get(int(channel), f"ch{int(channel)}")

    if event.type == "floor_transfer":
        return f"{who(attrs['from_channel'])} -> {who(attrs['to_channel'])} {attrs['offset']:+.3f} s"
    parts = [event.speaker_id] if isinstance(event.speaker_id, str) else []
    if event.type == "overlap":
        parts = [" + ".join(who(c) for c in dict.fromkeys(attrs.get("channels", []))), attrs.get("kind", "")]
    elif event.type == "gap" and "from_channel" in attrs:
        parts = [f"{who(attrs['from_channel'])} -> {who(attrs['to_channel'])}"]
    elif event.type == "interruption" and "successful" in attrs:
        parts.append("successful" if attrs["successful"] else "failed")
    elif event.type == "crosstalk" and "source_channel" in attrs:
        parts.append(f"from {who(attrs['source_channel'])}")
    if attrs.get("text"):
        parts.append(f'"{attrs["text"]}"')
    return " ".join(p for p in parts if p) or event.type


def _moment(event) -> float:
    """Where the next turn starts: the end of a floor transfer's gap, the start of its overlap."""
    offset = json.loads(event.attributes).get("offset", 0.0) if event.attributes else 0.0
    return float(event.end) if offset >= 0 else float(event.start)


def recording_textgrid(rec: ExportRecording) -> tuple[textgrid.Textgrid, dict]:
    """The TextGrid of one recording, and what had to be left out (counts by tier kind)."""
    end = rec.duration
    tg = textgrid.Textgrid(minTimestamp=0.0, maxTimestamp=end)
    dropped = {"ipus": 0, "words": 0, "events": 0}
    for speaker in rec.speakers:
        ipus = [(float(s.start), float(s.end), s.text if isinstance(s.text, str) and s.text else NO_TEXT)
                for s in rec.ipus_of(speaker).itertuples()]
        words = [(float(w.start), float(w.end), w.word) for w in rec.words_of(speaker).itertuples()]
        for name, kind, entries in ((f"{speaker} IPUs", "ipus", ipus), (f"{speaker} words", "words", words)):
            kept, lost = _non_overlapping(entries, 0.0, end)
            dropped[kind] += lost
            tg.addTier(textgrid.IntervalTier(name, kept, 0.0, end))
    for kind, events in rec.events.groupby("type", sort=True):
        labelled = [(float(e.start), float(e.end), event_label(e, rec.speaker_of_channel)) for e in events.itertuples()]
        if kind in POINT_EVENTS:
            points = [(min(max(_moment(e), 0.0), end), label) for e, (_, _, label) in zip(events.itertuples(), labelled)]
            for i, lane in enumerate(lanes(points, points=True)):
                tg.addTier(textgrid.PointTier(kind if i == 0 else f"{kind} {i + 1}", lane, 0.0, end))
            continue
        clipped = [(max(s, 0.0), min(e_, end), label) for s, e_, label in labelled]
        kept = [c for c in clipped if c[1] - c[0] >= MIN_INTERVAL]
        dropped["events"] += len(clipped) - len(kept)
        for i, lane in enumerate(lanes(kept)):
            tg.addTier(textgrid.IntervalTier(kind if i == 0 else f"{kind} {i + 1}", lane, 0.0, end))
    return tg, dropped


def export_textgrid(out: Path, to: Path, split: str | None = None) -> dict:
    out, to = Path(out), Path(to)
    to.mkdir(parents=True, exist_ok=True)
    files, dropped = [], {"ipus": 0, "words": 0, "events": 0}
    for rec in export_recordings(open_run(out), split):
        tg, lost = recording_textgrid(rec)
        path = to / f"{rec.recording_id}.TextGrid"
        with atomic_path(path) as tmp:
            tg.save(str(tmp), format="long_textgrid", includeBlankSpaces=True)
        files.append(str(path))
        dropped = {k: dropped[k] + lost[k] for k in dropped}
    return {"exported": len(files), "left_out": dropped, "files": files}
