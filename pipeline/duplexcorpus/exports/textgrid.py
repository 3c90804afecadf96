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

import bisect
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


def _moment(event, attrs: dict) -> float:
    """Where the next turn starts: the end of a floor transfer's gap, the start of its overlap."""
    return float(event.end) if attrs.get("offset", 0.0) >= 0 else float(event.start)


class EventLabels:
    """Labels that say who and how (successful, kind, offset, text). Speakers are named from the event
    itself and the turns, so two speakers sharing a channel (a diarized mono call) are told apart; a
    channel stands for its speaker only when it has one."""

    def __init__(self, rec: ExportRecording):
        self.rec = rec
        turns = rec.events[rec.events.type == "turn"].sort_values("start", kind="stable")
        self.turn_starts, self.turn_speakers = list(turns.start), list(turns.speaker_id)

    def who(self, channel) -> str:
        return self.rec.channel_name(int(channel))

    def previous_speaker(self, t: float) -> str | None:
        i = bisect.bisect_left(self.turn_starts, t - 1e-9)  # the turn starting at t is the new one
        return self.turn_speakers[i - 1] if i > 0 else None

    def label(self, event, attrs: dict) -> str:
        speaker = event.speaker_id if isinstance(event.speaker_id, str) else None
        if event.type == "floor_transfer":
            before = self.previous_speaker(_moment(event, attrs)) or self.who(attrs["from_channel"])
            return f"{before} -> {speaker or self.who(attrs['to_channel'])} {attrs['offset']:+.3f} s"
        parts = [speaker] if speaker else []
        if event.type == "overlap":
            parts = [" + ".join(dict.fromkeys(self.who(c) for c in attrs.get("channels", []))), attrs.get("kind", "")]
        elif event.type == "gap" and "from_channel" in attrs:
            names = (self.who(attrs["from_channel"]), self.who(attrs["to_channel"]))
            known = not any(n.startswith("ch") and n[2:].isdigit() for n in names)
            parts = [" -> ".join(names) if known and names[0] != names[1] else
                     ("floor changes" if attrs.get("floor_change") else "floor stays")]
        elif event.type == "interruption" and "successful" in attrs:
            parts.append("successful" if attrs["successful"] else "failed")
        elif event.type == "crosstalk" and "source_channel" in attrs:
            parts.append(f"from {self.who(attrs['source_channel'])}")
        if attrs.get("text"):
            parts.append(f'"{attrs["text"]}"')
        return " ".join(p for p in parts if p) or event.type


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
    labels = EventLabels(rec)
    for kind, events in rec.events.groupby("type", sort=True):
        rows = [(e, json.loads(e.attributes) if e.attributes else {}) for e in events.itertuples()]
        labelled = [(float(e.start), float(e.end), labels.label(e, attrs)) for e, attrs in rows]
        if kind in POINT_EVENTS:
            points = [(min(max(_moment(e, attrs), 0.0), end), label) for (e, attrs), (_, _, label) in zip(rows, labelled)]
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
