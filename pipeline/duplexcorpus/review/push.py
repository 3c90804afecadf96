"""`review push` and `review pull`: the two halves of a review round, for one run folder."""
from __future__ import annotations

import json
import time
from pathlib import Path

from duplexcorpus.config import Workflow
from duplexcorpus.review.labeling import labeling_config
from duplexcorpus.review.labelstudio import LabelStudioBridge
from duplexcorpus.review.merge import merge_export
from duplexcorpus.review.realign import realign_windows
from duplexcorpus.resources import read_text
from duplexcorpus.runfolder import RunFolder
from duplexcorpus.review.tasks import build_tasks, document_root, risky_windows

def _workflow(out: Path) -> Workflow:
    return RunFolder(out).workflow


def _instructions() -> str:
    """The annotator instructions, English then Chinese, as the HTML Label Studio shows."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark")
    return "<hr>".join(md.render(read_text("annotation_ui", f"instructions.{lang}.md"))
                       for lang in ("en", "zh"))


def push(out: Path, bridge: LabelStudioBridge) -> dict:
    t0 = time.perf_counter()
    wf = _workflow(out)
    windows = risky_windows(out, wf)
    tasks = build_tasks(out, wf, windows)
    channels = max([t["data"]["num_channels"] for t in tasks] or [2])
    state = out / "review" / "state.json"
    audio_dir = (out / "review" / "audio").resolve()
    audio_dir.mkdir(parents=True, exist_ok=True)
    project_id, changed = bridge.ensure_project(state, wf.review.project_title, labeling_config(channels),
                                                _instructions(), audio_dir, wf.review.model_version)
    report = bridge.push(state, project_id, tasks)
    return {"project_id": project_id, "url": f"{bridge.url}/projects/{project_id}", "tasks": len(tasks),
            "created": report.created, "unchanged": report.unchanged, "annotated_kept": report.annotated_kept,
            "deleted_by_hand": report.deleted_by_hand, "config_changed_by_hand": changed,
            "audio_minutes": round(sum(w.end - w.start for w in windows) / 60, 2),
            "document_root": str(document_root(out)), "seconds": round(time.perf_counter() - t0, 2)}


def pull(out: Path, bridge: LabelStudioBridge, reshard: bool = True) -> dict:
    t0 = time.perf_counter()
    state = json.loads((out / "review" / "state.json").read_text())
    exported = bridge.export(state["project_id"])
    wf = RunFolder(out).workflow
    report = merge_export(out, exported, align=lambda merged: realign_windows(out, wf, merged))
    if reshard and report["windows_merged"]:
        from duplexcorpus.runner import rebuild

        rebuild(out)
        report["resharded"] = True
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report
