"""The Label Studio side of review, through label-studio-sdk 2.x.

Connection: `DUPLEXCORPUS_LS_URL` (default http://127.0.0.1:8080) and `DUPLEXCORPUS_LS_TOKEN`
(or `LABEL_STUDIO_API_KEY`) from the environment; `review serve` stores a generated token in
`~/.config/duplexcorpus/labelstudio.env` (mode 0600), read as a fallback. The token is never logged
or written to outputs: errors are re-raised as `ReviewError` with the URL and status only.

Push is idempotent: tasks carry a `task_key` (recording + window); a key already in the project is
never imported again, and a task with annotations is never touched. OUT/review/state.json remembers
the project and task ids, so a project changed by hand (label config) or tasks deleted by hand are
detected and reported.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from duplexcorpus.storage import write_json

TOKEN_FILE = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "duplexcorpus" / "labelstudio.env"


class ReviewError(RuntimeError):
    """Label Studio is unreachable, refused a request, or the project is not what we made."""


def connection() -> tuple[str, str]:
    url = os.environ.get("DUPLEXCORPUS_LS_URL", "http://127.0.0.1:8080").rstrip("/")
    token = os.environ.get("DUPLEXCORPUS_LS_TOKEN") or os.environ.get("LABEL_STUDIO_API_KEY")
    if not token and TOKEN_FILE.exists():
        for line in TOKEN_FILE.read_text().splitlines():
            if line.startswith("DUPLEXCORPUS_LS_TOKEN="):
                token = line.split("=", 1)[1].strip()
    if not token:
        raise ReviewError("no Label Studio token: set DUPLEXCORPUS_LS_TOKEN (and DUPLEXCORPUS_LS_URL), "
                          "or start the embedded server with `duplexcorpus review serve`")
    return url, token


def _explain(err: Exception, url: str, doing: str) -> ReviewError:
    status = getattr(err, "status_code", None)
    kind = f"HTTP {status}" if status else type(err).__name__
    hint = " (is the server running? `duplexcorpus review serve`)" if not status else ""
    return ReviewError(f"Label Studio at {url} failed while {doing}: {kind}{hint}")


@dataclass
class PushReport:
    project_id: int
    created: int = 0
    unchanged: int = 0
    annotated_kept: int = 0
    deleted_by_hand: list[str] = field(default_factory=list)
    config_changed_by_hand: bool = False


class LabelStudioBridge:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 60.0):
        from label_studio_sdk import LabelStudio

        if url is None or token is None:
            url, token = connection()
        self.url = url
        self.client = LabelStudio(base_url=url, api_key=token, timeout=timeout)

    def _call(self, doing: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - httpx/SDK errors carry the request; we never echo it
            raise _explain(err, self.url, doing) from None

    # -- project -------------------------------------------------------------------------------
    def ensure_project(self, state_path: Path, title: str, config: str, instructions: str,
                       storage_path: Path, model_version: str | None = None) -> tuple[int, bool]:
        """The project from state.json if it still exists, else a new one. Returns (id, changed):
        `changed` = its labeling config is no longer ours (edited by hand; reported, not undone)."""
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
        if state.get("url") == self.url and state.get("project_id"):
            try:
                project = self.client.projects.get(id=state["project_id"])
                return project.id, (project.label_config or "").strip() != config.strip()
            except Exception as err:  # noqa: BLE001
                if getattr(err, "status_code", None) != 404:
                    raise _explain(err, self.url, "reading the project") from None
        # The labeling stream ("Label All Tasks") opens each task pre-annotated with the prediction whose
        # model_version is the project's, and uncertainty sampling serves the lowest prediction score
        # (our 1 - risk) first: annotators get the riskiest window first.
        extra = {"model_version": model_version} if model_version else {}
        project = self._call("creating the project", self.client.projects.create, title=title, label_config=config,
                             expert_instruction=instructions, show_instruction=True,
                             show_collab_predictions=True, sampling="Uncertainty sampling", **extra)
        self._call("connecting local file storage", self.client.import_storage.local.create, project=project.id,
                   path=str(storage_path), title="duplexcorpus audio windows", use_blob_urls=False)
        write_json(state_path, {"url": self.url, "project_id": project.id, "tasks": {}})
        return project.id, False

    def tasks(self, project_id: int) -> list[dict]:
        pager = self._call("listing tasks", self.client.tasks.list, project=project_id, fields="all", page_size=500)
        out = []
        for task in pager:
            d = task.dict() if hasattr(task, "dict") else dict(task)
            out.append(d)
        return out

    # -- push / export -------------------------------------------------------------------------
    def push(self, state_path: Path, project_id: int, tasks: list[dict], chunk: int = 500) -> PushReport:
        state = json.loads(state_path.read_text())
        report = PushReport(project_id)
        existing = {}
        for t in self.tasks(project_id):
            key = (t.get("data") or {}).get("task_key")
            if key:
                existing[key] = t
        known = state.get("tasks", {})
        report.deleted_by_hand = sorted(k for k in known if k not in existing)
        new = []
        for task in tasks:
            key = task["data"]["task_key"]
            if key in existing:
                if existing[key].get("total_annotations") or existing[key].get("annotations"):
                    report.annotated_kept += 1
                else:
                    report.unchanged += 1
            else:
                new.append(task)
        for i in range(0, len(new), chunk):
            part = new[i: i + chunk]
            res = self._call("importing tasks", self.client.projects.import_tasks, id=project_id, request=part,
                             return_task_ids=True)
            ids = getattr(res, "task_ids", None) or []
            for task, tid in zip(part, ids):
                known[task["data"]["task_key"]] = tid
            report.created += len(part)
        for key, t in existing.items():
            known[key] = t["id"]
        for key in report.deleted_by_hand:
            if key not in existing and not any(t["data"]["task_key"] == key for t in new):
                known.pop(key, None)
        state["tasks"] = known
        write_json(state_path, state)
        return report

    def export(self, project_id: int) -> list[dict]:
        chunks = self._call("exporting annotations", self.client.projects.exports.download_sync, id=project_id,
                            export_type="JSON", download_all_tasks=False)
        try:
            return json.loads(b"".join(chunks))
        except Exception as err:  # noqa: BLE001 - a streaming error surfaces while reading
            raise _explain(err, self.url, "exporting annotations") from None
