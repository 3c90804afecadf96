"""Shared fixtures: one real local Ray for the session, one end-to-end run on data_samples."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from duplexcorpus.ray_runtime import quiet_environment

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data_samples"
# ../shared/realdata beside the checkout; a git worktree elsewhere names it in DUPLEXCORPUS_REALDATA
REALDATA = Path(os.environ.get("DUPLEXCORPUS_REALDATA", ROOT.parent / "shared" / "realdata"))

quiet_environment()

# The fast lane (`make test-fast` = `pytest -m "not slow"`) leaves out whatever starts Ray, runs the
# whole pipeline or talks to Label Studio: tests using these fixtures are slow without saying so.
SLOW_FIXTURES = {"ray_local", "sample_run", "label_studio", "run_copy"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def realdata(*parts: str) -> Path:  # noqa: D103
    path = REALDATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (evaluation recordings live in ../shared/realdata)")
    return path


@pytest.fixture(scope="session")
def ray_local():
    """A private local Ray (own temp dir; never a stranger's cluster), shut down at the end."""
    import ray

    temp_dir = tempfile.mkdtemp(prefix="dxc-test-ray-", dir="/tmp")
    ray.init(address="local", _temp_dir=temp_dir, num_cpus=2, include_dashboard=False,
             object_store_memory=256 * 1024 * 1024, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def sample_run(ray_local, tmp_path_factory):
    """The main job on the bundled samples, on Ray, exactly as the README runs it."""
    from duplexcorpus.config import load_workflow
    from duplexcorpus.runner import run

    out = tmp_path_factory.mktemp("run") / "out"
    result = run(SAMPLES / "audio", out, load_workflow(ROOT / "workflows" / "samples.yaml"), executor="ray")
    return result
