"""Where a run's logs go: the console keeps our progress, errors and summary; the rest is kept in OUT/logs/.

- `OUT/logs/duplexcorpus.log`: our own loggers (`duplexcorpus.*`) at DEBUG, tracebacks included.
- `OUT/logs/ray.log`: whatever the libraries in this (the driver) process log or print: Ray and Ray
  Data (execution plans, their progress every few seconds), Ray's C++ core worker, Python warnings,
  and whisperx / pyannote / torch when stages run here (`--executor local`).
- `OUT/logs/ray/<session>/`: the local Ray session's own logs, with every worker's stdout/stderr
  (where the stages' libraries write on Ray), copied when the session ends (ray_runtime).

Ray's C++ core and its log monitor write straight to file descriptors 1 and 2, so routing Python's
`logging` is not enough: for the length of the run both descriptors point at `ray.log` (os.dup2; the
children Ray starts inherit them), and the console writes to copies of the terminal's descriptors.
`--verbose` leaves the descriptors alone (everything prints, as before) and still writes the files.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

from duplexcorpus.console import VERBOSE

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class ConsoleStreams:
    """The terminal as it was before the run: progress and errors go here."""

    out: TextIO
    err: TextIO
    logs: Path  # OUT/logs


@contextlib.contextmanager
def run_logs(out: str | Path, verbosity: str) -> Iterator[ConsoleStreams]:
    logs = Path(out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ours = _file_handler(logs / "duplexcorpus.log", logging.DEBUG)
    libraries = _file_handler(logs / "ray.log", logging.INFO)
    package, root = logging.getLogger("duplexcorpus"), logging.getLogger()
    saved = (package.level, package.propagate, root.level, list(root.handlers))
    package.setLevel(logging.DEBUG)
    package.addHandler(ours)
    logging.captureWarnings(True)  # warnings.warn -> the `py.warnings` logger -> ray.log
    if verbosity == VERBOSE:
        root.addHandler(libraries)
        root.setLevel(logging.INFO)
        try:
            yield ConsoleStreams(sys.stdout, sys.stderr, logs)
        finally:
            _restore(package, root, saved, ours, libraries)
        return
    package.propagate = False  # ours are in duplexcorpus.log; errors reach the console through the hook
    root.handlers = [libraries]
    root.setLevel(logging.INFO)
    with _descriptors_to(logs / "ray.log") as (out_stream, err_stream):
        try:
            yield ConsoleStreams(out_stream, err_stream, logs)
        finally:
            _restore(package, root, saved, ours, libraries)


def _file_handler(path: Path, level: int) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")  # appends: a resumed run keeps the earlier logs
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    return handler


def _restore(package: logging.Logger, root: logging.Logger, saved, *handlers: logging.Handler) -> None:
    package.setLevel(saved[0])
    package.propagate = saved[1]
    root.setLevel(saved[2])
    root.handlers = saved[3]
    for handler in handlers:
        package.removeHandler(handler)
        handler.close()
    logging.captureWarnings(False)


@contextlib.contextmanager
def _descriptors_to(path: Path) -> Iterator[tuple[TextIO, TextIO]]:
    """Point fds 1 and 2 at `path` for the block; yield text streams on the original terminal."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    kept_out, kept_err = os.dup(1), os.dup(2)
    target = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    out_stream = os.fdopen(kept_out, "w", buffering=1, encoding=encoding, errors="replace")
    err_stream = os.fdopen(kept_err, "w", buffering=1, encoding=encoding, errors="replace")
    try:
        yield out_stream, err_stream
    finally:
        for stream in (sys.stdout, sys.stderr, out_stream, err_stream):
            stream.flush()
        os.dup2(out_stream.fileno(), 1)
        os.dup2(err_stream.fileno(), 2)
        out_stream.close()
        err_stream.close()
