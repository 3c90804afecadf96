"""Joining a Ray cluster: a real `ray start --head` (and a second node joined with `ray start --address`)
in a temp dir with its own ports; `duplexcorpus run --ray-address HOST:PORT` gives the same tables and
byte-identical shards as a local run. `ray://` (Ray Client) is refused before any work.

Nothing here runs `ray stop` (it kills every Ray on the machine): each `ray start --block` runs in its
own session (setsid) and teardown ends exactly the processes of those sessions, by pid.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from duplexcorpus.cli import main
from duplexcorpus.config import RayConfig
from duplexcorpus.ray_runtime import RayClientNotSupported, check_address, ray_session
from tests.conftest import SAMPLES

BIN = Path(sys.executable).parent
RECORDINGS = ("en_support_clean.flac", "en_support_telephone.wav")
TABLES = ("recordings", "segments", "words", "events", "quarantine")


# ------------------------------------------------------------------------------- ray:// is refused
@pytest.mark.parametrize("how", ["option", "env", "workflow"])
def test_ray_client_address_is_refused_before_any_work(how, tmp_path, monkeypatch):
    import ray

    was_initialized = ray.is_initialized()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    args = ["run", str(SAMPLES / "audio"), "--out", str(tmp_path / "out"), "--quiet"]
    if how == "option":
        args += ["--ray-address", "ray://head:10001"]
    elif how == "env":
        monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    else:
        args += ["--set", "ray.address=ray://head:10001"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output  # click UsageError
    message = result.output
    assert "Ray Client" in message and "'ray://head:10001'" in message
    assert "--ray-address head:6379" in message  # the alternative: join by the GCS address from a node
    assert "ray job submit --address http://head:8265" in message and "duplexcorpus run" in message  # or a Ray Job
    assert not (tmp_path / "out").exists()  # nothing written
    assert ray.is_initialized() == was_initialized  # nothing started


def test_library_raises_a_specific_error_for_ray_client(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(RayClientNotSupported, match="ray job submit"):
        with ray_session(RayConfig(address="ray://head:10001")):
            pytest.fail("must not get here")
    with pytest.raises(RayClientNotSupported):
        check_address(RayConfig(), "RAY://head:10001")
    assert check_address(RayConfig(), "auto") == "auto"  # Ray's own discovery keeps working
    assert check_address(RayConfig(address="10.0.0.1:6379")) == "10.0.0.1:6379"
    assert check_address(RayConfig()) is None  # a private local Ray
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.2:6379")
    assert check_address(RayConfig()) == "10.0.0.2:6379"
    assert check_address(RayConfig(), "10.0.0.3:6379") == "10.0.0.3:6379"  # --ray-address wins


# ------------------------------------------------------------------------------ a real cluster
def _free_ports(n: int) -> list[int]:
    """n distinct free TCP ports outside Ray's default worker range (10002-19999)."""
    held, ports = [], []
    try:
        while len(ports) < n:
            sock = socket.socket()
            sock.bind(("", 0))
            held.append(sock)
            port = sock.getsockname()[1]
            if not 10002 <= port <= 19999:
                ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    return env


def _node_args(temp_dir: Path, ports: list[int]) -> list[str]:
    nm, om, agent_http, agent_grpc, runtime_env_agent, metrics = ports
    return [f"--node-manager-port={nm}", f"--object-manager-port={om}",
            f"--dashboard-agent-listen-port={agent_http}", f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--runtime-env-agent-port={runtime_env_agent}", f"--metrics-export-port={metrics}",
            "--min-worker-port=0", "--max-worker-port=0",  # workers on OS-chosen ports: no range to collide
            f"--temp-dir={temp_dir}", "--num-cpus=1", "--object-store-memory=200000000", "--disable-usage-stats"]


def _wait_started(proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Ray runtime started" in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)
    raise TimeoutError(f"ray start did not come up in {timeout} s:\n{log.read_text(errors='replace')[-3000:]}")


def _session_pids(sid: int) -> list[int]:
    import psutil

    pids = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid:
                pids.append(proc.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return pids


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each `ray start --block` (it ends its node), then SIGKILL whatever is left in its session."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_session_pids(p.pid) for p in procs):
        time.sleep(0.5)
    for proc in procs:  # Ray 2.60 drains a head for up to 30 s on SIGTERM: don't wait for that
        for pid in _session_pids(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture(scope="module")
def cluster():
    """A head (`ray start --head`) and, where the machine allows, a second node (`ray start --address`)."""
    import ray

    host = ray.util.get_node_ip_address()
    temp_dir = Path(tempfile.mkdtemp(prefix="dxc-cl-", dir="/tmp"))  # short: Ray's socket paths are limited
    gcs, client, *ports = _free_ports(15)
    procs: list[subprocess.Popen] = []
    info = {"host": host, "address": f"{host}:{gcs}", "temp_dirs": [temp_dir], "second_node": None}
    try:
        head_log = temp_dir / "head.log"
        with open(head_log, "wb") as log:
            procs.append(subprocess.Popen(
                [str(BIN / "ray"), "start", "--head", "--block", f"--node-ip-address={host}", f"--port={gcs}",
                 f"--ray-client-server-port={client}", "--include-dashboard=false", f"--dashboard-port={ports[12]}",
                 *_node_args(temp_dir, ports[:6])],
                cwd=temp_dir, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        _wait_started(procs[0], head_log)

        node_dir = temp_dir / "n2"  # the second node's own temp dir
        node_dir.mkdir()
        node_log = temp_dir / "node2.log"
        try:
            with open(node_log, "wb") as log:
                procs.append(subprocess.Popen(
                    [str(BIN / "ray"), "start", "--block", f"--address={host}:{gcs}", f"--node-ip-address={host}",
                     *_node_args(node_dir, ports[6:12])],
                    cwd=temp_dir, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            _wait_started(procs[-1], node_log, timeout=60)
            deadline = time.monotonic() + 30
            while True:  # both nodes' CPUs visible to the cluster
                status = subprocess.run([str(BIN / "ray"), "status", f"--address={host}:{gcs}"], env=_env(),
                                        capture_output=True, text=True, timeout=60).stdout
                if "/2.0 CPU" in status:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"second node never showed up in `ray status`:\n{status}")
                time.sleep(1)
            info["second_node"] = node_dir
            info["temp_dirs"].append(node_dir)
        except (RuntimeError, TimeoutError, OSError) as err:
            info["second_node_skipped"] = f"could not join a second node on this machine: {err}"
        yield info
    finally:
        _stop(list(reversed(procs)))
        shutil.rmtree(temp_dir, ignore_errors=True)


def _duplexcorpus(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "duplexcorpus")] if (BIN / "duplexcorpus").exists() else \
        [sys.executable, "-c", "from duplexcorpus.cli import main; main()"]
    result = subprocess.run(cmd + list(args), env=env or _env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


WHERE = """
import json, sys
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from duplexcorpus.config import RayConfig
from duplexcorpus.ray_runtime import ray_session

@ray.remote(num_cpus=1)
def where():
    import duplexcorpus
    from duplexcorpus.resources import read_text
    return {"node": ray.get_runtime_context().get_node_id(), "file": duplexcorpus.__file__,
            "schema": len(read_text("schemas", "v1", "words.arrow.json")),
            "ui": len(read_text("annotation_ui", "review_2ch.xml"))}

with ray_session(RayConfig(), sys.argv[1]):
    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    print(json.dumps(ray.get([where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote()
                              for n in nodes])))
"""


@pytest.mark.slow
def test_run_on_a_cluster_matches_a_local_run(cluster, tmp_path):
    if cluster["second_node"] is None:
        print(cluster.get("second_node_skipped"))  # the head alone still runs the test
    inp = tmp_path / "in"
    inp.mkdir()
    for name in RECORDINGS:
        shutil.copy(SAMPLES / "audio" / name, inp / name)
    common = ["--set", "asr.enabled=false", "--quiet"]
    _duplexcorpus("run", str(inp), "--out", str(tmp_path / "cluster"), "--ray-address", cluster["address"], *common)
    # Ray gives each worker OMP_NUM_THREADS = its num_cpus (1); silero's confidences differ in the 4th
    # decimal between 1 and 2 torch threads, so the in-process run uses one thread as the workers do.
    _duplexcorpus("run", str(inp), "--out", str(tmp_path / "local"), "--executor", "local", *common,
                  env={**_env(), "OMP_NUM_THREADS": "1"})

    for table in TABLES:
        local = pd.read_parquet(tmp_path / "local" / "tables" / f"{table}.parquet")
        remote = pd.read_parquet(tmp_path / "cluster" / "tables" / f"{table}.parquet")
        pd.testing.assert_frame_equal(remote, local, check_exact=True, obj=table)
    assert len(pd.read_parquet(tmp_path / "local" / "tables" / "recordings.parquet")) == len(RECORDINGS)
    local_shards = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local" / "shards").rglob("*") if p.is_file())
    cluster_shards = sorted(p.relative_to(tmp_path / "cluster") for p in (tmp_path / "cluster" / "shards").rglob("*") if p.is_file())
    assert cluster_shards == local_shards and any(p.suffix == ".tar" for p in local_shards)
    for rel in local_shards:
        assert (tmp_path / "cluster" / rel).read_bytes() == (tmp_path / "local" / rel).read_bytes(), rel

    # the package and its data files reached every node as a py_module, and workers import it from there
    for temp_dir in cluster["temp_dirs"]:
        shipped = list(temp_dir.glob("session_*/runtime_resources/py_modules_files/*/duplexcorpus"))
        assert shipped, f"no duplexcorpus py_module under {temp_dir}"
        assert (shipped[0] / "schemas" / "v1" / "words.arrow.json").is_file()
        assert (shipped[0] / "annotation_ui" / "review_2ch.xml").is_file()
    probe = subprocess.run([sys.executable, "-c", WHERE, cluster["address"]], env=_env(), capture_output=True,
                           text=True, timeout=300, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr[-3000:]
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert len(seen) == (2 if cluster["second_node"] else 1)
    for row in seen:
        assert "py_modules_files" in row["file"], row  # not the driver's checkout
        assert row["schema"] > 0 and row["ui"] > 0
