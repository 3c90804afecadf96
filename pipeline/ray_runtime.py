"""Starting or joining Ray.

By default a private local Ray (own temp dir, loopback, no dashboard, no usage stats): a plain
`ray.init()` could attach to a stranger's cluster on a shared machine. With `--ray-address` /
`RAY_ADDRESS` / `ray.address` we join that cluster instead and pass no local-only arguments.
We never run `ray stop`: only what we started is shut down.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from pipeline.config import RayConfig

QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_DEDUP_LOGS": "0",
             "PYANNOTE_METRICS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def quiet_environment() -> None:
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def ray_session(cfg: RayConfig, address: str | None = None) -> Iterator[None]:
    quiet_environment()
    import ray

    if ray.is_initialized():  # e.g. a notebook or test fixture already connected
        yield
        return
    address = address or cfg.address or os.environ.get("RAY_ADDRESS")
    package = str(Path(__file__).resolve().parent)
    if address:
        ray.init(address=address, runtime_env={"py_modules": [package], "env_vars": QUIET_ENV},
                 log_to_driver=False)
    else:
        temp_dir = tempfile.mkdtemp(prefix="dxc-ray-", dir="/tmp")  # short: Ray's socket paths are limited
        ray.init(address="local", _temp_dir=temp_dir, num_cpus=cfg.num_cpus or os.cpu_count(),
                 include_dashboard=False, object_store_memory=cfg.object_store_memory, log_to_driver=False,
                 runtime_env={"env_vars": QUIET_ENV})
    try:
        yield
    finally:
        ray.shutdown()
