"""Find the conversations in INPUT: a folder of audio files, or a manifest (CSV/Parquet).

Folder: every audio file is one recording, except files named `<id>.ch<N>.<ext>` (the workflow's
`input.group_pattern`), which are grouped into one recording with channel N. Speaker metadata comes
from the sidecar `metadata.csv` (one row per recording_id + channel).

Manifest: one row per file, or one row per (recording_id, channel) when several mono files form one
recording. Columns: `path` (required; relative to the manifest), `recording_id`, `channel`,
`source_channel`, and the metadata columns below.
"""
from __future__ import annotations

import csv
import errno
import io
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from duplexcorpus.config import InputConfig
from duplexcorpus.records import safe_key

# `speakers`: how many people talk on that channel (a shared channel: a mono call, a meeting on one
# device); its `speaker_id` may then name them, `;`-separated, in the order they first speak
SPEAKER_FIELDS = ("speaker_id", "gender", "age_group", "accent", "language", "speakers")
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


def printable(path: str | Path) -> str:
    """A path as text that any table or log can hold: bytes that are not UTF-8 shown as \\xNN."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def path_problem(path: str | Path) -> tuple[str, str] | None:
    """(reason_code, reason) when `path` cannot be opened as a regular file, else None."""
    shown = printable(path)
    try:
        st = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink_loop", f"{shown}: symbolic link loop ({err.strerror})"
        if err.errno == errno.ENOENT and os.path.islink(path):
            return "broken_link", f"{shown}: symbolic link to {printable(os.readlink(path))!r}, which does not exist"
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return "missing_file", f"{shown}: file does not exist"
        if err.errno == errno.EACCES:
            return "permission_denied", f"{shown}: cannot be read ({err.strerror})"
        return "unreadable", f"{shown}: {err.strerror or err}"
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"),
                                             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                                             (stat.S_ISBLK, "a block device")) if test(st.st_mode)), "special file")
        return "not_a_file", f"{shown}: not a regular file ({kind})"
    try:
        with open(path, "rb"):
            pass
    except PermissionError as err:
        return "permission_denied", (f"{shown}: cannot be read ({err.strerror}; mode {stat.filemode(st.st_mode)}, "
                                     f"owner uid {st.st_uid})")
    except OSError as err:
        return "unreadable", f"{shown}: {err.strerror or err}"
    return None


@dataclass
class Metadata:
    """The sidecar metadata: usable rows (with their line in `_line`) and the lines that are not."""

    path: Path
    frame: pd.DataFrame
    bad: list[tuple[int, str | None, str]]  # (line, recording_id if readable, what is wrong)


def _load_metadata(path: Path | None) -> Metadata | None:
    if path is None or not path.exists():
        return None
    frame, bad = _read_rows(path, "recording_id", "metadata")
    return _check_metadata_rows(path, frame, bad)


def _read_rows(path: Path, required: str, what: str) -> tuple[pd.DataFrame, list[tuple[str, str | None, str]]]:
    """A CSV or Parquet table as strings, each row's place in `_line` ("line N" / "row N"), and the
    lines that could not be read: (where, recording_id if readable, what is wrong). A file without the
    `required` column is unusable as a whole (InputError)."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path).astype(str)
        if required not in frame.columns:
            raise InputError(f"{path}: {what} needs a {required!r} column; has {list(frame.columns)}")
        frame["_line"] = [f"row {k + 1}" for k in range(len(frame))]
        return frame, []
    raw = path.read_bytes()
    undecodable: dict[int, str] = {}
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        undecodable[line] = f"byte 0x{raw[err.start]:02x} is not UTF-8 (save the file as UTF-8)"
        text = raw.decode("utf-8-sig", "replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InputError(f"{path}: {what} file is empty (line 1 needs a header with {required})") from None
    except csv.Error as err:
        raise InputError(f"{path} line 1: not CSV ({err})") from None
    if required not in header:
        raise InputError(f"{path} line 1: {what} needs a {required!r} column; header is {header}")
    rid_col = header.index("recording_id") if "recording_id" in header else None
    rows, lines, bad = [], [], []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            bad.append((f"line {start}", None, f"not CSV ({err})"))
            continue
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        rid = row[rid_col] if rid_col is not None and rid_col < len(row) and row[rid_col] else None
        broken = [undecodable[n] for n in range(start, reader.line_num + 1) if n in undecodable]
        if broken:
            bad.append((f"line {start}", rid, broken[0]))
        elif len(row) != len(header):
            bad.append((f"line {start}", rid, f"{len(row)} fields, the header has {len(header)}"))
        else:
            rows.append(row)
            lines.append(start)
    frame = pd.DataFrame(rows, columns=header, dtype=str)
    frame["_line"] = [f"line {n}" for n in lines]
    return frame, bad


def _check_metadata_rows(path: Path, frame: pd.DataFrame, bad: list) -> Metadata:
    """Rows whose values are wrong (no recording id, a channel that is not a number, a speaker given
    twice for one channel) join the malformed lines; the rest are usable."""
    good, seen = [], {}
    for idx, row in frame.iterrows():
        rid = _clean(row["recording_id"])
        where = row["_line"]
        if rid is None:
            bad.append((where, None, "recording_id is empty"))
            continue
        channel = _clean(row["channel"]) if "channel" in frame.columns else None
        if channel is not None and not str(channel).strip().isdigit():
            bad.append((where, rid, f"channel {channel!r} is not a channel number (0, 1, ...)"))
            continue
        count = _clean(row["speakers"]) if "speakers" in frame.columns else None
        if count is not None and not (str(count).strip().isdigit() and int(count) >= 1):
            bad.append((where, rid, f"speakers {count!r} is not a speaker count (1, 2, ...)"))
            continue
        key = (rid, int(channel) if channel is not None else 0)
        if key in seen:
            bad.append((where, rid, f"recording {rid!r} channel {key[1]} is already described on {seen[key]}"))
            continue
        seen[key] = where
        good.append(idx)
    return Metadata(path, frame.loc[good].reset_index(drop=True), bad)


def _attach_metadata(rid: str, meta: Metadata | None, base: dict[int, dict]) -> tuple[dict[int, dict], dict]:
    speakers = {ch: dict(v) for ch, v in base.items()}
    rec: dict[str, Any] = {}
    if meta is None:
        return speakers, rec
    rows = meta.frame[meta.frame["recording_id"] == rid]
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
    for path in sorted(p for p in root.rglob("*") if not p.name.startswith(".")):
        rel = path.relative_to(root)
        if path.is_dir():
            if path.is_symlink():
                ignored.append(f"{printable(rel)} (link to a folder, not followed)")
            continue
        if path.suffix.lower() not in cfg.audio_extensions:
            if path.name != cfg.metadata_file:
                ignored.append(printable(rel))
            continue
        try:
            rel.as_posix().encode("utf-8")
        except UnicodeEncodeError:
            problems.append((printable(path), "non_utf8_name",
                             f"{printable(rel)}: the file name is not valid UTF-8 (undecodable bytes shown as \\xNN); "
                             "rename it to UTF-8 so the tables can name it"))
            continue
        problem = path_problem(path)
        if problem and problem[0] != "permission_denied":  # unreadable files are quarantined by ingest
            problems.append((str(path), *problem))
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
    known = set(singles) | set(groups)
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
    if meta is not None:
        inputs = _metadata_problems(meta, inputs, known, problems)
    return Discovery(inputs, ignored, problems)


def _metadata_problems(meta: Metadata, inputs: list[RecordingInput], known: set[str],
                       problems: list[tuple[str, str, str]]) -> list[RecordingInput]:
    """A malformed metadata line quarantines the recording it names (its speakers are unknown, so
    speaker-disjoint splits cannot place it), or is listed on its own; a row for audio that is not
    there is listed too. Nothing in the metadata is dropped silently."""
    by_id = {i.recording_id: i for i in inputs}
    hit: dict[str, list[str]] = {}
    for where, rid, why in meta.bad:
        key = safe_key(rid) if rid else None
        if key in by_id:
            hit.setdefault(key, []).append(f"{meta.path} {where}: {why}")
        else:
            problems.append((f"{meta.path}:{where.split()[-1]}", "metadata", f"{meta.path} {where}: {why}"))
    for rid, whys in hit.items():
        problems.append((by_id[rid].label, "metadata", "; ".join(whys)))
    for _, row in meta.frame.iterrows():
        if row["recording_id"] not in known:
            channel = f" channel {row['channel']}" if "channel" in row and _clean(row["channel"]) is not None else ""
            problems.append((f"{meta.path}:{row['_line'].split()[-1]}", "metadata_without_audio",
                             f"{meta.path} {row['_line']} describes recording {row['recording_id']!r}{channel}, "
                             "but INPUT has no audio file for it"))
    return [i for i in inputs if i.recording_id not in hit]


def _from_manifest(manifest: Path, cfg: InputConfig) -> Discovery:
    frame, bad = _read_rows(manifest, "path", "manifest")
    base = manifest.parent
    bad_ids = {safe_key(rid) for _, rid, _ in bad if rid}  # a recording with an unreadable line is not processed
    frame = frame[[safe_key(r) not in bad_ids for r in frame["recording_id"]]] if bad_ids else frame
    frame = frame.reset_index(drop=True)
    frame["path"] = [str((base / p) if not Path(p).is_absolute() else Path(p)) for p in frame["path"]]
    if "recording_id" not in frame.columns or (frame["recording_id"] == "").any():
        derived = [safe_key(Path(p).relative_to(base).with_suffix("").as_posix()) if Path(p).is_relative_to(base)
                   else safe_key(Path(p).stem) for p in frame["path"]]
        frame["recording_id"] = [r if r else d for r, d in zip(frame.get("recording_id", [""] * len(frame)), derived)]
    frame["recording_id"] = [safe_key(r) for r in frame["recording_id"]]
    inputs, problems = [], []
    for where, rid, why in bad:
        problems.append((f"{manifest}:{where.split()[-1]}", "metadata", f"manifest {manifest} {where}: {why}"
                         + (f" (recording {safe_key(rid)!r} is not processed)" if rid else "")))
    for rid, rows in frame.groupby("recording_id", sort=True):
        label = ";".join(rows["path"])
        wrong = [f"manifest {manifest} {row['_line']}: {col} {row[col]!r} is not a channel number (0, 1, ...)"
                 for _, row in rows.iterrows() for col in ("channel", "source_channel")
                 if col in row and row[col] not in ("", "nan") and not str(row[col]).strip().isdigit()]
        wrong += [f"manifest {manifest} {row['_line']}: the path is empty" for _, row in rows.iterrows()
                  if not str(row["path"]).strip() or Path(row["path"]) == base]
        if wrong:
            problems.append((label, "metadata", "; ".join(wrong)))
            continue
        missing = [(row["_line"], path_problem(row["path"])) for _, row in rows.drop_duplicates("path").iterrows()]
        missing = [(where, p) for where, p in missing if p and p[0] != "permission_denied"]
        if missing:
            problems.append((label, missing[0][1][0], "; ".join(f"manifest {manifest} {where} names {p[1]}"
                                                                for where, p in missing)))
            continue
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
