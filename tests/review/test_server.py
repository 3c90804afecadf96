"""The embedded server's credentials: generated once, kept in a 0600 file, the environment wins."""
import stat
from pathlib import Path

import pytest

from duplexcorpus.review import server


def test_credentials_file_is_private_and_stable(tmp_path, monkeypatch):
    monkeypatch.setattr(server, "TOKEN_FILE", tmp_path / "labelstudio.env")
    monkeypatch.delenv("DUPLEXCORPUS_LS_TOKEN", raising=False)
    first = server.stored_credentials()
    assert stat.S_IMODE((tmp_path / "labelstudio.env").stat().st_mode) == 0o600
    assert len(first["DUPLEXCORPUS_LS_TOKEN"]) == 40
    assert server.stored_credentials() == first  # generated once
    monkeypatch.setenv("DUPLEXCORPUS_LS_TOKEN", "from-the-environment")
    assert server.stored_credentials()["DUPLEXCORPUS_LS_TOKEN"] == "from-the-environment"


def test_quiet_environment_turns_telemetry_off():
    assert server.QUIET_ENV["COLLECT_ANALYTICS"] == "false" and server.QUIET_ENV["SENTRY_DSN"] == ""


@pytest.mark.slow  # two real Label Studio starts (about 2 minutes on two cores)
def test_serve_stops_label_studio_on_sigterm_and_sigint(tmp_path):
    """`review serve` as a user runs it, with the real Label Studio: after SIGTERM (a service manager)
    and after SIGINT (Ctrl-C), nothing of the server's process tree is left and the port is closed."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    import psutil

    import duplexcorpus
    from tests.conftest import ROOT

    if not (ROOT / ".venv-ls" / "bin" / "label-studio").exists():
        pytest.skip("Label Studio venv missing: `make .venv-ls/.ready` (make test builds it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"),  # its token file stays in tmp_path
           "PYTHONPATH": str(Path(duplexcorpus.__file__).resolve().parents[1])}
    env.pop("DUPLEXCORPUS_LS_TOKEN", None)
    for signum in (signal.SIGTERM, signal.SIGINT):
        serve = subprocess.Popen([sys.executable, "-m", "duplexcorpus.cli", "review", "serve", "--port", str(port),
                                  "--data-dir", str(tmp_path / "ls"), "--document-root", str(tmp_path)],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert "Label Studio: " + url in serve.stdout.readline()  # printed once it answers
            tree = psutil.Process(serve.pid).children(recursive=True)
            assert any("label-studio" in " ".join(p.cmdline()) for p in tree)
            with urllib.request.urlopen(f"{url}/api/version", timeout=10) as resp:
                assert resp.status == 200
            serve.send_signal(signum)
            assert serve.wait(timeout=60) == 128 + signum
            gone, alive = psutil.wait_procs(tree, timeout=30)
            assert alive == [], f"{signal.Signals(signum).name} left {[p.cmdline() for p in alive]}"
            with pytest.raises(OSError):
                urllib.request.urlopen(f"{url}/api/version", timeout=3)
        finally:
            if serve.poll() is None:
                serve.kill()
