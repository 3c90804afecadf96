"""Pull: completed annotations -> validated human segments, words and events per reviewed window,
with agreement between annotators and an audit of every change.

Validation (a failing annotation is rejected with its reasons and never merged): regions inside
the window; known labels; exactly one speaker label on a speech region (event labels that need a
speaker must sit on one), the speaker a channel of the recording; transcripts valid text (no
control characters, no replacement characters); a verdict. Two or more valid annotations of one
window are compared (region boundaries; transcript CER); if they disagree, the window is flagged
and not merged: nobody's version is picked silently.
"""
from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from duplexcorpus.review.labeling import CHANNEL_FREE, EVENT_LABELS, VERDICTS, channel_of
from duplexcorpus.runfolder import RunFolder
from duplexcorpus.storage import write_json
from duplexcorpus.text import error_rate, is_cjk, units

EVENT_TYPE = {"Backchannel": "backchannel", "Interruption": "interruption", "Laughter": "laughter",
              "Filler": "filler", "Noise": "noise", "Overlap": "overlap", "Crosstalk": "crosstalk"}
AGREE_BOUNDARY = 0.25  # s: matched regions whose edges differ more than this disagree
AGREE_CER = 0.15


@dataclass
class Region:
    start: float
    end: float
    labels: list[str]
    text: str | None = None

    @property
    def channel(self) -> int | None:
        chans = [c for c in (channel_of(label) for label in self.labels) if c is not None]
        return chans[0] if len(chans) == 1 else None


@dataclass
class Parsed:
    annotation_id: int
    annotator: str
    created_at: str
    verdict: str | None
    regions: list[Region] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _bad_text(text: str) -> str | None:
    if "\ufffd" in text:
        return "contains U+FFFD (a broken encoding)"
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in text):
        return "contains control characters"
    return None


def parse_annotation(ann: dict, window: float, channels: int) -> Parsed:
    by_id: dict[str, dict] = {}
    verdict = None
    for item in ann.get("result", []):
        if item.get("from_name") == "verdict":
            verdict = (item.get("value", {}).get("choices") or [None])[0]
            continue
        if item.get("from_name") in ("label", "transcript"):
            by_id.setdefault(item.get("id"), {})[item["from_name"]] = item
    who = ann.get("completed_by")
    who = who.get("email") if isinstance(who, dict) else who
    p = Parsed(ann.get("id"), str(who), ann.get("created_at") or ann.get("updated_at") or "", verdict)
    if verdict not in VERDICTS:
        p.problems.append(f"verdict {verdict!r} is not one of {list(VERDICTS)}")
    known = {f"Speech_{chr(65 + c)}" for c in range(channels)} | set(EVENT_LABELS)
    for rid, parts in by_id.items():
        if "label" not in parts:
            p.problems.append(f"region {rid}: a transcript without a labelled region")
            continue
        v = parts["label"]["value"]
        labels = list(v.get("labels") or [])
        text = None
        if "transcript" in parts:
            text = " ".join(parts["transcript"]["value"].get("text") or []).strip()
        try:
            start, end = float(v["start"]), float(v["end"])
        except (KeyError, TypeError, ValueError):
            p.problems.append(f"region {rid}: no numeric start/end")
            continue
        region = Region(start, end, labels, text)
        where = f"region {rid} [{start:.2f}-{end:.2f} s]"
        if not (0 <= start < end <= window + 0.05):
            p.problems.append(f"{where}: outside the window 0-{window:.2f} s or empty")
        unknown = [label for label in labels if label not in known]
        if unknown or not labels:
            p.problems.append(f"{where}: unknown label(s) {unknown or '(none)'}; known: {sorted(known)}")
        speakers = [label for label in labels if label.startswith("Speech_")]
        needs_speaker = [label for label in labels if label in EVENT_LABELS and label not in CHANNEL_FREE]
        if len(speakers) > 1:
            p.problems.append(f"{where}: two speaker labels {speakers} on one region")
        if needs_speaker and not speakers:
            p.problems.append(f"{where}: {needs_speaker} needs a speaker label (Speech_A/Speech_B)")
        if text and (why := _bad_text(text)):
            p.problems.append(f"{where}: transcript {why}")
        p.regions.append(region)
    return p


def agreement(a: Parsed, b: Parsed) -> dict:
    """Regions matched by speaker and overlap: mean boundary difference and transcript CER."""
    diffs, cers, unmatched = [], [], 0
    used = set()
    for r in a.regions:
        best, overlap = None, 0.0
        for k, s in enumerate(b.regions):
            ov = min(r.end, s.end) - max(r.start, s.start)
            if k not in used and s.channel == r.channel and ov > overlap:
                best, overlap = k, ov
        if best is None:
            unmatched += 1
            continue
        used.add(best)
        s = b.regions[best]
        diffs += [abs(r.start - s.start), abs(r.end - s.end)]
        if r.text or s.text:
            cers.append(error_rate(r.text or "", s.text or "")["rate"])
    unmatched += len(b.regions) - len(used)
    result = {"boundary_mean_s": round(float(np.mean(diffs)), 3) if diffs else None,
              "cer_mean": round(float(np.mean(cers)), 3) if cers else None, "unmatched_regions": unmatched}
    result["agree"] = (unmatched == 0 and (not diffs or max(diffs) <= AGREE_BOUNDARY)
                       and (not cers or max(cers) <= AGREE_CER))
    return result


def human_items(p: Parsed, data: dict, speakers: dict[int, str]) -> dict:
    """Segments / words / events (recording time, source=human) of one accepted annotation."""
    rid, w0 = data["recording_id"], float(data["window_start"])
    who = {"annotator": p.annotator, "annotated_at": p.created_at, "annotation_id": p.annotation_id,
           "task_key": data["task_key"], "verdict": p.verdict}
    segs, words, events = [], [], []
    if p.verdict != "reject":  # reject: the window's audio is unusable; nothing is kept there
        for r in sorted(p.regions, key=lambda r: r.start):
            start, end = round(w0 + r.start, 3), round(w0 + r.end, 3)
            ch = r.channel
            if ch is not None and any(label.startswith("Speech_") for label in r.labels):
                segs.append(dict(recording_id=rid, channel=ch, speaker_id=speakers.get(ch, f"ch{ch}"), start=start,
                                 end=end, confidence=1.0, source="human", crosstalk_suppressed=0.0,
                                 attributes={**who, "text": r.text or "", "words": len(units(r.text or ""))}))
                toks = units(r.text or "")
                for k, tok in enumerate(toks):  # humans give text, not times: spread evenly (realign.py times them)
                    a = start + (end - start) * k / len(toks)
                    b = start + (end - start) * (k + 1) / len(toks)
                    words.append(dict(channel=ch, language="zh" if is_cjk(tok[0]) else "en",
                                      source="human", word=tok, start=round(a, 3), end=round(b, 3), score=1.0,
                                      interpolated=True, segment_start=start))
            for label in r.labels:
                if label in EVENT_TYPE:
                    events.append(dict(recording_id=rid, type=EVENT_TYPE[label],
                                       channel=None if label in CHANNEL_FREE and ch is None else ch,
                                       start=start, end=end, confidence=1.0, source="human", attributes=dict(who)))
    return {"task_key": data["task_key"], "window": [w0, float(data["window_end"])], "verdict": p.verdict,
            "annotator": p.annotator, "annotated_at": p.created_at, "segments": segs, "words": words, "events": events}


def merge_export(out: Path, exported: list[dict], align=None) -> dict:
    """Write OUT/review/human/<recording>.json, audit.parquet, rejected.json, disagreements.json.
    `align(merged) -> report`, when given, times the human words of the merged windows in place
    (realign.realign_windows) before anything is written."""
    out = Path(out)
    run = RunFolder(out)
    recs = run.frame("recordings").set_index("recording_id")
    segs, words_t, events_t = run.frame("segments"), run.frame("words"), run.frame("events")
    human_dir = out / "review" / "human"
    human_dir.mkdir(parents=True, exist_ok=True)
    rejected, disagreements, audit, merged = [], [], [], {}
    for task in exported:
        data = task.get("data", {})
        rid = data.get("recording_id")
        if rid not in recs.index:
            rejected.append({"task": task.get("id"), "reasons": [f"unknown recording {rid!r}"]})
            continue
        rec = recs.loc[rid]
        window = float(data["window_end"]) - float(data["window_start"])
        parsed = [parse_annotation(a, window, int(rec.num_channels)) for a in task.get("annotations", [])
                  if not a.get("was_cancelled")]
        good = []
        for p in parsed:
            if p.problems:
                rejected.append({"task": task.get("id"), "task_key": data.get("task_key"), "annotation": p.annotation_id,
                                 "annotator": p.annotator, "reasons": p.problems})
            else:
                good.append(p)
        if not good:
            continue
        if len(good) > 1:
            pairs = [agreement(good[0], g) for g in good[1:]]
            if not all(x["agree"] for x in pairs):
                disagreements.append({"task_key": data["task_key"], "annotations": [g.annotation_id for g in good],
                                      "annotators": [g.annotator for g in good], "agreement": pairs})
                continue
        channels = json.loads(rec.channels) if isinstance(rec.channels, str) else list(rec.channels)
        items = human_items(good[-1], data, {c["channel"]: c["speaker_id"] for c in channels})
        items["agreement"] = [agreement(good[0], g) for g in good[1:]]
        merged.setdefault(rid, []).append(items)
    report = align(merged) if align is not None and merged else {}
    for rid, windows in merged.items():
        for items in windows:
            w0, w1 = items["window"]
            mid_in = lambda f: f[(f.recording_id == rid) & ((f.start + f.end) / 2 >= w0) & ((f.start + f.end) / 2 < w1)]  # noqa: E731
            who = dict(task_key=items["task_key"], recording_id=rid, annotator=items["annotator"],
                       annotated_at=items["annotated_at"])
            for kind, before, after in (("segment", mid_in(segs), items["segments"]),
                                        ("word", mid_in(words_t), items["words"]),
                                        ("event", mid_in(events_t[events_t.source != "human"]), items["events"])):
                for row in before.to_dict("records"):
                    audit.append(dict(who, kind=kind, action="removed", after=None,
                                      before=json.dumps(row, default=str, ensure_ascii=False)))
                for row in after:
                    audit.append(dict(who, kind=kind, action="added", before=None,
                                      after=json.dumps(row, default=str, ensure_ascii=False)))
    for rid, windows in merged.items():  # later pulls replace the same windows, keep the others
        path = human_dir / f"{rid}.json"
        previous = json.loads(path.read_text())["windows"] if path.exists() else []
        keys = {w["task_key"] for w in windows}
        write_json(path, {"recording_id": rid, "windows": [w for w in previous if w["task_key"] not in keys] + windows})
    if audit:
        audit_path = out / "review" / "audit.parquet"
        frame = pd.DataFrame(audit)
        if audit_path.exists():
            old = pd.read_parquet(audit_path)
            frame = pd.concat([old[~old.task_key.isin(frame.task_key)], frame], ignore_index=True)
        frame.to_parquet(audit_path)
    write_json(out / "review" / "rejected.json", rejected)
    write_json(out / "review" / "disagreements.json", disagreements)
    return {"windows_merged": sum(len(v) for v in merged.values()), "rejected_annotations": len(rejected),
            "disagreements": len(disagreements), "changes": len(audit), **report}
