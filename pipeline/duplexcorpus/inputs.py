"""Find the conversations in INPUT: a folder of audio files, or a manifest (CSV/Parquet).

Folder: every audio file is one recording, except files named `<id>.ch<N>.<ext>` (the workflow's
`input.group_pattern`), which are grouped into one recording with channel N. Speaker metadata comes
from the sidecar `metadata.csv` (one row per recording_id + channel).

Manifest: one row per file, or one row per (recording_id, channel) when several mono files form one
recording. Columns: `path` (required; relative to the manifest), `recording_id`, `channel`,
`source_channel`, and the metadata columns below.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from duplexcorpus.config import InputConfig
from duplexcorpus.records import safe_key

SPEAKER_FIELDS = ("speaker_id", "gender", "age_group", "accent", "language")
RECORDING_FIELDS = ("language", "scenario", "environment", "device")


class InputError(ValueError):
    """INPUT itself is unusable (not a single recording: those are quarantined)."""


@dataclass(frozen=True)
class RecordingInput:
    """One conversation as discovered, before anything is decoded."""

    recording_id: str
    paths: tuple[str, ...]
    # (path, source_channel) per output channel; empty = every channel of the single file
    sources: tuple[tuple[str, int], ...] = ()
    speakers: dict[int, dict[str, Any]] = field(default_factory=dict)  # channel -> speaker metadata
    meta: dict[str, Any] = field(default_factory=dict)  # recording-level metadata

    @property
    def label(self) -> str:
        return ";".join(self.paths)


@dataclass(frozen=True)
class Discovery:
    inputs: list[RecordingInput]
    ignored: list[str]  # files that are not audio by extension (listed, never silently skipped)
    problems: list[tuple[str, str, str]]  # (input, reason_code, reason) found before decoding


def _clean(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
        return None
    return value


def _load_metadata(path: Path | None) -> pd.DataFrame | None:
    if path is None or not path.exists():
        return None
    frame = pd.read_csv(path, dtype=str, keep_default_na=False) if path.suffix != ".parquet" else pd.read_parquet(path)
    if "recording_id" not in frame.columns:
        raise InputError(f"{path}: metadata needs a recording_id column")
    return frame


def _attach_metadata(rid: str, meta: pd.DataFrame | None, base: dict[int, dict]) -> tuple[dict[int, dict], dict]:
    speakers = {ch: dict(v) for ch, v in base.items()}
    rec: dict[str, Any] = {}
    if meta is None:
        return speakers, rec
    rows = meta[meta["recording_id"] == rid]
    for _, row in rows.iterrows():
        ch = int(row["channel"]) if "channel" in row and _clean(row["channel"]) is not None else 0
        spk = speakers.setdefault(ch, {})
        for key in SPEAKER_FIELDS:
            if key in row and _clean(row[key]) is not None:
                spk[key] = str(row[key])
        for key in RECORDING_FIELDS:
            if key in row and _clean(row[key]) is not None and key != "language":
                rec[key] = str(row[key])
    langs = sorted({s["language"] for s in speakers.values() if s.get("language")})
    if langs:
        rec["language"] = "+".join(langs)
    return speakers, rec


def discover(input_path: str | Path, cfg: InputConfig, metadata: str | Path | None = None) -> Discovery:
    root = Path(input_path)
    if not root.exists():
        raise InputError(f"INPUT {root} does not exist")
    if root.is_file() and root.suffix.lower() in (".csv", ".parquet"):
        return _from_manifest(root, cfg)
    if not root.is_dir():
        raise InputError(f"INPUT {root} must be a folder or a .csv/.parquet manifest")
    meta = _load_metadata(Path(metadata) if metadata else root / cfg.metadata_file)
    pattern = re.compile(cfg.group_pattern)
    groups: dict[str, dict[int, str]] = {}
    singles: dict[str, str] = {}
    ignored, problems = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = path.relative_to(root)
        if path.suffix.lower() not in cfg.audio_extensions:
            if path.name != cfg.metadata_file:
                ignored.append(str(rel))
            continue
        stem = rel.with_suffix("").as_posix()
        match = pattern.match(stem)
        if match:
            rid = safe_key(match.group("recording_id"))
            groups.setdefault(rid, {})[int(match.group("channel"))] = str(path)
        else:
            singles[safe_key(stem)] = str(path)
    inputs = []
    for rid, path in singles.items():
        speakers, rec = _attach_metadata(rid, meta, {})
        inputs.append(RecordingInput(rid, (path,), (), speakers, rec))
    for rid, by_channel in groups.items():
        if rid in singles:
            problems.append((";".join(by_channel.values()), "duplicate_id", f"recording id {rid!r} also names {singles[rid]}"))
            continue
        channels = sorted(by_channel)
        if channels != list(range(len(channels))):
            problems.append((";".join(by_channel[c] for c in channels), "bad_channel_count",
                             f"channel files of {rid!r} are numbered {channels}; expected 0..{len(channels) - 1}"))
            continue
        paths = tuple(by_channel[c] for c in channels)
        speakers, rec = _attach_metadata(rid, meta, {})
        inputs.append(RecordingInput(rid, paths, tuple((p, 0) for p in paths), speakers, rec))
    inputs.sort(key=lambda i: i.recording_id)
    return Discovery(inputs, ignored, problems)


def _from_manifest(manifest: Path, cfg: InputConfig) -> Discovery:
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False) if manifest.suffix == ".csv" else pd.read_parquet(manifest).astype(str)
    if "path" not in frame.columns:
        raise InputError(f"manifest {manifest}: needs a 'path' column; has {list(frame.columns)}")
    base = manifest.parent
    frame["path"] = [str((base / p) if not Path(p).is_absolute() else Path(p)) for p in frame["path"]]
    if "recording_id" not in frame.columns or (frame["recording_id"] == "").any():
        derived = [safe_key(Path(p).relative_to(base).with_suffix("").as_posix()) if Path(p).is_relative_to(base)
                   else safe_key(Path(p).stem) for p in frame["path"]]
        frame["recording_id"] = [r if r else d for r, d in zip(frame.get("recording_id", [""] * len(frame)), derived)]
    frame["recording_id"] = [safe_key(r) for r in frame["recording_id"]]
    inputs, problems = [], []
    for rid, rows in frame.groupby("recording_id", sort=True):
        has_channel = "channel" in rows.columns and (rows["channel"] != "").all()
        speakers: dict[int, dict] = {}
        rec: dict[str, Any] = {}
        for _, row in rows.iterrows():
            ch = int(row["channel"]) if has_channel else 0
            speakers[ch] = {k: str(row[k]) for k in SPEAKER_FIELDS if k in row and _clean(row[k]) is not None}
            rec.update({k: str(row[k]) for k in RECORDING_FIELDS if k in row and _clean(row[k]) is not None and k != "language"})
        langs = sorted({s["language"] for s in speakers.values() if s.get("language")})
        if langs:
            rec["language"] = "+".join(langs)
        if has_channel:
            ordered = rows.assign(_c=rows["channel"].astype(int)).sort_values("_c")
            chans = list(ordered["_c"])
            if chans != list(range(len(chans))):
                problems.append((";".join(ordered["path"]), "bad_channel_count",
                                 f"manifest channels of {rid!r} are {chans}; expected 0..{len(chans) - 1}"))
                continue
            src_ch = [int(s) if s not in ("", "nan") else 0 for s in ordered.get("source_channel", ["0"] * len(ordered))]
            sources = tuple(zip(ordered["path"], src_ch))
            paths = tuple(dict.fromkeys(ordered["path"]))
            inputs.append(RecordingInput(rid, paths, sources, speakers, rec))
        elif len(rows) == 1:
            inputs.append(RecordingInput(rid, (rows["path"].iloc[0],), (), speakers, rec))
        else:
            problems.append((";".join(rows["path"]), "metadata",
                             f"{len(rows)} manifest rows share recording_id {rid!r} but have no 'channel' column"))
    return Discovery(inputs, [], problems)
