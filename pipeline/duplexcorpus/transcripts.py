"""Given transcripts: per-utterance text with approximate times, to be aligned instead of recognised.

Formats (one file per recording, named after it, or one STM/CSV file covering many recordings):
- STM (NIST): `recording channel speaker start end [<label>] text` — channel 1/2/... or A/B;
- Praat TextGrid (via praatio): one interval tier per channel, named `ch0`/`ch1`/... or after the
  channel's speaker id;
- JSON: `[{"channel"|"speaker": ..., "start": s, "end": s, "text": ...}]` (or `{"utterances": [...]}`);
- CSV: columns `channel` or `speaker`, `start`, `end`, `text` (and `recording_id` for a shared file).

Every problem is a `TranscriptError` naming the file and line, so the recording is quarantined with
a reason instead of being recognised silently.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from duplexcorpus.records import Recording

SUFFIXES = (".stm", ".TextGrid", ".textgrid", ".transcript.json", ".transcript.csv", ".json", ".csv")


class TranscriptError(ValueError):
    pass


@dataclass(frozen=True)
class Utterance:
    channel: int
    start: float
    end: float
    text: str


def find_transcript(rec: Recording, folder: str | None) -> Path | None:
    """A transcript for `rec`: in the workflow's transcripts folder/file, or beside its audio."""
    places = []
    if folder:
        root = Path(folder)
        if root.is_file():
            return root
        places += [root / rec.recording_id]
    places += [Path(p).with_suffix("") for p in rec.source_paths]
    for base in places:
        for suffix in SUFFIXES:
            if suffix in (".json", ".csv") and base.parent != Path(folder or "/nonexistent"):
                continue  # bare .json/.csv beside audio are too ambiguous (metadata.csv ...)
            candidate = base.parent / (base.name + suffix)
            if candidate.exists():
                return candidate
    return None


def _channel(value: str, rec: Recording, where: str, one_based: bool = False) -> int:
    value = str(value).strip()
    for ch in rec.channels:
        if value == ch.speaker_id:
            return ch.channel
    if value.lower().startswith("ch") and value[2:].isdigit():
        idx = int(value[2:])
    elif value.isdigit():  # STM channels are 1-based
        idx = int(value) - 1 if one_based else int(value)
    elif len(value) == 1 and value.isalpha():
        idx = ord(value.upper()) - ord("A")
    else:
        raise TranscriptError(f"{where}: channel/speaker {value!r} matches no channel of {rec.recording_id}")
    if rec.num_channels == 1:
        return 0  # a mono recording: every speaker is on channel 0
    if not 0 <= idx < rec.num_channels:
        raise TranscriptError(f"{where}: channel {value!r} is outside the recording's {rec.num_channels} channels")
    return idx


def _utterance(rec: Recording, channel: str, start, end, text: str, where: str,
               one_based: bool = False) -> Utterance | None:
    try:
        s, e = float(start), float(end)
    except (TypeError, ValueError) as err:
        raise TranscriptError(f"{where}: start/end {start!r}/{end!r} are not numbers") from err
    if not e > s >= 0:
        raise TranscriptError(f"{where}: end {e} is not after start {s}")
    if s > rec.duration + 0.5:
        raise TranscriptError(f"{where}: starts at {s:.2f} s, after the recording's end ({rec.duration:.2f} s)")
    text = (text or "").strip()
    if not text or text in ("ignore_time_segment_in_scoring",):
        return None
    return Utterance(_channel(channel, rec, where, one_based), s, min(e, rec.duration), text)


def read_transcript(path: Path, rec: Recording) -> list[Utterance]:
    name = path.name.lower()
    try:
        if name.endswith(".stm"):
            out = _read_stm(path, rec)
        elif name.endswith(".textgrid"):
            out = _read_textgrid(path, rec)
        elif name.endswith(".json"):
            out = _read_json(path, rec)
        elif name.endswith(".csv"):
            out = _read_csv(path, rec)
        else:
            raise TranscriptError(f"{path}: unknown transcript format (use .stm, .TextGrid, .json or .csv)")
    except UnicodeDecodeError as err:
        raise TranscriptError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    return sorted(out, key=lambda u: (u.start, u.channel))


def _read_stm(path: Path, rec: Recording) -> list[Utterance]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith(";;"):
            continue
        parts = line.split()
        if len(parts) < 5:
            raise TranscriptError(f"{path}:{n}: an STM line needs `file channel speaker start end text`")
        file_id, channel, speaker, start, end, *words = parts
        if file_id not in (rec.recording_id, Path(rec.source_paths[0]).stem) and not path.stem == rec.recording_id:
            continue
        if words and words[0].startswith("<"):
            words = words[1:]
        # prefer the speaker column when it names a channel's speaker, else the channel column
        key = speaker if any(c.speaker_id == speaker for c in rec.channels) else channel
        u = _utterance(rec, key, start, end, " ".join(words), f"{path}:{n}", one_based=True)
        if u:
            out.append(u)
    return out


def _read_textgrid(path: Path, rec: Recording) -> list[Utterance]:
    from praatio import textgrid

    try:
        tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    except Exception as err:  # noqa: BLE001 - praatio raises many kinds for malformed files
        raise TranscriptError(f"{path}: not a readable TextGrid ({err})") from err
    out = []
    for tier_name in tg.tierNames:
        tier = tg.getTier(tier_name)
        for k, (start, end, label) in enumerate(getattr(tier, "entries", [])):
            u = _utterance(rec, tier_name, start, end, label, f"{path}:{tier_name}[{k}]")
            if u:
                out.append(u)
    return out


def _read_json(path: Path, rec: Recording) -> list[Utterance]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise TranscriptError(f"{path}: invalid JSON ({err})") from err
    rows = data.get("utterances") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise TranscriptError(f"{path}: expected a list of utterances or {{\"utterances\": [...]}}")
    out = []
    for k, row in enumerate(rows):
        if not isinstance(row, dict) or "text" not in row:
            raise TranscriptError(f"{path}[{k}]: each utterance needs channel|speaker, start, end, text")
        if row.get("recording_id", rec.recording_id) != rec.recording_id:
            continue
        who = row.get("channel", row.get("speaker", 0))
        u = _utterance(rec, who, row.get("start"), row.get("end"), row["text"], f"{path}[{k}]")
        if u:
            out.append(u)
    return out


def _read_csv(path: Path, rec: Recording) -> list[Utterance]:
    out = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"start", "end", "text"} - set(reader.fieldnames or [])
        if missing:
            raise TranscriptError(f"{path}: missing column(s) {sorted(missing)}")
        for n, row in enumerate(reader, 2):
            if row.get("recording_id", rec.recording_id) not in (rec.recording_id, None, ""):
                continue
            who = row.get("channel") or row.get("speaker") or "0"
            u = _utterance(rec, who, row["start"], row["end"], row["text"], f"{path}:{n}")
            if u:
                out.append(u)
    return out
