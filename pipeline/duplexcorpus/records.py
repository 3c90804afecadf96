"""Small immutable records that flow between stages (lhotse-style), and their table rows.

Every segment, word and event names its `channel` (where the audio is) and its `speaker_id` (who
talks) separately: on a close-talk recording they coincide, on a shared channel (a mono call after
diarization) several speakers live on one channel, and the turn-taking rules work per speaker.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-/]+")


def safe_key(text: str) -> str:
    """A WebDataset-safe key: no dots (members split at the first dot), no leading underscore."""
    key = _UNSAFE.sub("_", text.replace("\\", "/")).strip("/").replace("/", "__")
    key = key.lstrip("_") or "recording"
    return key


@dataclass(frozen=True)
class ChannelInfo:
    channel: int
    speaker_id: str
    source_path: str
    source_channel: int
    gender: str | None = None
    age_group: str | None = None
    accent: str | None = None
    language: str | None = None
    # the clock sync applied to this channel's file (separately recorded phones; tracks stage)
    offset_s: float = 0.0  # > 0: its recorder started this much after the first channel's
    drift_ppm: float = 0.0  # > 0: its clock ran fast
    sync_confidence: float | None = None  # None: nothing to sync (one file)
    sync_method: str | None = None  # reference | gcc-phat-two-way | gcc-phat-one-way | none (not synced)
    # recording conditions measured on this channel (conditions stage; None where not measured)
    snr_db: float | None = None
    speech_level_dbfs: float | None = None
    noise_level_dbfs: float | None = None
    noise_floor_dbfs: float | None = None
    clipped_share: float | None = None
    bandwidth_hz: float | None = None
    bandwidth: str | None = None  # telephone | wideband | superwideband | fullband
    # people talking on this channel, from metadata (None: not given; a one-channel recording is then
    # diarized, a channel of a multi-channel one taken to carry one speaker)
    speakers: int | None = None

    def speaker_names(self) -> list[str]:
        """The speaker ids metadata gives a shared channel (`A;B`: in the order they first speak);
        one name for a one-speaker channel."""
        return [n.strip() for n in self.speaker_id.split(";") if n.strip()]


@dataclass(frozen=True)
class Recording:
    recording_id: str
    source_paths: tuple[str, ...]
    source_sha256: tuple[str, ...]
    sha256: str
    format: str
    sample_rate: int
    num_channels: int
    duration: float
    channels: tuple[ChannelInfo, ...]
    language: str | None
    scenario: str | None
    environment: str | None
    device: str | None
    warnings: tuple[str, ...] = ()
    # suggested from the measured conditions only where the metadata gives none (never overwrites it)
    environment_suggested: str | None = None
    device_suggested: str | None = None

    def row(self, split: str | None) -> dict[str, Any]:
        row = asdict(self)
        row["source_paths"] = list(self.source_paths)
        row["source_sha256"] = list(self.source_sha256)
        row["channels"] = [asdict(c) for c in self.channels]
        row["warnings"] = list(self.warnings)
        row["split"] = split
        return row

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recording":
        d = dict(d)
        d.pop("split", None)
        d["channels"] = tuple(ChannelInfo(**c) for c in d["channels"])
        for key in ("source_paths", "source_sha256", "warnings"):
            d[key] = tuple(d[key])
        return cls(**d)

    def speaker(self, channel: int) -> str:
        return self.channels[channel].speaker_id

    def with_tracks_info(self, info: dict[str, Any]) -> "Recording":
        """The recording as the tracks stage left it: per-channel clock sync and its warnings."""
        if not info.get("sync"):
            return self
        channels = tuple(replace(c, **info["sync"][c.channel]) for c in self.channels)
        return replace(self, channels=channels, warnings=self.warnings + tuple(info.get("warnings", ())))

    def with_conditions(self, conditions) -> "Recording":
        """The recording with each channel's measured conditions and the suggested labels (conditions stage)."""
        measured = {c.channel: c for c in conditions.channels}
        channels = tuple(replace(c, **{k: getattr(measured[c.channel], k) for k in CONDITION_FIELDS})
                         if c.channel in measured else c for c in self.channels)
        return replace(self, channels=channels, environment_suggested=conditions.environment_suggested,
                       device_suggested=conditions.device_suggested)


CONDITION_FIELDS = ("snr_db", "speech_level_dbfs", "noise_level_dbfs", "noise_floor_dbfs", "clipped_share",
                    "bandwidth_hz", "bandwidth")


@dataclass(frozen=True)
class Segment:
    """An IPU on one channel."""

    recording_id: str
    channel: int
    speaker_id: str
    start: float
    end: float
    confidence: float
    source: str = "vad"
    crosstalk_suppressed: float = 0.0
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Word:
    """A word (English) or character (Mandarin) with its time, on one channel, said by one speaker
    (lhotse's AlignmentItem with channel and speaker). `segment_start` ties it to its IPU."""

    channel: int
    word: str
    start: float
    end: float
    score: float
    language: str | None = None
    interpolated: bool = False
    source: str = "asr"  # asr | transcript | human
    segment_start: float | None = None
    speaker_id: str | None = None
    punct: str | None = None  # punctuation written after it (kept out of `word`; the segment text has it)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Word":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Event:
    recording_id: str
    type: str
    channel: int | None
    start: float
    end: float
    confidence: float
    source: str = "rules"
    attributes: dict[str, Any] = field(default_factory=dict)
    speaker_id: str | None = None  # who; None for events between speakers (gap, overlap)


@dataclass(frozen=True)
class Quarantine:
    input: str
    recording_id: str | None
    stage: str
    reason_code: str
    reason: str


def segment_rows(segments: list[Segment]) -> list[dict[str, Any]]:
    rows = []
    counters: dict[tuple[str, int], int] = {}
    for seg in sorted(segments, key=lambda s: (s.recording_id, s.channel, s.start)):
        k = counters.get((seg.recording_id, seg.channel), 0)
        counters[(seg.recording_id, seg.channel)] = k + 1
        row = asdict(seg)
        row["segment_id"] = f"{seg.recording_id}_c{seg.channel}_{k:05d}"
        row["attributes"] = json.dumps(seg.attributes, sort_keys=True, ensure_ascii=False)
        rows.append(row)
    return rows


def event_rows(events: list[Event]) -> list[dict[str, Any]]:
    rows = []
    ordered = sorted(events, key=lambda e: (e.recording_id, e.start, e.type, -1 if e.channel is None else e.channel))
    for k, ev in enumerate(ordered):
        row = asdict(ev)
        row["event_id"] = f"{ev.recording_id}_{ev.type}_{k:05d}"
        row["attributes"] = json.dumps(ev.attributes, sort_keys=True, ensure_ascii=False)
        rows.append(row)
    return rows


def word_rows(recording: "Recording", words: list[Word], segment_ids: dict[tuple[int, float], str]) -> list[dict[str, Any]]:
    """Table rows of one recording's words; `segment_ids` maps (channel, segment start) to its id."""
    rows = []
    counters: dict[int, int] = {}
    for w in sorted(words, key=lambda w: (w.channel, w.start, w.end)):
        k = counters.get(w.channel, 0)
        counters[w.channel] = k + 1
        rows.append(dict(recording_id=recording.recording_id, word_id=f"{recording.recording_id}_c{w.channel}_w{k:05d}",
                         segment_id=segment_ids.get((w.channel, w.segment_start)),
                         channel=w.channel, speaker_id=w.speaker_id or recording.speaker(w.channel), word=w.word,
                         start=w.start, end=w.end, score=float(w.score), language=w.language,
                         interpolated=bool(w.interpolated), source=w.source, punct=w.punct))
    return rows


# -- the JSON files stages exchange (one list of records per file) ------------------------------
def load_segments(path: str | Path) -> list[Segment]:
    return [Segment(**d) for d in json.loads(Path(path).read_text())]


def load_events(path: str | Path) -> list[Event]:
    return [Event(**d) for d in json.loads(Path(path).read_text())]


def load_words(path: str | Path) -> list[Word]:
    return [Word.from_dict(d) for d in json.loads(Path(path).read_text())]


def record_dicts(records) -> list[dict[str, Any]]:
    """Records as the dicts `write_json` stores (the inverse of the loaders above)."""
    return [asdict(r) for r in records]
