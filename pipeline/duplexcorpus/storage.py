"""Atomic writes and the per-recording, per-stage cache that makes runs resumable.

A stage's output for one recording lives in `OUT/cache/<stage>/<recording_id>/<key>/` where `key`
hashes the recording's content (sha256), the stage's version, its config and its inputs' keys. A
directory appears only once complete (written to a temp sibling, then renamed), so a run killed at
any moment leaves either a finished output or nothing; re-running reuses finished outputs.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping


SPACE_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                errno.EFBIG: "file size limit exceeded"}
SF_ERR_SYSTEM = 2  # libsndfile's code for a failed system call (it keeps no errno)


class OutOfSpace(Exception):
    """Writing under the output folder failed for lack of space (ENOSPC, EDQUOT or EFBIG).

    Not a property of any one recording: the run stops (rather than quarantining every recording),
    nothing half-written is kept, and a re-run once space is freed resumes from the cache."""

    def __init__(self, folder: str | Path, why: str):
        self.folder = str(folder)
        self.why = why
        super().__init__(f"out of space writing under {self.folder} ({why}). Finished work is kept: free space "
                         "(or raise the quota / file size limit) and run the same command again to resume.")


def space_error(err: BaseException | None, folder: str | Path | None = None) -> str | None:
    """Why `err` (or anything it wraps) is an out-of-space failure, else None.

    OSError carries its errno. libsndfile reports a failed write only as a "system error" with no
    errno, so for that one the folder is probed: it is out of space when it cannot take 1 MiB more."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OutOfSpace):
            return err.why
        if isinstance(err, OSError) and err.errno in SPACE_ERRNOS:
            return f"{SPACE_ERRNOS[err.errno]}: {err}"
        if getattr(err, "code", None) == SF_ERR_SYSTEM and type(err).__name__ == "LibsndfileError" and folder:
            probed = _probe_space(Path(folder))
            if probed:
                return probed
        err = err.__cause__ or err.__context__ or getattr(err, "cause", None)
    return None


def as_out_of_space(err: BaseException, folder: str | Path) -> OutOfSpace | None:
    """The OutOfSpace that `err` is or wraps (a Ray task error, a stage error), one naming `folder`
    when it is a bare out-of-space OSError, or None."""
    seen, cur = set(), err
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OutOfSpace):
            return OutOfSpace(cur.folder, cur.why)
        cur = cur.__cause__ or cur.__context__ or getattr(cur, "cause", None)
    why = space_error(err, folder)
    return OutOfSpace(folder, why) if why else None


def _probe_space(folder: Path, size: int = 1 << 20) -> str | None:
    try:
        with tempfile.NamedTemporaryFile(prefix=".space-probe.", dir=folder) as handle:
            handle.write(b"\0" * size)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        return f"{SPACE_ERRNOS[err.errno]}: {err}" if err.errno in SPACE_ERRNOS else None
    return None


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


def current_umask() -> int:
    """This process's umask, read without changing it (os.umask would, racing other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plain_mode(path: Path, directory: bool = False) -> None:
    """Give a temp file or folder the mode a plain open()/mkdir() would have had. mkstemp/mkdtemp
    make them 0600/0700; renamed into place they would keep that, and a team sharing the corpus on
    a shared disk could not read it."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path next to `path`; move it into place only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    plain_mode(tmp_path)
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
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
            plain_mode(tmp, directory=True)
            return tmp
        except OSError as err:
            if err.errno in SPACE_ERRNOS:
                raise OutOfSpace(final.parent, f"{SPACE_ERRNOS[err.errno]}: {err}") from err
            raise

    def commit(self, tmp: Path, stage: str, recording_id: str, key: str, manifest: Mapping[str, Any]) -> Path:
        """Make a finished temp directory the cached output (atomic rename)."""
        final = self.dir_for(stage, recording_id, key)
        try:
            (tmp / "_SUCCESS").write_text(json.dumps(dict(manifest), sort_keys=True, default=str))
        except OSError as err:  # nothing half-written stays behind
            shutil.rmtree(tmp, ignore_errors=True)
            if err.errno in SPACE_ERRNOS:
                raise OutOfSpace(tmp.parent, f"{SPACE_ERRNOS[err.errno]}: {err}") from err
            raise
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

