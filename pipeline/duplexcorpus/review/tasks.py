"""Review tasks from a finished run: a window of audio (all channels) per task, the reasons it was
sent, and the pipeline's regions and transcripts as a Label Studio prediction (its `score` is the
confidence 1 - risk, so Label Studio's uncertainty sampling and its score column sort riskiest first)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import soundfile as sf

from duplexcorpus.audio import read_window
from duplexcorpus.config import Workflow
from duplexcorpus.review.labeling import speaker_label
from duplexcorpus.review.routing import Window, choose_windows, plain_reasons
from duplexcorpus.runfolder import RunFolder
from duplexcorpus.stages.tracks import TracksStage
from duplexcorpus.text import join_text

EVENT_LABEL = {"backchannel": "Backchannel", "interruption": "Interruption", "crosstalk": "Crosstalk",
               "overlap": "Overlap", "laughter": "Laughter", "noise": "Noise"}


def document_root(out: Path) -> Path:
    """The folder Label Studio serves local files from (LOCAL_FILES_DOCUMENT_ROOT on the server)."""
    return Path(os.environ.get("DUPLEXCORPUS_LS_DOCUMENT_ROOT", Path(out).resolve().parent)).resolve()


NONVERBAL = ("laughter", "breath", "cough", "sigh")


def risky_windows(out: Path, workflow: Workflow) -> list[Window]:
    run = RunFolder(out)
    recs, segs, events = run.frame("recordings"), run.frame("segments"), run.frame("events")
    risky = []
    for seg in segs[segs.source != "human"].itertuples():
        attrs = json.loads(seg.attributes)
        risky.append((seg.recording_id, seg.segment_id, seg.start, seg.end, float(attrs.get("risk", 0.0)),
                      attrs.get("risk_reasons", {})))
    # a non-verbal event the model was unsure of is risky by itself (it may lie outside every IPU)
    for ev in events[events.type.isin(NONVERBAL) & (events.source != "human")].itertuples():
        if json.loads(ev.attributes).get("uncertain"):
            risky.append((ev.recording_id, ev.event_id, ev.start, ev.end, workflow.review.w_nonverbal_uncertain,
                          {"nonverbal_uncertain": 1.0}))
    return choose_windows(risky, dict(zip(recs.recording_id, recs.duration)), workflow.review)


def words_in_window(words: pd.DataFrame, start: float, end: float) -> pd.DataFrame:
    """The words whose midpoint lies in [start, end): those a reviewed window replaces."""
    mid = (words.start + words.end) / 2
    return words[(mid >= start) & (mid < end)].sort_values("start")


def _region(rid: str, start: float, end: float, channel: int, labels: list[str], dur: float) -> dict:
    return {"id": rid, "from_name": "label", "to_name": "audio", "type": "labels", "original_length": dur,
            "value": {"start": round(start, 3), "end": round(end, 3), "channel": channel, "labels": labels}}


def build_tasks(out: Path, workflow: Workflow, windows: list[Window]) -> list[dict]:
    out = Path(out)
    run = RunFolder(out)
    recs = run.frame("recordings").set_index("recording_id")
    segs, words, events = run.frame("segments"), run.frame("words"), run.frame("events")
    audio_dir = out / "review" / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    root = document_root(out)
    tasks = []
    for w in windows:
        rec = recs.loc[w.recording_id]
        wav = audio_dir / f"{w.key}.wav"
        if not wav.exists():  # the same window always has the same audio
            audio, sr = read_window(str(run.path(w.recording_id, TracksStage.AUDIO)), w.start, w.end)
            sf.write(wav, audio.T, sr, subtype="PCM_16")
        dur = w.end - w.start
        result = []
        inside = segs[(segs.recording_id == w.recording_id) & ((segs.start + segs.end) / 2 >= w.start)
                      & ((segs.start + segs.end) / 2 < w.end)]
        ev = events[(events.recording_id == w.recording_id) & (events.start < w.end) & (events.end > w.start)]
        for k, seg in enumerate(inside.itertuples()):
            labels = [speaker_label(seg.channel)]
            for e in ev[(ev.channel == seg.channel) & ev.type.isin(["backchannel", "interruption"])].itertuples():
                if min(e.end, seg.end) - max(e.start, seg.start) > 0.5 * (seg.end - seg.start):
                    labels.append(EVENT_LABEL[e.type])
            rid = f"s{k}"
            s, e_ = max(seg.start, w.start) - w.start, min(seg.end, w.end) - w.start
            result.append(_region(rid, s, e_, seg.channel, labels, dur))
            text = json.loads(seg.attributes).get("text", "")
            if seg.start < w.start or seg.end > w.end:  # cut by the window: the words that the merge replaces
                text = join_text(list(words_in_window(words[words.segment_id == seg.segment_id], w.start, w.end).word))
            result.append({"id": rid, "from_name": "transcript", "to_name": "audio", "type": "textarea",
                           "original_length": dur, "value": {"start": round(s, 3), "end": round(e_, 3), "text": [text]}})
        # laughs: the Laughter label on the same speaker's region it covers most, else a region of its own
        laughs = ev[(ev.type == "laughter") & (ev.source != "human")]
        for e in laughs.itertuples():
            same = [r for r in result if r["type"] == "labels" and r["value"]["channel"] == e.channel
                    and r["value"]["labels"][0] == speaker_label(int(e.channel))]
            s, e_ = max(e.start, w.start) - w.start, min(e.end, w.end) - w.start
            cover = [(min(e_, r["value"]["end"]) - max(s, r["value"]["start"]), r) for r in same]
            best = max(cover, key=lambda x: x[0], default=(0.0, None))
            if best[1] is not None and best[0] > 0:
                if "Laughter" not in best[1]["value"]["labels"]:
                    best[1]["value"]["labels"].append("Laughter")
            else:
                result.append(_region(f"l{e.Index}", s, e_, int(e.channel), [speaker_label(int(e.channel)), "Laughter"], dur))
        for k, e in enumerate(ev[ev.type.isin(["crosstalk", "overlap"])].itertuples()):
            s, e_ = max(e.start, w.start) - w.start, min(e.end, w.end) - w.start
            result.append(_region(f"e{k}", s, e_, 0, [EVENT_LABEL[e.type]], dur))
        channels = json.loads(rec.channels) if isinstance(rec.channels, str) else list(rec.channels)
        speakers = ", ".join(f"{speaker_label(c['channel'])[-1]} = {c['speaker_id']}" for c in channels)
        tasks.append({
            "data": {"audio": "/data/local-files/?d=" + quote(str(wav.resolve().relative_to(root))),
                     "reasons": plain_reasons(w.reasons), "reason_codes": list(w.reasons),
                     "speakers": f"channels: {speakers}",
                     "task_key": w.key, "recording_id": w.recording_id, "window_start": w.start,
                     "window_end": w.end, "num_channels": int(rec.num_channels), "risk": w.score},
            # Label Studio reads a prediction's score as the model's confidence and its uncertainty
            # sampling serves the lowest score first: so the score is 1 - risk, the riskiest first
            "predictions": [{"model_version": workflow.review.model_version, "score": round(1.0 - w.score, 6),
                             "result": result}],
        })
    return tasks
