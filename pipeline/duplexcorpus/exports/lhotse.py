"""Export a finished run as lhotse manifests (k2/icefall, NeMo through lhotse, any lhotse dataloader).

    DIR/duplexcorpus_recordings_<split>.jsonl.gz     a RecordingSet: one multi-channel Recording per
                                                      conversation (the run's FLAC, channel i = table channel i)
    DIR/duplexcorpus_supervisions_<split>.jsonl.gz   a SupervisionSet: one supervision per IPU with its
                                                      channel, speaker, language, text, gender and word
                                                      alignment (alignment["word"], recording time)
    DIR/skipped.json                                  recordings left out, with the reason

The file names follow lhotse's recipe convention, so `lhotse.recipes.utils.read_manifests_if_cached(
["train"], DIR, prefix="duplexcorpus")` finds them; they are written line by line (lhotse's sequential
writer) and read lazily (`load_manifest_lazy`), so a 100-hour corpus never sits in memory. The audio
stays where the run wrote it unless `copy_audio` puts a copy in DIR/audio/; the manifests hold
absolute paths either way. `CutSet.from_manifests(recordings, supervisions)` gives one MultiCut per
conversation (MonoCut for a mono call); `cut.to_mono()` / per-channel supervisions give ASR-style cuts.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.supervision import AlignmentItem

from duplexcorpus.exports.corpus import ExportRecording, export_recordings, open_run
from duplexcorpus.storage import atomic_path, write_json

PREFIX = "duplexcorpus"


def manifest_name(kind: str, split: str) -> str:
    """lhotse's recipe naming: <prefix>_<recordings|supervisions>_<part>.jsonl.gz."""
    return f"{PREFIX}_{kind}_{split}.jsonl.gz"


def supervisions(rec: ExportRecording, duration: float) -> list[SupervisionSegment]:
    """One supervision per IPU. Word alignment items are in recording time, like the supervision's own
    start (lhotse's convention: its docs' phone alignment of a supervision at 33 s starts at 33.0)."""
    out = []
    for seg in rec.segments.itertuples():
        end = min(float(seg.end), duration)  # a rounded IPU end may pass the last sample
        if end <= seg.start:
            continue
        meta = rec.speaker_metadata(seg.speaker_id)
        words = rec.words_by_segment.get(seg.segment_id)
        items = [] if words is None else [
            AlignmentItem(symbol=w.word, start=round(float(w.start), 4),
                          duration=round(max(0.0, min(float(w.end), duration) - float(w.start)), 4),
                          score=round(float(w.score), 4))
            for w in words.itertuples()]
        custom = {k: v for k, v in {"age_group": meta.get("age_group"), "accent": meta.get("accent"),
                                    "source": seg.source, "vad_confidence": round(float(seg.confidence), 4),
                                    "confidence_bucket": seg.confidence_bucket}.items() if v is not None}
        out.append(SupervisionSegment(
            id=seg.segment_id, recording_id=rec.recording_id, start=round(float(seg.start), 4),
            duration=round(end - float(seg.start), 4), channel=int(seg.channel), text=seg.text,
            language=seg.language or rec.channel_language(int(seg.channel)), speaker=seg.speaker_id,
            gender=meta.get("gender"), custom=custom, alignment={"word": items}))
    return out


class _SplitWriters:
    """One lhotse sequential writer per (manifest, split); each file appears under its name only when
    the whole export succeeded, so a stopped export never leaves a manifest that looks complete."""

    def __init__(self, to: Path):
        self.to = to
        self.open: dict[tuple[str, str], tuple[object, Path, Path]] = {}

    def write(self, kind: str, split: str, item) -> None:
        if (kind, split) not in self.open:
            final = self.to / manifest_name(kind, split)
            # the writer picks its format from the name, so the partial file keeps the .jsonl.gz ending
            partial = self.to / f".partial-{os.getpid()}-{final.name}"
            manifest = RecordingSet if kind == "recordings" else SupervisionSet
            self.open[(kind, split)] = (manifest.open_writer(partial), partial, final)
        self.open[(kind, split)][0].write(item)

    def finish(self) -> list[Path]:
        for writer, partial, final in self.open.values():
            writer.close()
            os.replace(partial, final)
        return [final for _, _, final in self.open.values()]

    def abandon(self) -> None:
        for writer, partial, _ in self.open.values():
            writer.close()
            partial.unlink(missing_ok=True)


def export_lhotse(out: Path, to: Path, split: str | None = None, copy_audio: bool = False) -> dict:
    out, to = Path(out), Path(to)
    to.mkdir(parents=True, exist_ok=True)
    skipped, counts = [], {"recordings": 0, "supervisions": 0, "words": 0}
    writers = _SplitWriters(to)
    try:
        for rec in export_recordings(open_run(out), split):
            if rec.audio is None:
                skipped.append({"recording_id": rec.recording_id,
                                "reason": "its audio is no longer in the run folder (outputs.json)"})
                continue
            audio = rec.audio
            if copy_audio:
                audio = to / "audio" / f"{rec.recording_id}{rec.audio.suffix}"
                audio.parent.mkdir(exist_ok=True)
                with atomic_path(audio) as tmp:
                    shutil.copyfile(rec.audio, tmp)
            try:
                recording = Recording.from_file(audio.resolve(), recording_id=rec.recording_id)
            except Exception as err:  # noqa: BLE001 - a damaged file is reported, the others still export
                skipped.append({"recording_id": rec.recording_id, "reason": f"its audio cannot be read: {err}"})
                continue
            if recording.num_channels != rec.num_channels:
                skipped.append({"recording_id": rec.recording_id, "reason": f"its audio has {recording.num_channels} "
                                f"channel(s), the recordings table says {rec.num_channels}"})
                continue
            sups = supervisions(rec, recording.duration)
            writers.write("recordings", rec.split, recording)
            for sup in sups:
                writers.write("supervisions", rec.split, sup)
            counts["recordings"] += 1
            counts["supervisions"] += len(sups)
            counts["words"] += sum(len(s.alignment["word"]) for s in sups)
    except BaseException:
        writers.abandon()
        raise
    manifests = writers.finish()
    write_json(to / "skipped.json", skipped)
    return {**counts, "skipped": len(skipped), "manifests": [str(p) for p in manifests]}
