"""Shard samples: cut a recording into windows at silences and write each window's members.

Per window: multi-channel FLAC at the tracks' rate, per-channel frame labels (.npy) and the sample
JSON (segments + events relative to the window, metadata). The split is added when the shards are
packed, because it depends on the whole corpus (speaker-disjoint).
"""
from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from duplexcorpus.audio import read_window
from duplexcorpus.contract import SCHEMA_VERSION
from duplexcorpus.overlay import apply_reviews, review_hash
from duplexcorpus.records import CONDITION_FIELDS, Event, Segment, event_rows, segment_rows
from duplexcorpus.stages.asr import AsrStage
from duplexcorpus.stages.base import Output, Stage, WorkItem
from duplexcorpus.stages.conditions import ConditionsStage
from duplexcorpus.stages.events import EventsStage
from duplexcorpus.stages.ipus import IpuStage
from duplexcorpus.stages.tracks import TracksStage
from duplexcorpus.storage import stable_hash, write_json

LABELS = ("speech", "floor", "backchannel", "interruption", "overlap", "laughter", "breath", "cough", "sigh")
NONVERBAL = ("laughter", "breath", "cough", "sigh")  # rows from the non-verbal stage's events (sample 1.2.0)
WINDOW = "[0-9]" * 4  # the window index in a member's file name: w0000.flac, w0001.flac, ...


def window_file(output: Output, k: int) -> str:
    """The file of window k for a per-window output (`window_file(SamplesStage.AUDIO, 3)` = w0003.flac)."""
    return output.file.replace(WINDOW, f"{k:04d}")


def choose_windows(duration: float, segments: list[Segment], max_window: float, min_window: float) -> list[tuple[float, float]]:
    """Cut points in silences shared by all channels, each window at most `max_window` long."""
    if duration <= max_window:
        return [(0.0, duration)]
    spans = sorted((s.start, s.end) for s in segments)
    silences, reach = [], 0.0
    for s, e in spans:
        if s > reach:
            silences.append((reach, s))
        reach = max(reach, e)
    silences.append((reach, duration))
    windows, cursor = [], 0.0
    while duration - cursor > max_window:
        limit = cursor + max_window
        cands = [(a + b) / 2 for a, b in silences if cursor + min_window <= (a + b) / 2 <= limit]
        cut = max(cands) if cands else limit  # no silence: hard cut (segments get clipped)
        windows.append((cursor, cut))
        cursor = cut
    windows.append((cursor, duration))
    return windows


def frame_labels(channels: int, start: float, end: float, segments: list[Segment], events: list[Event],
                 rate: float) -> np.ndarray:
    """uint8 [channels, len(LABELS), frames]: a frame is set when its centre is inside the span."""
    n = int(np.ceil((end - start) * rate))
    centres = start + (np.arange(n) + 0.5) / rate
    out = np.zeros((channels, len(LABELS), n), np.uint8)

    def mark(c: int, label: str, s: float, e: float):
        out[c, LABELS.index(label)] |= ((centres >= s) & (centres < e)).astype(np.uint8)

    for seg in segments:
        mark(seg.channel, "speech", seg.start, seg.end)
    for ev in events:
        if ev.type == "turn":
            mark(ev.channel, "floor", ev.start, ev.end)
        elif ev.type in ("backchannel", "interruption") or ev.type in NONVERBAL:
            mark(ev.channel, ev.type, ev.start, ev.end)
        elif ev.type == "overlap":
            for c in ev.attributes.get("channels", []):
                mark(c, "overlap", ev.start, ev.end)
    return out


def shared_channel_speakers(segments: list[Segment]) -> list[tuple[str, int]]:
    """(speaker_id, channel) of every speaker, in channel then first-speech order, when some channel
    carries more than one (a diarized mono call); [] when each channel is one speaker."""
    first: dict[tuple[int, str], float] = {}
    for seg in segments:
        key = (seg.channel, seg.speaker_id)
        first[key] = min(first.get(key, seg.start), seg.start)
    if len({c for c, _ in first}) == len(first):
        return []
    return [(spk, c) for c, spk in sorted(first, key=lambda k: (k[0], first[k]))]


def speaker_frame_labels(speakers: list[str], start: float, end: float, segments: list[Segment],
                         events: list[Event], rate: float) -> np.ndarray:
    """uint8 [speakers, len(LABELS), frames]: `frame_labels` with one row per speaker instead of per
    channel (what a duplex model needs where speakers share a channel). An overlap marks the speakers
    talking inside it."""
    row = {spk: k for k, spk in enumerate(speakers)}
    segs = [dataclasses.replace(s, channel=row[s.speaker_id]) for s in segments if s.speaker_id in row]
    evs = []
    for ev in events:
        if ev.type == "overlap":
            talking = sorted({s.channel for s in segs if s.start < ev.end and s.end > ev.start})
            evs.append(dataclasses.replace(ev, attributes=dict(ev.attributes, channels=talking)))
        elif ev.speaker_id in row:
            evs.append(dataclasses.replace(ev, channel=row[ev.speaker_id]))
    return frame_labels(len(speakers), start, end, segs, evs, rate)


def text_frames(channels: int, duration: float, words: list[dict], rate: float) -> np.ndarray:
    """int32 [channels, frames]: k > 0 where the frame centre lies in words[k-1] (window-relative
    times), 0 elsewhere — the word stream a duplex model's text channel is trained on."""
    n = int(np.ceil(duration * rate))
    centres = (np.arange(n) + 0.5) / rate
    out = np.zeros((channels, n), np.int32)
    for k, w in enumerate(words):
        inside = (centres >= w["start"]) & (centres < w["end"])
        if not inside.any():  # a word shorter than a frame still gets the frame it starts in
            inside = np.zeros(n, bool)
            inside[min(n - 1, int(w["start"] * rate))] = True
        out[w["channel"], inside] = k + 1
    return out


def _relative(rows: list[dict], start: float, end: float) -> list[dict]:
    out = []
    for r in rows:
        if r["end"] <= start or r["start"] >= end:
            continue
        r = dict(r)
        r["start"] = round(max(r["start"], start) - start, 3)
        r["end"] = round(min(r["end"], end) - start, 3)
        if "attributes" in r and isinstance(r["attributes"], str):
            r["attributes"] = json.loads(r["attributes"])
        out.append(r)
    return out


class SamplesStage(Stage):
    name = "samples"
    version = "3"  # 3: speakers sharing a channel; recording conditions; non-verbal label rows (sample 1.2.0)
    config_section = "shard"
    reads = ("tracks", "ipus", "conditions", "asr", "events")
    WINDOWS = Output("windows.json", read=lambda p: json.loads(p.read_text()), description="sample keys and window spans")
    AUDIO = Output(f"w{WINDOW}.flac", description="a window's audio, all channels")
    LABELS = Output(f"w{WINDOW}.labels.npy", description="uint8 [channels, labels, frames]")
    TEXT = Output(f"w{WINDOW}.text.npy", optional=True, description="int32 [channels, frames] word index")
    SPEAKER_LABELS = Output(f"w{WINDOW}.speakers.npy", optional=True,
                            description="uint8 [speakers, labels, frames], when speakers share a channel")
    SAMPLE = Output(f"w{WINDOW}.json", description="the sample JSON (schemas/v1/sample.schema.json)")

    def cache_key(self, item: WorkItem) -> str:
        key = super().cache_key(item)  # annotators' corrections change the samples
        return stable_hash(key, review_hash(item)) if item.review else key

    def process(self, item: WorkItem, out_dir: Path) -> None:
        rec = item.rec().with_conditions(item.read(ConditionsStage.CONDITIONS))
        segments = item.read(AsrStage.SEGMENTS)
        words = item.read(AsrStage.WORDS)
        events = item.read(EventsStage.EVENTS) + item.read(IpuStage.CROSSTALK_EVENTS)
        segments, words, events = apply_reviews(item, segments, words, events, self.workflow)
        words = sorted(words, key=lambda w: (w.channel, w.start))
        windows = choose_windows(rec.duration, segments, self.cfg.max_window, self.cfg.min_window)
        seg_rows = segment_rows(segments)
        ev_rows = event_rows(events)
        names = []
        shared = shared_channel_speakers(segments)
        for k, (start, end) in enumerate(windows):
            key = f"{rec.recording_id}_w{k:04d}"
            audio, sr = read_window(str(item.path(TracksStage.AUDIO)), start, end)
            buf = io.BytesIO()
            sf.write(buf, audio.T, sr, format="FLAC", subtype=self.cfg.subtype)
            (out_dir / window_file(self.AUDIO, k)).write_bytes(buf.getvalue())
            labels = frame_labels(rec.num_channels, start, end, segments, events, self.cfg.frame_rate)
            np.save(out_dir / window_file(self.LABELS, k), labels)
            window_words = [dict(channel=w.channel, word=w.word, start=round(max(w.start, start) - start, 3),
                                 end=round(min(w.end, end) - start, 3), score=round(float(w.score), 4),
                                 language=w.language, interpolated=bool(w.interpolated), source=w.source)
                            for w in words if w.end > start and w.start < end]
            if self.cfg.text_frames:
                text = text_frames(rec.num_channels, end - start, window_words, self.cfg.frame_rate)
                np.save(out_dir / window_file(self.TEXT, k), text)
            channels = [dict(channel=c.channel, speaker_id=c.speaker_id, gender=c.gender, age_group=c.age_group,
                             accent=c.accent, language=c.language,
                             conditions={k_: getattr(c, k_) for k_ in CONDITION_FIELDS}) for c in rec.channels]
            sample = {
                "schema_version": SCHEMA_VERSION,
                "recording_id": rec.recording_id,
                "window": {"index": k, "count": len(windows), "start": round(start, 3), "end": round(end, 3)},
                "sample_rate": sr,
                "num_channels": rec.num_channels,
                "split": None,
                "channels": channels,
                "metadata": {"language": rec.language, "scenario": rec.scenario, "environment": rec.environment,
                             "device": rec.device, "source_sha256": rec.sha256,
                             "environment_suggested": rec.environment_suggested, "device_suggested": rec.device_suggested},
                "segments": [{k_: v for k_, v in r.items() if k_ not in ("recording_id", "attributes", "crosstalk_suppressed")}
                             for r in _relative(seg_rows, start, end)],
                "words": window_words,
                "events": [{k_: v for k_, v in r.items() if k_ != "recording_id"}
                           for r in _relative(ev_rows, start, end)],
                "frame_labels": {"frame_rate": self.cfg.frame_rate, "names": list(LABELS), "shape": list(labels.shape)},
            }
            if shared:  # speakers share a channel: who is who, and their labels row by row
                rows = speaker_frame_labels([spk for spk, _ in shared], start, end, segments, events,
                                            self.cfg.frame_rate)
                np.save(out_dir / window_file(self.SPEAKER_LABELS, k), rows)
                sample["speakers"] = [dict(speaker_id=spk, channel=c) for spk, c in shared]
                sample["speaker_frame_labels"] = {"frame_rate": self.cfg.frame_rate, "names": list(LABELS),
                                                  "shape": list(rows.shape)}
            if self.cfg.text_frames:
                sample["text_frames"] = {"frame_rate": self.cfg.frame_rate, "shape": list(text.shape)}
            write_json(out_dir / window_file(self.SAMPLE, k), sample)
            names.append(key)
        write_json(out_dir / self.WINDOWS.file, {"keys": names, "windows": windows})
