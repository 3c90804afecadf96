"""What `duplexcorpus run` shows while it runs: a line per stage (recordings done / total, audio
hours, speed, time left), one line per recording that was quarantined (its id, the stage and the
reason), then the run's summary. It is the run's progress hook (`runner.Hook`: `hook(step, info)`).

Drawn with rich (not tqdm): Ray runs the stages side by side, so several bars move at once, and a
quarantine line must print above them without breaking them; rich's `Progress` does both from one
`Console`, and is thread-safe (events from Ray workers arrive on a driver thread). On a terminal the
bars are redrawn in place; anywhere else (CI, a file) each stage prints one plain line when it is done.

Verbosity: `quiet` prints only quarantine lines (and the summary, which cli.py prints); `normal`
adds the stage lines; `verbose` prints every event as a plain line (Ray prints its own progress too).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

QUIET, NORMAL, VERBOSE = "quiet", "normal", "verbose"

log = logging.getLogger(__name__)


@dataclass
class StageTally:
    """One stage's count of recordings in one run (mutable: events update it)."""

    name: str
    total: int
    started: float
    done: int = 0
    cached: int = 0
    quarantined: int = 0
    audio_seconds: float = 0.0
    finished_at: float | None = None
    task: int | None = None  # its rich bar, on a terminal

    @property
    def left(self) -> int:
        return self.total - self.done - self.quarantined

    def speed(self, now: float) -> float:
        """Audio seconds per wall-clock second since the stage's phase started."""
        return self.audio_seconds / max((self.finished_at or now) - self.started, 1e-9)

    def line(self, now: float) -> str:
        elapsed = (self.finished_at or now) - self.started
        extra = [f"{n} {what}" for n, what in ((self.cached, "from cache"), (self.quarantined, "quarantined")) if n]
        return (f"{self.name:<12} {self.done}/{self.total} recordings  {self.audio_seconds / 3600:.2f} h audio  "
                f"{elapsed:.1f} s  {self.speed(now):.1f}x real time" + (f"  ({', '.join(extra)})" if extra else ""))


@dataclass
class _Phase:
    stages: list[StageTally] = field(default_factory=list)
    printed: int = 0  # stages whose plain line is out (in order)


def one_line(text: str) -> str:
    """A reason as one console line (an exception's message can span several)."""
    return " ".join(str(text).split())


class RunConsole:
    """The progress hook of one run, drawing on `stream` (the terminal's stderr)."""

    def __init__(self, stream: TextIO, verbosity: str = NORMAL, *, force_terminal: bool | None = None,
                 width: int | None = None):
        self.verbosity = verbosity
        self.console = Console(file=stream, force_terminal=force_terminal, width=width, highlight=False,
                               markup=False, emoji=False, soft_wrap=True)
        self.live = self.console.is_terminal and not self.console.is_dumb_terminal and verbosity == NORMAL
        self.progress = Progress(
            TextColumn("{task.description:<12}"), BarColumn(bar_width=24), MofNCompleteColumn(),
            TextColumn("{task.fields[hours]:.2f} h audio"), TextColumn("{task.fields[speed]:>6.1f}x"),
            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
            console=self.console, transient=False, redirect_stdout=False, redirect_stderr=False,
        ) if self.live else None
        self.stages: dict[str, StageTally] = {}
        self.phases: list[_Phase] = []
        self.quarantined: list[dict] = []
        self._lock = threading.RLock()

    # -- lifetime --------------------------------------------------------------------------------
    def __enter__(self) -> "RunConsole":
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress:
            self.progress.stop()  # the bars stay on screen as they were last drawn

    # -- the hook --------------------------------------------------------------------------------
    def __call__(self, step: str, info: dict) -> None:
        log.debug("[%s] %s", step, info)  # every event, in OUT/logs/duplexcorpus.log
        with self._lock:
            if self.verbosity == VERBOSE:
                shown = {k: v for k, v in info.items() if not isinstance(v, list)}
                self.print(f"[{step}] " + ", ".join(f"{k}={one_line(v)}" for k, v in shown.items()))
            if step == "plan":
                self._plan(info["stages"], int(info["recordings"]))
            elif step == "discover" and "status" not in info:
                ignored = len(info.get("ignored") or ())
                found = info["recordings"]
                self._say(f"{found} recording{'s' * (found != 1)} found"
                          + (f", {ignored} files ignored (not audio)" if ignored else ""))
            if info.get("status") == "quarantined":
                self._quarantined(step, info)
            if "recording" in info and step in self.stages:
                self._left_stage(self.stages[step], info)

    def print(self, text: str) -> None:
        self.console.print(text, soft_wrap=True, markup=False, highlight=False)

    def _say(self, text: str) -> None:
        if self.verbosity == NORMAL:
            self.print(text)

    # -- events ----------------------------------------------------------------------------------
    def _plan(self, names: list[str], recordings: int) -> None:
        now = time.monotonic()
        phase = _Phase([StageTally(name, recordings, now) for name in names])
        self.phases.append(phase)
        for tally in phase.stages:
            self.stages[tally.name] = tally
            if self.progress:
                tally.task = self.progress.add_task(tally.name, total=recordings, hours=0.0, speed=0.0, note="")
        self._print_finished(phase)

    def _quarantined(self, step: str, info: dict) -> None:
        self.quarantined.append({"step": step, **info})
        who = info.get("recording") or info.get("input")
        if self.verbosity != VERBOSE:  # verbose printed the whole event already
            self.print(f"quarantined {who} ({step}, {info.get('code')}): {one_line(info.get('reason', ''))}")

    def _left_stage(self, tally: StageTally, info: dict) -> None:
        now = time.monotonic()
        status = info.get("status")
        if status == "quarantined":
            tally.quarantined += 1
            phase = next(p for p in self.phases if tally in p.stages)
            for later in phase.stages[phase.stages.index(tally) + 1:]:  # it never reaches them
                later.total -= 1
                self._draw(later, now)
        else:
            tally.done += 1
            tally.cached += status == "cached"
            tally.audio_seconds += float(info.get("seconds") or 0.0)
        if tally.left <= 0 and tally.finished_at is None:
            tally.finished_at = now
        self._draw(tally, now)
        self._print_finished(next(p for p in self.phases if tally in p.stages))

    def _draw(self, tally: StageTally, now: float) -> None:
        if tally.left <= 0 and tally.finished_at is None:
            tally.finished_at = now
        if self.progress and tally.task is not None:
            self.progress.update(tally.task, total=tally.total, completed=tally.done + tally.quarantined,
                                 hours=tally.audio_seconds / 3600, speed=tally.speed(now),
                                 note=f"{tally.quarantined} quarantined" if tally.quarantined else "")

    def _print_finished(self, phase: _Phase) -> None:
        """Off a terminal: each finished stage's line, in stage order."""
        while phase.printed < len(phase.stages) and phase.stages[phase.printed].left <= 0:
            tally = phase.stages[phase.printed]
            tally.finished_at = tally.finished_at or time.monotonic()
            if not self.live and tally.total > 0:
                self._say(tally.line(time.monotonic()))
            phase.printed += 1
