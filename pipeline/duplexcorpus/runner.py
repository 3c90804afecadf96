"""Run the stages over a corpus: discover -> ingest -> dedupe -> the processing stages
(duplexcorpus.stages.PROCESSING), then tables, speaker-disjoint splits and shards.

Stages run on Ray Data (`executor="ray"`, default) or in this process (`executor="local"`, for
debugging). Either way each (stage, recording) output is cached under OUT/cache with a key of the
content, stage version and config, so a killed run re-runs only what had not finished, and the
final tables and shards are rebuilt deterministically from the cache.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from duplexcorpus import contract
from duplexcorpus.config import StageResources, Workflow, WorkflowError, to_dict, workflow_from_dict
from duplexcorpus.inputs import Discovery, discover
from duplexcorpus.overlay import apply_reviews
from duplexcorpus.records import Quarantine, Recording, event_rows, segment_rows, word_rows
from duplexcorpus.runfolder import RUN_SPEC, RunFolder
from duplexcorpus.splits import assign_splits
from duplexcorpus.stages import INGEST, PROCESSING, BY_NAME
from duplexcorpus.stages.asr import AsrStage
from duplexcorpus.stages.base import Rejected, Stage, WorkItem, describe_failure
from duplexcorpus.stages.conditions import ConditionsStage
from duplexcorpus.stages.events import EventsStage
from duplexcorpus.stages.ipus import IpuStage
from duplexcorpus.stages.samples import SamplesStage
from duplexcorpus.stages.tracks import TracksStage
from duplexcorpus.storage import OutOfSpace, StageCache, space_error, write_json, write_stage_outputs

log = logging.getLogger("duplexcorpus")

Hook = Callable[[str, dict], None]  # (step name, details) progress callback, pyannote-style
# The steps a run reports, in order (duplexcorpus.console draws them):
#   discover {recordings, ignored, problems}; discover {input, status="quarantined", code, reason} per unusable input
#   plan {stages: [names], recordings}: a phase (ingest alone, then the processing stages) starts
#   <stage> {recording, status="done"|"cached"|"quarantined", seconds[, code, reason]}: one recording left a stage
#   dedupe {recording, status="quarantined", code, reason}; ingest / process: phase totals
#   tables {...}; shards {shards}


# ------------------------------------------------------------------------------- stage execution
def run_stage(stage: Stage, items: list[WorkItem], cache: StageCache, hook: Hook | None = None) -> list[WorkItem]:
    """Run one stage over a batch of items: reuse cached outputs, process the rest, quarantine failures.
    `hook(stage.name, {...})` hears of every recording as it leaves the stage (see Hook)."""
    report = hook or (lambda step, info: None)
    todo, tmps = [], []
    for item in items:
        if item.quarantine:
            continue
        key = stage.cache_key(item)
        item.keys[stage.name] = key
        if cache.is_done(stage.name, item.recording_id, key):
            _finish(stage, item, cache.dir_for(stage.name, item.recording_id, key))
            report(stage.name, _left_stage(item, "cached"))
            continue
        todo.append(item)
        tmps.append(cache.begin(stage.name, item.recording_id, key))
    if not todo:
        return items
    try:
        stage.ensure_setup()
        errors = stage.process_batch(todo, tmps)
    except Exception as err:  # noqa: BLE001 - setup or a whole batch failed: every item says why
        errors = [err] * len(todo)
    full = next((why for why in (space_error(e, cache.root) for e in errors if e is not None) if why), None)
    if full:  # out of space is no recording's fault: stop the run, keep nothing half-written
        for tmp in tmps:
            cache.abort(tmp)
        raise OutOfSpace(cache.root / stage.name, full)
    for item, tmp, err in zip(todo, tmps, errors):
        if err is None:
            try:  # the declared outputs, nothing else, before anything becomes visible
                stage.check_outputs(tmp)
            except Exception as contract_err:  # noqa: BLE001 - a stage bug: this recording says why
                err = contract_err
        if err is None:
            final = cache.commit(tmp, stage.name, item.recording_id, item.keys[stage.name],
                                 {"stage": stage.name, "version": stage.version})
            _finish(stage, item, final)
            report(stage.name, _left_stage(item, "done"))
        else:
            cache.abort(tmp)
            code, reason = describe_failure(stage, err)
            # the console gets one line (the hook); the traceback of a stage error goes to the log
            # (OUT/logs/duplexcorpus.log here, the worker's log, kept in OUT/logs/ray/, on Ray)
            if isinstance(err, Rejected):
                log.info("%s quarantined by %s: %s: %s", item.recording_id, stage.name, code, reason)
            else:
                log.warning("%s quarantined by %s: %s", item.recording_id, stage.name, reason, exc_info=err)
            item.quarantine = dataclasses.asdict(Quarantine(
                item.input and ";".join(item.input["paths"]), item.recording_id, stage.name, code, reason))
            report(stage.name, _left_stage(item, "quarantined"))
    return items


def _left_stage(item: WorkItem, status: str) -> dict:
    """What a progress hook hears when a recording leaves a stage: its audio duration feeds the hours shown."""
    info = {"recording": item.recording_id, "status": status,
            "seconds": float(item.recording["duration"]) if item.recording else 0.0}
    if item.quarantine:
        info.update(code=item.quarantine["reason_code"], reason=item.quarantine["reason"])
    return info


def _finish(stage: Stage, item: WorkItem, out_dir: Path) -> None:
    item.outputs[stage.name] = str(out_dir)
    if isinstance(stage, INGEST):
        item.recording = item.read(INGEST.RECORDING)


# ------------------------------------------------------------------------------------- executors
class _RayStageFn:
    """Ray Data callable: rebuilds the stage on the worker; setup happens lazily on first work."""

    def __init__(self, stage_cls: type[Stage], workflow: dict, cache_root: str, hook: Hook | None = None):
        self.stage = stage_cls(workflow_from_dict(workflow))
        self.cache = StageCache(cache_root)
        self.hook = hook

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = [WorkItem.from_json(s) for s in batch["item"]]
        items = run_stage(self.stage, items, self.cache, self.hook)
        return {"item": np.array([i.to_json() for i in items], dtype=object)}


def _apply_stage(batch: dict[str, np.ndarray], stage_cls: type[Stage], workflow: dict, cache_root: str,
                 hook: Hook | None = None):
    return _RayStageFn(stage_cls, workflow, cache_root, hook)(batch)


class _QueueHook:
    """The hook a Ray worker calls: it puts (step, info) on a Ray queue the driver drains (picklable).
    The put waits for the queue to take the event, so every event is queued before its batch returns."""

    def __init__(self, queue):
        self.queue = queue

    def __call__(self, step: str, info: dict) -> None:
        try:
            self.queue.put((step, info))
        except Exception:  # noqa: BLE001 - progress is never worth a recording
            log.debug("progress event %s lost", step, exc_info=True)


class _HookRelay:
    """Stage hooks from Ray workers reach the driver's hook, in the driver, while the stages run:
    workers put events on a `ray.util.queue.Queue` (an actor taking no CPU), a driver thread passes
    them on. The same `hook(step, info)` as the local executor calls directly."""

    def __init__(self, hook: Hook):
        import threading

        from ray.util.queue import Queue

        self.hook = hook
        self.queue = Queue(actor_options={"num_cpus": 0})
        self.worker_hook = _QueueHook(self.queue)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="duplexcorpus-progress", daemon=True)

    def __enter__(self) -> "_HookRelay":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._drain()  # whatever arrived after the last poll
        try:
            self.queue.shutdown()
        except Exception:  # noqa: BLE001 - never hide why the stages stopped (Ray may be gone)
            log.debug("progress queue did not shut down", exc_info=True)

    def _pump(self) -> None:
        while not self._stop.wait(0.25):
            self._drain()

    def _drain(self) -> None:
        try:
            waiting = self.queue.size()
            events = self.queue.get_nowait_batch(waiting) if waiting else []
        except Exception:  # noqa: BLE001 - a progress display must never stop a run
            log.debug("progress queue unreadable", exc_info=True)
            return
        for step, info in events:
            try:
                self.hook(step, info)
            except Exception:  # noqa: BLE001 - a broken display must not silence the events after it
                log.warning("progress hook failed on %s", step, exc_info=True)


def resources_for(cls: type[Stage], workflow: Workflow) -> StageResources:
    """What one worker of a stage asks Ray for: `ray.resources.<stage>` in the workflow, else the
    stage's own declaration (one actor for model stages)."""
    if cls.name in workflow.ray.resources:
        return workflow.ray.resources[cls.name]
    return StageResources(cpus=cls.resources.cpus, gpus=cls.resources.gpus, actors=1)


def check_resources(workflow: Workflow) -> None:
    unknown = sorted(set(workflow.ray.resources) - set(BY_NAME))
    if unknown:
        raise WorkflowError(f"ray.resources: unknown stage(s) {unknown}; stages: {sorted(BY_NAME)}")


def fits_at_once(stages: list[type[Stage]], workflow: Workflow, cluster: dict[str, float]) -> bool:
    """Whether the cluster holds one actor of every model stage plus one task at the same time.

    Ray Data streams all stages at once and starts each actor pool's first actor up front; an actor
    keeps its CPU while idle. When the pools' first actors alone need more CPUs (or GPUs) than the
    cluster has, a later stage's idle actors can hold the CPUs an earlier stage's actor waits for,
    and the run never ends (seen on a two-node, one-CPU-per-node cluster). Then the stages run one
    model stage at a time instead (each finished before the next starts), which needs one actor's
    worth of resources only."""
    need = {"CPU": 0.0, "GPU": 0.0}
    task = {"CPU": 0.0, "GPU": 0.0}
    for cls in stages:
        res = resources_for(cls, workflow)
        if cls.uses_model:
            need["CPU"] += res.cpus
            need["GPU"] += res.gpus
        else:
            task["CPU"] = max(task["CPU"], res.cpus)
            task["GPU"] = max(task["GPU"], res.gpus)
    return all(need[k] + task[k] <= cluster.get(k, 0.0) + 1e-9 for k in need)


def execute_ray(stages: Iterable[type[Stage]], items: list[WorkItem], workflow: Workflow, cache: StageCache,
                hook: Hook | None = None) -> list[WorkItem]:
    if hook is None:
        return _execute_ray(stages, items, workflow, cache, None)
    with _HookRelay(hook) as relay:
        return _execute_ray(stages, items, workflow, cache, relay.worker_hook)


def _execute_ray(stages: Iterable[type[Stage]], items: list[WorkItem], workflow: Workflow, cache: StageCache,
                 hook: Hook | None) -> list[WorkItem]:
    import ray.data
    from ray.data import ActorPoolStrategy

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    wf = to_dict(workflow)
    stages = list(stages)
    streamed = fits_at_once(stages, workflow, ray.cluster_resources())
    ds = ray.data.from_items([{"item": i.to_json()} for i in items], override_num_blocks=max(1, len(items)))
    for cls in stages:
        res = resources_for(cls, workflow)
        if cls.uses_model:  # long-lived actors: the model is loaded once per worker
            ds = ds.map_batches(
                _RayStageFn, fn_constructor_args=(cls, wf, str(cache.root), hook),
                compute=ActorPoolStrategy(min_size=1, max_size=res.actors),
                batch_size=workflow.ray.batch_recordings, num_cpus=res.cpus, num_gpus=res.gpus,
                batch_format="numpy")
            if not streamed:  # finish this stage (its actors end) before the next model stage's start
                ds = ds.materialize()
        else:
            ds = ds.map_batches(_apply_stage, fn_args=(cls, wf, str(cache.root), hook), batch_size=1,
                                num_cpus=res.cpus, num_gpus=res.gpus, batch_format="numpy")
    out = []
    for batch in ds.iter_batches(batch_size=64, batch_format="numpy"):
        out.extend(WorkItem.from_json(s) for s in batch["item"])
    return out


def execute_local(stages: Iterable[type[Stage]], items: list[WorkItem], workflow: Workflow, cache: StageCache,
                  hook: Hook | None = None) -> list[WorkItem]:
    for cls in stages:
        stage = cls(workflow)
        step = workflow.ray.batch_recordings if cls.uses_model else 1
        for i in range(0, len(items), step):
            run_stage(stage, items[i: i + step], cache, hook)
    return items


# ---------------------------------------------------------------------------------------- a run
@dataclass
class RunResult:
    out: Path
    recordings: int
    quarantined: int
    shards: list[str]
    seconds: float
    audio_seconds: float


def dedupe(items: list[WorkItem], hook: Hook | None = None) -> None:
    """Quarantine recordings whose content (sha256) equals an earlier one's."""
    seen: dict[str, str] = {}
    for item in sorted(items, key=lambda i: i.recording_id):
        if item.quarantine or not item.recording:
            continue
        sha = item.recording["sha256"]
        if sha in seen:
            item.quarantine = dataclasses.asdict(Quarantine(
                ";".join(item.input["paths"]), item.recording_id, "ingest", "duplicate",
                f"same audio content (sha256 {sha[:12]}...) as recording {seen[sha]!r}"))
            if hook:
                hook("dedupe", _left_stage(item, "quarantined"))
        else:
            seen[sha] = item.recording_id


def run(input_path: str | Path, out: str | Path, workflow: Workflow, *, executor: str = "ray",
        ray_address: str | None = None, metadata: str | Path | None = None, hook: Hook | None = None) -> RunResult:
    t0 = time.perf_counter()
    out = Path(out)
    stage_hook, hook = hook, hook or (lambda step, info: None)  # no hook: no events carried from Ray workers
    check_resources(workflow)
    if executor == "ray":  # a ray:// address fails here, before anything is written
        from duplexcorpus.ray_runtime import check_address

        check_address(workflow.ray, ray_address)
    cache = StageCache(out / "cache")
    removed = cache.remove_partial()
    if removed:
        log.info("removed %d partial stage outputs left by an interrupted run", removed)
    found: Discovery = discover(input_path, workflow.input, metadata)
    hook("discover", {"recordings": len(found.inputs), "ignored": found.ignored, "problems": len(found.problems)})
    for inp, code, reason in found.problems:
        hook("discover", {"input": inp, "status": "quarantined", "code": code, "reason": reason})
    items = [WorkItem(input=dataclasses.asdict(i)) for i in found.inputs]
    attach_reviews(out, items)
    write_json(out / RUN_SPEC, {"input": str(Path(input_path).resolve()), "metadata": str(metadata) if metadata else None,
                                  "workflow": to_dict(workflow)})
    for path in found.ignored:
        log.info("not audio by extension, ignored: %s", path)

    if executor == "ray":  # one Ray session for both phases
        from duplexcorpus.ray_runtime import ray_session

        with ray_session(workflow.ray, ray_address, log_dir=out / "logs"):
            items = _two_phases(items, lambda stages, batch: execute_ray(stages, batch, workflow, cache, stage_hook), hook)
    elif executor == "local":
        items = _two_phases(items, lambda stages, batch: execute_local(stages, batch, workflow, cache, stage_hook), hook)
    else:
        raise ValueError(f"executor must be 'ray' or 'local', not {executor!r}")

    quarantine = [Quarantine(inp, None, "discover", code, reason) for inp, code, reason in found.problems]
    quarantine += [Quarantine(**i.quarantine) for i in items if i.quarantine]
    good = sorted((i for i in items if not i.quarantine), key=lambda i: i.recording_id)
    result = write_outputs(out, good, quarantine, workflow, hook)
    audio_seconds = sum(i.recording["duration"] * i.recording["num_channels"] for i in good)
    log.info("run finished: %d recordings, %d quarantined, %d shards in %.1f s", len(good), len(quarantine),
             len(result), time.perf_counter() - t0)
    return RunResult(out, len(good), len(quarantine), result, time.perf_counter() - t0, audio_seconds)


def attach_reviews(out: Path, items: list[WorkItem]) -> None:
    """Annotators' corrections (`review pull`) of each recording, if any: the samples stage and the
    tables read them through the overlay."""
    for item in items:
        reviewed = out / "review" / "human" / f"{item.recording_id}.json"
        item.review = str(reviewed) if reviewed.exists() else None


def rebuild(out: str | Path, hook: Hook | None = None) -> RunResult:
    """Tables, samples and shards again from a finished run's cache (after `review pull`, or by
    `duplexcorpus shard OUT`): no input folder needed, nothing upstream re-runs. Only the samples of
    recordings whose reviews changed are rewritten; everything else is reused as it is."""
    t0 = time.perf_counter()
    run_folder = RunFolder(out)
    workflow, hook = run_folder.workflow, hook or (lambda step, info: None)
    items = run_folder.items()
    attach_reviews(run_folder.out, items)
    cache = StageCache(run_folder.out / "cache")
    # a run folder from before the conditions stage gets it now (cheap; cached otherwise): samples read it
    run_stage(ConditionsStage(workflow), items, cache, hook)
    run_stage(SamplesStage(workflow), items, cache, hook)
    quarantine = [Quarantine(**row) for row in run_folder.frame("quarantine").to_dict("records")]
    quarantine += [Quarantine(**i.quarantine) for i in items if i.quarantine]
    good = [i for i in items if not i.quarantine]
    shards = write_outputs(run_folder.out, good, quarantine, workflow, hook)
    audio_seconds = sum(i.recording["duration"] * i.recording["num_channels"] for i in good)
    return RunResult(run_folder.out, len(good), len(quarantine), shards, time.perf_counter() - t0, audio_seconds)


def _two_phases(items: list[WorkItem], execute, hook: Hook) -> list[WorkItem]:
    hook("plan", {"stages": [INGEST.name], "recordings": len(items)})
    items = execute([INGEST], items)
    dedupe(items, hook)
    hook("ingest", {"accepted": sum(not i.quarantine for i in items), "quarantined": sum(bool(i.quarantine) for i in items)})
    good = [i for i in items if not i.quarantine]
    bad = [i for i in items if i.quarantine]
    hook("plan", {"stages": [s.name for s in PROCESSING], "recordings": len(good)})
    processed = execute(PROCESSING, good) if good else []
    hook("process", {"recordings": len(processed)})
    return bad + processed


# --------------------------------------------------------------------------------------- outputs
def with_risk(segments, events, dropped, rec: Recording, workflow: Workflow):
    """Every segment gets its routing risk, the reasons, and a confidence bucket (attributes)."""
    from duplexcorpus.review.routing import segment_risk

    out = []
    for seg in segments:
        if seg.source == "human":
            risk_attrs = {"risk": 0.0, "confidence_bucket": "human"}
        else:
            lang = rec.channels[seg.channel].language or rec.language
            risk = segment_risk(seg, events, dropped, lang, workflow.review, workflow.ipu.onset)
            risk_attrs = {"risk": risk.score, "risk_reasons": risk.reasons, "confidence_bucket": risk.bucket}
        out.append(dataclasses.replace(seg, attributes={**seg.attributes, **risk_attrs}))
    return out



def with_conditions(rec: Recording, item: WorkItem) -> Recording:
    """The measured conditions on the recording's row (a run folder from before the stage has none)."""
    if ConditionsStage.name not in item.outputs:
        return rec
    return rec.with_conditions(item.read(ConditionsStage.CONDITIONS))


def write_outputs(out: Path, items: list[WorkItem], quarantine: list[Quarantine], workflow: Workflow,
                  hook: Hook) -> list[str]:
    from duplexcorpus.shards import pack_shards
    from duplexcorpus.stats import corpus_stats

    recordings = [with_conditions(Recording.from_dict(i.recording).with_tracks_info(i.read(TracksStage.INFO)), i)
                  for i in items]
    splits = assign_splits(recordings, workflow.split)
    segments, events, words = [], [], []
    for item, rec in zip(items, recordings):
        item_events = item.read(EventsStage.EVENTS) + item.read(IpuStage.CROSSTALK_EVENTS)
        item_segments, item_words = item.read(AsrStage.SEGMENTS), item.read(AsrStage.WORDS)
        item_segments, item_words, item_events = apply_reviews(item, item_segments, item_words, item_events, workflow)
        item_segments = with_risk(item_segments, item_events, item.read(AsrStage.DROPPED), rec, workflow)
        segments += item_segments
        ids = {(r["channel"], r["start"]): r["segment_id"] for r in segment_rows(item_segments)}
        words += word_rows(rec, item_words, ids)
        events += item_events
    run_folder = RunFolder(out)
    rec_rows = [r.row(splits[r.recording_id]) for r in recordings]
    q_rows = [dataclasses.asdict(q) for q in sorted(quarantine, key=lambda q: (q.input, q.stage))]
    for name, rows in (("recordings", rec_rows), ("segments", segment_rows(segments)), ("words", words),
                       ("events", event_rows(events)), ("quarantine", q_rows)):
        contract.write_table(run_folder.table_path(name), name, contract.to_table(name, rows))
    hook("tables", {"recordings": len(rec_rows), "segments": len(segments), "words": len(words), "events": len(events),
                    "quarantined": len(q_rows)})
    shards = pack_shards(out / "shards", items, splits, workflow.shard.samples_per_shard)
    hook("shards", {"shards": len(shards)})
    write_json(out / "stats.json", corpus_stats(rec_rows, segments, events, q_rows, words))
    # where each recording's stage outputs live (exports read audio from here)
    write_stage_outputs(out, {i.recording_id: i.outputs for i in items})
    return shards
