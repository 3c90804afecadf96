"""What every export reads: a finished run's recordings, each with its own IPUs, words and events.

    for rec in export_recordings(RunFolder(out), split="train"):
        rec.speakers                 # who speaks, channel by channel (diarized speakers of a mono call too)
        rec.ipus_of("spk_a")         # that speaker's IPUs (segments rows, `text` and `language` parsed)
        rec.audio                    # the run's multi-channel FLAC (None when the run folder lost it)

The tables are read once through RunFolder and grouped by recording, not filtered per recording (a
100-hour corpus has thousands of recordings), and no stage is re-run: exports only read OUT.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator

import pandas as pd

from duplexcorpus.contract import ContractError
from duplexcorpus.runfolder import RunFolder
from duplexcorpus.stages.tracks import TracksStage

TABLES = ("recordings", "segments", "words", "events")


class ExportError(Exception):
    """OUT cannot be exported (not a finished run, a table missing or off-contract); says which."""


@dataclass(frozen=True, eq=False)  # eq=False: tables inside, compared by identity
class ExportRecording:
    recording_id: str
    split: str
    duration: float
    num_channels: int
    language: str | None  # the conversation's (en, zh, en+zh)
    channels: tuple[dict, ...]  # the channel map: channel, speaker_id and speaker metadata
    segments: pd.DataFrame  # IPUs sorted by (start, channel); `text`, `language`, `confidence_bucket` parsed
    words: pd.DataFrame  # sorted by (start, channel)
    events: pd.DataFrame  # sorted by (start, type)
    audio: Path | None  # TracksStage.AUDIO: all channels in channel order; None when OUT no longer has it

    @cached_property
    def speaker_of_channel(self) -> dict[int, str]:
        return {int(c["channel"]): c["speaker_id"] for c in self.channels}

    @cached_property
    def speakers(self) -> tuple[str, ...]:
        """Channel by channel, the speakers of its IPUs in order of first speech (a diarized mono call
        has several on one channel); a channel without IPUs keeps its channel-map speaker."""
        found: list[str] = []
        for ch in sorted(self.speaker_of_channel):
            on_channel = self.segments[self.segments.channel == ch].speaker_id
            for spk in (on_channel.unique() if len(on_channel) else [self.speaker_of_channel[ch]]):
                if spk not in found:
                    found.append(spk)
        for spk in self.segments.speaker_id.unique():  # IPUs on a channel the map does not name
            if spk not in found:
                found.append(spk)
        return tuple(found)

    @cached_property
    def shared_channels(self) -> dict[int, list[str]]:
        """Channels that carry more than one speaker (a diarized mono call), with their speakers."""
        by_channel = self.segments.groupby("channel").speaker_id.unique()
        return {int(ch): list(spk) for ch, spk in by_channel.items() if len(spk) > 1}

    def channel_name(self, channel: int) -> str:
        """The speaker of a channel when it has exactly one, else "ch<N>" (a diarized channel has several)."""
        on_channel = set(self.segments[self.segments.channel == channel].speaker_id)
        if len(on_channel) == 1:
            return on_channel.pop()
        return self.speaker_of_channel.get(channel, f"ch{channel}") if not on_channel else f"ch{channel}"

    def speaker_metadata(self, speaker: str) -> dict:
        """The channel-map row of a speaker (gender, age group, accent, language), {} if not mapped."""
        return next((dict(c) for c in self.channels if c["speaker_id"] == speaker), {})

    def channel_language(self, channel: int) -> str | None:
        row = next((c for c in self.channels if int(c["channel"]) == channel), {})
        return row.get("language") or self.language

    def ipus_of(self, speaker: str) -> pd.DataFrame:
        return self.segments[self.segments.speaker_id == speaker]

    def words_of(self, speaker: str) -> pd.DataFrame:
        return self.words[self.words.speaker_id == speaker]

    @cached_property
    def words_by_segment(self) -> dict[str, pd.DataFrame]:
        return {sid: frame for sid, frame in self.words.groupby("segment_id", sort=False)}


def open_run(out: Path) -> RunFolder:
    """The run folder, after checking it holds the finished tables the exports read."""
    run = RunFolder(out)
    missing = [name for name in TABLES if not run.table_path(name).exists()]
    if missing:
        raise ExportError(f"{out} is not a finished run: {', '.join(str(run.table_path(n)) for n in missing)} "
                          f"missing (run `duplexcorpus run` to the end first)")
    return run


def _read(run: RunFolder, name: str) -> pd.DataFrame:
    try:
        return run.frame(name)
    except ContractError as err:
        raise ExportError(f"{run.table_path(name)} does not match the data contract: {err}") from None


def _by_recording(frame: pd.DataFrame, order: list[str]) -> dict[str, pd.DataFrame]:
    frame = frame.sort_values(order, kind="stable")
    return {rid: part.reset_index(drop=True) for rid, part in frame.groupby("recording_id", sort=False)}


def parse_segment_attributes(segments: pd.DataFrame) -> pd.DataFrame:
    """`text`, `language` and `confidence_bucket` (review routing: high / medium / low) of each IPU out of
    its attributes JSON, parsed once here."""
    attrs = [json.loads(a) if a else {} for a in segments.attributes]
    # object columns: a missing value stays None (pandas' string dtype would make it NaN, which is truthy)
    return segments.assign(**{key: pd.Series([a.get(key) for a in attrs], index=segments.index, dtype=object)
                              for key in ("text", "language", "confidence_bucket")})


def _audio_path(run: RunFolder, recording_id: str) -> Path | None:
    try:
        path = run.path(recording_id, TracksStage.AUDIO)
    except KeyError:  # outputs.json does not list the recording
        return None
    return path if path.is_file() else None


def export_recordings(run: RunFolder, split: str | None = None) -> Iterator[ExportRecording]:
    """The accepted recordings of a finished run, sorted by id, each with its own rows of every table."""
    recordings = _read(run, "recordings").sort_values("recording_id")
    tables = {"segments": parse_segment_attributes(_read(run, "segments")), "words": _read(run, "words"),
              "events": _read(run, "events")}
    order = {"segments": ["start", "channel", "segment_id"], "words": ["start", "channel", "word_id"],
             "events": ["start", "type", "event_id"]}
    grouped = {name: _by_recording(frame, order[name]) for name, frame in tables.items()}
    empty = {name: frame.iloc[0:0] for name, frame in tables.items()}  # a recording without rows (silence)

    def rows(name: str, rid: str) -> pd.DataFrame:
        return grouped[name].get(rid, empty[name])

    for rec in recordings.itertuples():
        if split and rec.split != split:
            continue
        rid = rec.recording_id
        yield ExportRecording(
            recording_id=rid, split=rec.split, duration=float(rec.duration), num_channels=int(rec.num_channels),
            language=rec.language, channels=tuple(dict(c) for c in rec.channels),
            segments=rows("segments", rid), words=rows("words", rid), events=rows("events", rid),
            audio=_audio_path(run, rid))
