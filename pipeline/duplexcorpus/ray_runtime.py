"""Starting or joining Ray.

By default a private local Ray (own temp dir, loopback, no dashboard, no usage stats): a plain
`ray.init()` could attach to a stranger's cluster on a shared machine. With `--ray-address` /
`RAY_ADDRESS` / `ray.address` we join that cluster instead and pass no local-only arguments.

Joining works with the head's GCS address (`HOST:PORT`, what `ray start --head --port=PORT` prints)
or `auto`, from a driver that runs on a cluster node, and inside a Ray Job (`ray job submit ... --
duplexcorpus run ...`, where Ray sets `RAY_ADDRESS`). Ray Client (`ray://HOST:10001`) is refused up
front: Ray Data does not run through it (it fails mid-run with `'Worker' object has no attribute
'core_worker'`).

We never run `ray stop`: only what we started is shut down. A private local Ray's own logs (every
worker's stdout/stderr, where the libraries' warnings land, raylet, GCS, Ray Data) are copied to
`OUT/logs/ray/<session>/` when it shuts down, and its temp dir is removed; a cluster keeps its logs.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from duplexcorpus.config import RayConfig

QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_DEDUP_LOGS": "0",
             "PYANNOTE_METRICS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

# The package folder (pipeline/duplexcorpus, import name `duplexcorpus`), shipped to workers as a
# `py_module`. Its data files (schemas/, annotation_ui/) are plain files inside it and travel with it.
PACKAGE_DIR = Path(__file__).resolve().parent

log = logging.getLogger(__name__)


class RayClientNotSupported(ValueError):
    """A `ray://` (Ray Client) address was given: Ray Data cannot run through Ray Client."""

    def __init__(self, address: str, source: str = "the Ray address"):
        host = address[len("ray://"):].split("/", 1)[0].rsplit(":", 1)[0] or "HOST"
        super().__init__(
            f"{source} {address!r} is a Ray Client address, and Ray Data does not run through Ray Client "
            f"(it fails mid-run with \"'Worker' object has no attribute 'core_worker'\"). Instead either\n"
            f"  - run the driver on a cluster node and join by the head's GCS address:\n"
            f"      duplexcorpus run INPUT --out OUT --ray-address {host}:6379   (the head's --port; or 'auto')\n"
            f"  - or submit the run as a Ray Job:\n"
            f"      ray job submit --address http://{host}:8265 --working-dir . -- duplexcorpus run INPUT --out OUT\n"
            f"OUT must be on storage every node reads and writes.")
        self.address = address


class RayStartError(RuntimeError):
    """The private local Ray did not come up (the message says why and where its logs are)."""


def resolve_address(cfg: RayConfig, address: str | None = None) -> tuple[str | None, str]:
    """The cluster to join (None: a private local Ray) and where it came from, for messages."""
    for value, source in ((address, "--ray-address"), (cfg.address, "workflow ray.address"),
                          (os.environ.get("RAY_ADDRESS"), "RAY_ADDRESS")):
        if value:
            return value.strip(), source
    return None, ""


def check_address(cfg: RayConfig, address: str | None = None) -> str | None:
    """The address `ray_session` would join; raises RayClientNotSupported for `ray://` (before any work)."""
    resolved, source = resolve_address(cfg, address)
    if resolved and resolved.lower().startswith("ray://"):
        raise RayClientNotSupported(resolved, source)
    return resolved


def quiet_environment() -> None:
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def _cluster_runtime_env() -> dict:
    """py_modules + env vars for the workers, leaving out what a Ray Job's own runtime env already sets
    (Ray refuses to merge a job's runtime env with a driver's that repeats a field or an env var)."""
    job_env: dict = {}
    if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            job_env = json.loads(os.environ["RAY_JOB_CONFIG_JSON_ENV_VAR"]).get("runtime_env") or {}
    env = {}
    if "py_modules" not in job_env:
        env["py_modules"] = [str(PACKAGE_DIR)]
    job_vars = job_env.get("env_vars") or {}
    env_vars = {k: v for k, v in QUIET_ENV.items() if k not in job_vars}
    if env_vars:  # Ray merges env vars key by key
        env["env_vars"] = env_vars
    return env


@contextlib.contextmanager
def ray_session(cfg: RayConfig, address: str | None = None, log_dir: str | Path | None = None) -> Iterator[None]:
    """Ray for the length of the block: a cluster's, or a private local one whose logs end in `log_dir`."""
    quiet_environment()
    address = check_address(cfg, address)
    import ray

    if ray.is_initialized():  # e.g. a notebook or test fixture already connected
        yield
        return
    if address:
        ray.init(address=address, runtime_env=_cluster_runtime_env(), log_to_driver=False)
    else:
        temp_dir = tempfile.mkdtemp(prefix="dxc-ray-", dir="/tmp")  # short: Ray's socket paths are limited
        try:
            ray.init(address="local", _temp_dir=temp_dir, num_cpus=cfg.num_cpus or os.cpu_count(),
                     include_dashboard=False, object_store_memory=cfg.object_store_memory, log_to_driver=False,
                     runtime_env={"env_vars": QUIET_ENV})
        except Exception as err:  # e.g. its raylet timed out starting on an overloaded machine
            with contextlib.suppress(Exception):
                ray.shutdown()
            kept = keep_session_logs(Path(temp_dir), log_dir)
            shutil.rmtree(temp_dir, ignore_errors=True)
            raise RayStartError(f"a local Ray did not start ({type(err).__name__}: {err})"
                                + (f"; its logs are in {kept}" if kept else "")
                                + ". Nothing was lost: run the same command again to resume.") from err
    try:
        yield
    finally:
        ray.shutdown()
        if not address:
            keep_session_logs(Path(temp_dir), log_dir)
            shutil.rmtree(temp_dir, ignore_errors=True)


def keep_session_logs(temp_dir: Path, log_dir: str | Path | None) -> Path | None:
    """Copy a finished local Ray session's `logs/` to `log_dir/ray/<session>/` (its temp dir is
    about to go). Returns where they went; a failed copy is logged, never fatal."""
    sessions = sorted(p for p in temp_dir.glob("session_2*") if (p / "logs").is_dir())
    if log_dir is None or not sessions:
        return None
    target = Path(log_dir) / "ray" / sessions[-1].name
    try:
        shutil.copytree(sessions[-1] / "logs", target, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.sock"))
    except (OSError, shutil.Error) as err:
        log.warning("could not keep Ray's logs in %s: %s", target, err)
        return None
    return target
