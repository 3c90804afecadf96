"""Atomic writes and the per-recording, per-stage cache that makes runs resumable.

A stage's output for one recording lives in `OUT/cache/<stage>/<recording_id>/<key>/` where `key`
hashes the recording's content (sha256), the stage's version, its config and its inputs' keys. A
directory appears only once complete (written to a temp sibling, then renamed), so a run killed at
any moment leaves either a finished output or nothing; re-running reuses finished outputs.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping


def stable_hash(*parts: Any, length: int = 16) -> str:
    """A short hash of JSON-serialisable parts, stable across processes and machines."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path next to `path`; move it into place only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=1))


class StageCache:
    """Finished stage outputs, one directory per (stage, recording, key)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def dir_for(self, stage: str, recording_id: str, key: str) -> Path:
        return self.root / stage / recording_id / key

    def is_done(self, stage: str, recording_id: str, key: str) -> bool:
        return (self.dir_for(stage, recording_id, key) / "_SUCCESS").exists()

    def begin(self, stage: str, recording_id: str, key: str) -> Path:
        """A fresh temp directory next to where the output will live."""
        final = self.dir_for(stage, recording_id, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))

    def commit(self, tmp: Path, stage: str, recording_id: str, key: str, manifest: Mapping[str, Any]) -> Path:
        """Make a finished temp directory the cached output (atomic rename)."""
        final = self.dir_for(stage, recording_id, key)
        (tmp / "_SUCCESS").write_text(json.dumps(dict(manifest), sort_keys=True, default=str))
        if final.exists():  # an earlier, killed attempt left a dir without _SUCCESS, or a twin finished
            if (final / "_SUCCESS").exists():
                shutil.rmtree(tmp, ignore_errors=True)
                return final
            shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        return final

    @staticmethod
    def abort(tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)

    def remove_partial(self) -> int:
        """Delete temp dirs a killed run left behind (call before a run starts; they are never reused)."""
        stale = list(self.root.glob("*/*/.*")) if self.root.exists() else []
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
        return len(stale)


def write_stage_outputs(out: Path, outputs: dict[str, dict[str, str]]) -> None:
    """OUT/outputs.json: recording -> stage -> its finished cache folder, relative to OUT (so a
    run folder can be moved or copied and still be read)."""
    out = Path(out)
    rel = {rid: {stage: os.path.relpath(path, out) for stage, path in stages.items()} for rid, stages in outputs.items()}
    write_json(out / "outputs.json", rel)


def stage_outputs(out: Path) -> dict[str, dict[str, Path]]:
    """OUT/outputs.json read back as absolute folders under this OUT. Runs written before the paths
    were relative hold absolute ones: those are found again under OUT/cache/<stage>/<recording>/."""
    out = Path(out)
    found = {}
    for rid, stages in json.loads((out / "outputs.json").read_text()).items():
        found[rid] = {}
        for stage, path in stages.items():
            p = Path(path)
            if not p.is_absolute():
                p = out / p
            elif not p.exists():
                p = out / "cache" / stage / rid / p.name
            found[rid][stage] = p
    return found

