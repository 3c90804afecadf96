"""Export a finished run in the layout Kyutai's moshi-finetune trains on.

    DIR/manifest.jsonl             {"path": "audio/<id>.wav", "duration": seconds} per conversation
    DIR/audio/<id>.wav             stereo, 24 kHz PCM16: left = the assistant (Moshi), right = the user
    DIR/audio/<id>.json            {"alignments": [[word, [start, end], "SPEAKER_MAIN"|"SPEAKER_OTHER"], ...]}

Alignments are sorted by start (moshi-finetune binary-searches them). Only two-channel recordings
fit the layout; the others are listed in DIR/skipped.json with the reason. Audio is copied in
blocks, so a 2-hour call never sits in memory.
"""
from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf

from duplexcorpus.exports.corpus import ExportRecording, export_recordings, open_run
from duplexcorpus.storage import atomic_path, write_json

SPEAKERS = ("SPEAKER_MAIN", "SPEAKER_OTHER")


def skip_reason(rec: ExportRecording) -> str | None:
    """Why a recording does not fit moshi's layout (one assistant and one user stream), else None."""
    if rec.num_channels != 2:
        return f"{rec.num_channels} channel(s); the moshi layout is one assistant and one user channel"
    if rec.shared_channels:  # the model hears each party on its own stream
        shared = "; ".join(f"channel {c}: {', '.join(spk)}" for c, spk in sorted(rec.shared_channels.items()))
        return f"speakers share a channel ({shared}); the moshi layout needs one speaker per channel"
    if rec.audio is None:
        return "its audio is no longer in the run folder (outputs.json)"
    return None


def export_moshi(out: Path, to: Path, assistant_channel: int = 0, split: str | None = None) -> dict:
    if assistant_channel not in (0, 1):
        raise ValueError(f"assistant channel must be 0 or 1, not {assistant_channel}")
    out, to = Path(out), Path(to)
    (to / "audio").mkdir(parents=True, exist_ok=True)
    lines, skipped = [], []
    for rec in export_recordings(open_run(out), split):
        rid = rec.recording_id
        reason = skip_reason(rec)
        if reason is not None:
            skipped.append({"recording_id": rid, "reason": reason})
            continue
        order = [assistant_channel, 1 - assistant_channel]
        wav = to / "audio" / f"{rid}.wav"
        with sf.SoundFile(rec.audio) as src, atomic_path(wav) as tmp:
            with sf.SoundFile(tmp, "w", samplerate=src.samplerate, channels=2, subtype="PCM_16", format="WAV") as dst:
                for block in src.blocks(blocksize=src.samplerate * 30, dtype="float32", always_2d=True):
                    dst.write(block[:, order])
            duration = src.frames / src.samplerate
        rows = rec.words.sort_values(["start", "channel"], kind="stable")
        alignments = [[w.word, [round(float(w.start), 3), round(float(w.end), 3)],
                       SPEAKERS[0] if w.channel == assistant_channel else SPEAKERS[1]] for w in rows.itertuples()]
        write_json(wav.with_suffix(".json"), {"alignments": alignments})
        lines.append({"path": f"audio/{rid}.wav", "duration": round(duration, 3)})
    with atomic_path(to / "manifest.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(line) + "\n" for line in lines))
    write_json(to / "skipped.json", skipped)
    return {"exported": len(lines), "skipped": len(skipped), "manifest": str(to / "manifest.jsonl")}
