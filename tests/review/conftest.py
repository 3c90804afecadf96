"""A real Label Studio server for the review tests (its own venv .venv-ls, loopback, telemetry off),
and a copy of the sample run inside the server's document root."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def label_studio():
    from duplexcorpus.review.server import start, stop, wait_ready

    if not (ROOT / ".venv-ls" / "bin" / "label-studio").exists():
        pytest.skip("Label Studio venv missing: `make .venv-ls/.ready` (make test builds it)")
    base = Path(tempfile.mkdtemp(prefix="dxc-ls-"))
    (base / "root").mkdir()
    port = _free_port()
    creds = {"DUPLEXCORPUS_LS_USER": "reviewer@example.com", "DUPLEXCORPUS_LS_PASSWORD": "test-password-123",
             "DUPLEXCORPUS_LS_TOKEN": "0123456789abcdef0123456789abcdef01234567"}
    proc = start(port, base / "data", base / "root", creds, log=base / "server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout=240)
    except TimeoutError:
        stop(proc, timeout=5)
        pytest.fail("Label Studio did not start: " + (base / "server.log").read_text()[-2000:])
    old = {k: os.environ.get(k) for k in ("DUPLEXCORPUS_LS_URL", "DUPLEXCORPUS_LS_TOKEN", "DUPLEXCORPUS_LS_DOCUMENT_ROOT")}
    os.environ.update(DUPLEXCORPUS_LS_URL=url, DUPLEXCORPUS_LS_TOKEN=creds["DUPLEXCORPUS_LS_TOKEN"],
                      DUPLEXCORPUS_LS_DOCUMENT_ROOT=str(base / "root"))
    yield {"url": url, "root": base / "root", **creds, "log": base / "server.log"}
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    stop(proc)  # the whole process group: no Label Studio worker outlives the tests
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def run_copy(sample_run, label_studio, tmp_path_factory):
    """A private copy of the sample run inside the server's document root (pull rewrites it)."""
    dest = Path(tempfile.mkdtemp(prefix="run-", dir=label_studio["root"])) / "out"
    shutil.copytree(sample_run.out, dest, symlinks=True)
    return dest
