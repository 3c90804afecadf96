"""Export a finished run as RTTM (NIST rich transcription), the diarization tools' common format.

    DIR/<recording_id>.rttm   SPEAKER <recording_id> 1 <start> <duration> <NA> <NA> <speaker_id> <NA> <NA>,
                              one line per IPU (overlapping speech is two lines)
    DIR/<recording_id>.uem    the scored region: the whole recording

pyannote.core writes the lines (the format pyannote.metrics, dscore and NeMo's diarization scripts
read). RTTM fields are separated by whitespace, so whitespace inside a speaker id or recording id
becomes "_" (the summary lists every such rename).
"""
from __future__ import annotations

import re
from pathlib import Path

from pyannote.core import Annotation, Segment, Timeline

from duplexcorpus.exports.corpus import ExportRecording, export_recordings, open_run
from duplexcorpus.storage import atomic_path

_WHITESPACE = re.compile(r"\s+")


def rttm_name(name: str) -> str:
    return _WHITESPACE.sub("_", name.strip())


def speech_annotation(rec: ExportRecording) -> Annotation:
    """Who speaks when: one track per IPU, labelled with its speaker."""
    annotation = Annotation(uri=rttm_name(rec.recording_id))
    for seg in rec.segments.itertuples():
        end = min(float(seg.end), rec.duration)
        if end > seg.start:
            annotation[Segment(float(seg.start), end), seg.segment_id] = rttm_name(seg.speaker_id)
    return annotation


def export_rttm(out: Path, to: Path, split: str | None = None) -> dict:
    out, to = Path(out), Path(to)
    to.mkdir(parents=True, exist_ok=True)
    files, lines, renamed = [], 0, {}
    for rec in export_recordings(open_run(out), split):
        annotation = speech_annotation(rec)
        renamed.update({s: rttm_name(s) for s in (rec.recording_id, *rec.speakers) if rttm_name(s) != s})
        rttm = to / f"{rec.recording_id}.rttm"
        with atomic_path(rttm) as tmp, open(tmp, "w") as handle:
            annotation.write_rttm(handle)
        with atomic_path(rttm.with_suffix(".uem")) as tmp, open(tmp, "w") as handle:
            Timeline([Segment(0.0, rec.duration)], uri=annotation.uri).write_uem(handle)
        files.append(str(rttm))
        lines += len(annotation)
    return {"exported": len(files), "speaker_lines": lines, "renamed": renamed, "files": files}
