"""The stage contract (NeMo-Curator style, executor-agnostic).

A stage declares its name, version, the config section it reads, the upstream stages whose outputs
it reads, its outputs (`Output` constants on the class), and its resources. It loads models lazily in
`setup()` (once per worker, and only when there is uncached work), and processes one recording in
`process()` or a whole batch in `process_batch()` (GPU-friendly stages override the latter). Outputs
go to a directory the executor hands in; the executor checks them against the declared outputs,
makes them visible atomically, and skips work whose cache key already exists.

Consumers name what they read by the producer's constant (`item.read(IpuStage.SEGMENTS)`), never by
a file name, so a renamed file is one edit and a missing one is caught before the cache commits.
"""
from __future__ import annotations

import fnmatch
import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from duplexcorpus.config import Workflow
from duplexcorpus.records import Recording
from duplexcorpus.storage import stable_hash


@dataclass(frozen=True)
class Output:
    """One file (or, with `*` in the name, one file per window) a stage leaves in its output folder.

    `read` turns the file into records (`load_segments`, `np.load`, ...); `optional` outputs may be
    absent (e.g. a transcript check when no transcript was given). The owning stage's name is bound
    when the class is created.
    """

    file: str
    read: Callable[[Path], Any] | None = None
    optional: bool = False
    description: str = ""
    stage: str = ""

    def __set_name__(self, owner: type, attr: str) -> None:
        object.__setattr__(self, "stage", owner.name)

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.file)


class StageOutputError(RuntimeError):
    """A stage left a different set of files than it declares (a bug in the stage, not bad input)."""


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0


class Rejected(Exception):
    """A recording is unusable for a specific, reportable reason (it is quarantined, not fatal)."""

    def __init__(self, reason_code: str, reason: str):
        super().__init__(reason)
        self.reason_code = reason_code
        self.reason = reason


@dataclass
class WorkItem:
    """One recording travelling through the stages (only small metadata; audio stays on disk)."""

    input: dict[str, Any]  # the discovered RecordingInput, as a dict
    recording: dict[str, Any] | None = None  # set by ingest
    outputs: dict[str, str] = field(default_factory=dict)  # stage -> finished output dir
    keys: dict[str, str] = field(default_factory=dict)  # stage -> cache key
    quarantine: dict[str, Any] | None = None
    review: str | None = None  # OUT/review/human/<recording>.json when annotators corrected it

    @property
    def recording_id(self) -> str:
        return self.input["recording_id"]

    def rec(self) -> Recording:
        return Recording.from_dict(self.recording)

    def path(self, output: Output) -> Path:
        """Where this recording's copy of a stage output lives (the stage must have run)."""
        return Path(self.outputs[output.stage]) / output.file

    def read(self, output: Output) -> Any:
        return output.read(self.path(output))

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, default=list)

    @classmethod
    def from_json(cls, text: str) -> "WorkItem":
        return cls(**json.loads(text))


class Stage:
    name: ClassVar[str]
    version: ClassVar[str] = "1"
    config_section: ClassVar[str | None] = None
    reads: ClassVar[tuple[str, ...]] = ()  # upstream stages whose outputs this one reads
    resources: ClassVar[Resources] = Resources()  # per actor/task; `ray.resources.<stage>` overrides
    uses_model: ClassVar[bool] = False  # run as a long-lived actor so setup() is paid once

    def __init__(self, workflow: Workflow):
        self.workflow = workflow
        self.cfg = getattr(workflow, self.config_section) if self.config_section else None
        self._ready = False

    # -- lifecycle ----------------------------------------------------------------------------
    def setup(self) -> None:
        """Load models / heavy state. Called once per worker, only when there is uncached work."""

    def ensure_setup(self) -> None:
        if not self._ready:
            self.setup()
            self._ready = True

    # -- the contract -------------------------------------------------------------------------
    @classmethod
    def outputs(cls) -> tuple[Output, ...]:
        found = {}
        for klass in reversed(cls.__mro__):  # a subclass may add or override outputs
            found.update({k: v for k, v in vars(klass).items() if isinstance(v, Output)})
        return tuple(found.values())

    @classmethod
    def check_outputs(cls, out_dir: Path) -> None:
        """Every declared output is there and nothing undeclared is (called before the cache commits)."""
        names = [p.name for p in Path(out_dir).iterdir() if not p.name.startswith(("_", "."))]
        declared = cls.outputs()
        missing = [o.file for o in declared if not o.optional and not any(o.matches(n) for n in names)]
        extra = [n for n in names if not any(o.matches(n) for o in declared)]
        if missing or extra:
            raise StageOutputError(f"stage {cls.name} broke its output contract: missing {missing}, undeclared {extra}")

    # -- caching ------------------------------------------------------------------------------
    def cache_key(self, item: WorkItem) -> str:
        content = item.recording["sha256"] if item.recording else item.input
        section = self.key_section(item)
        return stable_hash(self.name, self.version, section, content, [item.keys[s] for s in self.reads])

    def key_section(self, item: WorkItem) -> dict | None:
        """The part of the config section this item's outputs depend on (default: all its tunables)."""
        return self.workflow.tunable(self.config_section) if self.config_section else None

    # -- work ---------------------------------------------------------------------------------
    def process(self, item: WorkItem, out_dir: Path) -> None:
        raise NotImplementedError

    def process_batch(self, items: list[WorkItem], out_dirs: list[Path]) -> list[BaseException | None]:
        """Default: one at a time, each failure isolated to its recording."""
        errors: list[BaseException | None] = []
        for item, out in zip(items, out_dirs):
            try:
                self.process(item, out)
                errors.append(None)
            except Exception as err:  # noqa: BLE001 - reported per recording, never fatal
                errors.append(err)
        return errors


def describe_failure(stage: Stage, err: BaseException) -> tuple[str, str]:
    if isinstance(err, Rejected):
        return err.reason_code, err.reason
    where = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    at = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
    return "stage_error", f"{stage.name} failed: {type(err).__name__}: {err}{at}"
