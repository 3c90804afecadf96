"""What the report shows, read from a finished run folder: the tables (through `RunFolder`, checked
against the contract), stats.json, the hallucination gates' drops and the review state. Nothing here
reads audio: recording pages only link to it.

One pass over each table: for 100 hours of corpus (hundreds of thousands of IPUs, a million words)
the report must build in minutes, so per-row Python work is limited to the JSON attributes the
report needs (segment text and risk, floor-transfer offsets, interruption outcomes).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from duplexcorpus.runfolder import RunFolder

# word score buckets shown on the words page (Whisper word probabilities / alignment scores in [0, 1])
SCORE_EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0000001)
SCORE_LABELS = ("0–0.2", "0.2–0.4", "0.4–0.6", "0.6–0.8", "0.8–1")
GROUPINGS = ("split", "language", "scenario", "environment", "device")
SPEAKER_FACETS = ("gender", "age_group", "accent")


@dataclass(frozen=True)
class ReviewStatus:
    """Where human review stands: windows pushed to Label Studio, merged back, and their verdicts."""
    sent: int
    merged: int
    verdicts: dict[str, int]
    rejected_annotations: int
    disagreements: int
    changes: int  # rows of review/audit.parquet (segments, words, events added or removed)


@dataclass(frozen=True)
class Corpus:
    """A finished run, as the report reads it. Frames are the tables (attributes parsed where needed)."""
    out: Path
    spec: dict[str, Any]
    stats: dict[str, Any]
    recordings: pd.DataFrame  # + total speech seconds, overlap seconds
    speakers: pd.DataFrame  # one row per (split, speaker): gender, age_group, accent, language
    segments: pd.DataFrame  # + text, risk, risk_reasons, bucket
    words: pd.DataFrame
    events: pd.DataFrame  # + offset (floor_transfer), successful (interruption)
    quarantine: pd.DataFrame
    dropped: pd.DataFrame  # recording_id, channel, start, end, reason, text
    review: ReviewStatus | None
    audio: dict[str, str] = field(default_factory=dict)  # recording -> its audio, relative to OUT


def _attrs(column: pd.Series) -> list[dict]:
    return [json.loads(a) if a else {} for a in column]


def _recording_columns(recs: pd.DataFrame) -> pd.DataFrame:
    recs = recs.copy()
    for col in ("language", "scenario", "environment", "device"):
        recs[col] = recs[col].fillna("unknown")
    return recs


def _speakers(recs: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    """One row per speaker and split. Speakers from the channel map carry metadata; speakers found by
    diarization (`<rec>_ch<N>_spk<K>`) appear with unknown metadata."""
    rows = {}
    for rid, split, channels in zip(recs.recording_id, recs.split, recs.channels):
        for c in channels:  # a shared channel names its speakers 'A;B' (recordings 1.3.0)
            for spk in str(c["speaker_id"]).split(";"):
                rows[(split, spk)] = {f: c.get(f) or "unknown" for f in SPEAKER_FACETS + ("language",)}
    split_of = dict(zip(recs.recording_id, recs.split))
    if len(segments):
        pairs = segments[["recording_id", "speaker_id"]].drop_duplicates()
        for rid, spk in zip(pairs.recording_id, pairs.speaker_id):
            rows.setdefault((split_of.get(rid, "unknown"), spk), {f: "unknown" for f in SPEAKER_FACETS + ("language",)})
    frame = pd.DataFrame([{"split": s, "speaker_id": spk, **meta} for (s, spk), meta in rows.items()])
    if frame.empty:
        return pd.DataFrame(columns=["split", "speaker_id", *SPEAKER_FACETS, "language"])
    return frame.sort_values(["split", "speaker_id"]).reset_index(drop=True)


def _segments(segs: pd.DataFrame) -> pd.DataFrame:
    attrs = _attrs(segs.attributes)
    segs = segs.drop(columns=["attributes"]).assign(
        text=[a.get("text") for a in attrs],
        risk=[float(a.get("risk", 0.0)) for a in attrs],
        risk_reasons=[a.get("risk_reasons", {}) for a in attrs],
        bucket=[a.get("confidence_bucket") for a in attrs],
        duration=segs.end - segs.start)
    return segs


def _events(events: pd.DataFrame) -> pd.DataFrame:
    offset = np.full(len(events), np.nan)
    successful = np.zeros(len(events), dtype=bool)
    for i in np.flatnonzero(events.type.isin(["floor_transfer", "interruption"]).to_numpy()):
        a = json.loads(events.attributes.iat[i] or "{}")
        offset[i] = a.get("offset", np.nan)
        successful[i] = bool(a.get("successful"))
    return events.drop(columns=["attributes"]).assign(offset=offset, successful=successful,
                                                      duration=events.end - events.start)


def _dropped(run: RunFolder) -> pd.DataFrame:
    """What the hallucination gates removed (the ASR stage's dropped.json of every recording)."""
    from duplexcorpus.stages.asr import AsrStage

    rows = []
    for rid, stages in sorted(run.stage_dirs.items()):
        if "asr" not in stages:
            continue
        path = run.path(rid, AsrStage.DROPPED)
        if path.exists():
            rows += [{"recording_id": rid, **{k: d.get(k) for k in ("channel", "start", "end", "reason", "text")}}
                     for d in run.read(rid, AsrStage.DROPPED)]
    return pd.DataFrame(rows, columns=["recording_id", "channel", "start", "end", "reason", "text"])


def _audio(run: RunFolder) -> dict[str, str]:
    from duplexcorpus.stages.tracks import TracksStage

    found = {}
    for rid, stages in run.stage_dirs.items():
        if "tracks" in stages:
            found[rid] = os.path.relpath(run.path(rid, TracksStage.AUDIO), run.out)
    return found


def review_status(out: Path) -> ReviewStatus | None:
    """None when review never ran (no OUT/review/state.json)."""
    review = Path(out) / "review"
    state = review / "state.json"
    if not state.exists():
        return None
    sent = len(json.loads(state.read_text()).get("tasks", {}))
    verdicts: dict[str, int] = {}
    merged = 0
    for path in sorted((review / "human").glob("*.json")):
        for window in json.loads(path.read_text()).get("windows", []):
            merged += 1
            verdicts[window.get("verdict") or "none"] = verdicts.get(window.get("verdict") or "none", 0) + 1

    def count(name: str) -> int:
        p = review / name
        return len(json.loads(p.read_text())) if p.exists() else 0

    audit = review / "audit.parquet"
    changes = len(pd.read_parquet(audit, columns=["kind"])) if audit.exists() else 0
    return ReviewStatus(sent, merged, dict(sorted(verdicts.items())), count("rejected.json"),
                        count("disagreements.json"), changes)


def load_corpus(out: str | Path) -> Corpus:
    run = RunFolder(out)
    recs = _recording_columns(run.frame("recordings"))
    segs = _segments(run.frame("segments"))
    events = _events(run.frame("events"))
    speech = segs.groupby("recording_id").duration.sum()
    overlap = events[events.type == "overlap"].groupby("recording_id").duration.sum()
    recs = recs.assign(speech_s=recs.recording_id.map(speech).fillna(0.0).astype(float),
                       overlap_s=recs.recording_id.map(overlap).fillna(0.0).astype(float))
    stats_path = run.out / "stats.json"
    return Corpus(out=run.out, spec=run.spec, stats=json.loads(stats_path.read_text()) if stats_path.exists() else {},
                  recordings=recs, speakers=_speakers(recs, segs), segments=segs, words=run.frame("words"),
                  events=events, quarantine=run.frame("quarantine"), dropped=_dropped(run),
                  review=review_status(run.out), audio=_audio(run))


# ---------------------------------------------------------------------------------- summaries
def hours_by(recs: pd.DataFrame, column: str) -> dict[str, float]:
    return {str(k): round(v / 3600, 3) for k, v in recs.groupby(column).duration.sum().sort_index().items()}


def speaker_balance(speakers: pd.DataFrame) -> dict[str, dict[str, dict[str, int]]]:
    """split -> facet (gender, age group, accent) -> value -> speakers."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for split, group in speakers.groupby("split"):
        out[str(split)] = {"speakers": {"all": int(group.speaker_id.nunique())}}
        for facet in SPEAKER_FACETS:
            out[str(split)][facet] = {str(k): int(v) for k, v in group[facet].value_counts().sort_index().items()}
    return out


def quarantine_summary(quarantine: pd.DataFrame) -> list[dict]:
    """One row per reason: how many inputs, and which (with the specific message of each)."""
    rows = []
    for code, group in quarantine.groupby("reason_code"):
        rows.append({"reason_code": code, "count": len(group),
                     "inputs": [{"input": i, "stage": s, "reason": r} for i, s, r in
                                zip(group.input, group.stage, group.reason)]})
    return sorted(rows, key=lambda r: (-r["count"], r["reason_code"]))


def per_minute(corpus: Corpus, types: tuple[str, ...]) -> dict[str, float]:
    minutes = max(corpus.recordings.duration.sum() / 60, 1e-9)
    counts = corpus.events.type.value_counts()
    return {t: round(float(counts.get(t, 0)) / minutes, 3) for t in types}


def per_recording_rates(corpus: Corpus, types: tuple[str, ...]) -> pd.DataFrame:
    """Events per minute of each recording (rows) and type (columns)."""
    counts = corpus.events[corpus.events.type.isin(types)].groupby(["recording_id", "type"]).size().unstack(fill_value=0)
    counts = counts.reindex(index=corpus.recordings.recording_id, columns=list(types), fill_value=0)
    minutes = corpus.recordings.set_index("recording_id").duration / 60
    return counts.div(minutes.clip(lower=1e-9), axis=0)


def score_buckets(words: pd.DataFrame) -> dict[str, int]:
    counts = pd.cut(words.score.astype(float), SCORE_EDGES, labels=SCORE_LABELS, right=False).value_counts()
    return {label: int(counts.get(label, 0)) for label in SCORE_LABELS}
