"""`review serve`: the embedded Label Studio, from its own venv (.venv-ls), on loopback only, with
telemetry and version checks off. The API token comes from DUPLEXCORPUS_LS_TOKEN or is generated
once and stored in ~/.config/duplexcorpus/labelstudio.env with mode 0600 (never printed in logs;
`review serve` prints where it is).

Label Studio runs in its own session (a terminal's Ctrl-C does not reach it), so whoever starts it
stops it: `stop` ends its whole process group, and `review serve` calls it on SIGTERM, SIGINT and on
any exit, so no server is left running as an orphan."""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from duplexcorpus.review.labelstudio import TOKEN_FILE

# Label Studio is a separate service in its own venv: $DUPLEXCORPUS_LS_VENV, else the checkout's .venv-ls
LS_VENV = Path(os.environ.get("DUPLEXCORPUS_LS_VENV") or Path(__file__).resolve().parents[3] / ".venv-ls")
QUIET_ENV = {"SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "LATEST_VERSION_CHECK": "false",
             "COLLECT_ANALYTICS": "false", "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true"}


def stored_credentials() -> dict[str, str]:
    """Token, user and password: from the environment, else the 0600 file, else generated there."""
    creds = {}
    if TOKEN_FILE.exists():
        for line in TOKEN_FILE.read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                creds[k] = v
    creds.setdefault("DUPLEXCORPUS_LS_USER", "annotator@duplexcorpus.local")
    creds.setdefault("DUPLEXCORPUS_LS_PASSWORD", secrets.token_urlsafe(12))
    creds.setdefault("DUPLEXCORPUS_LS_TOKEN", secrets.token_hex(20))
    if os.environ.get("DUPLEXCORPUS_LS_TOKEN"):
        creds["DUPLEXCORPUS_LS_TOKEN"] = os.environ["DUPLEXCORPUS_LS_TOKEN"]
    TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(f"{k}={v}\n" for k, v in sorted(creds.items())))
    os.chmod(TOKEN_FILE, 0o600)
    return creds


def start(port: int, data_dir: Path, document_root: Path, creds: dict[str, str],
          venv: Path = LS_VENV, log: Path | None = None) -> subprocess.Popen:
    exe = venv / "bin" / "label-studio"
    if not exe.exists():
        raise FileNotFoundError(f"{exe} not found: build it with `make .venv-ls/.ready` (Label Studio is a separate "
                                f"service in its own venv), or point DUPLEXCORPUS_LS_URL at an existing server")
    env = {**os.environ, **QUIET_ENV,
           "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "LOCAL_FILES_SERVING_ENABLED": "true",
           "LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
           "LABEL_STUDIO_USERNAME": creds["DUPLEXCORPUS_LS_USER"],
           "LABEL_STUDIO_PASSWORD": creds["DUPLEXCORPUS_LS_PASSWORD"],
           "LABEL_STUDIO_USER_TOKEN": creds["DUPLEXCORPUS_LS_TOKEN"],
           "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true"}
    data_dir.mkdir(parents=True, exist_ok=True)
    out = open(log or data_dir / "server.log", "ab")
    return subprocess.Popen([str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "-p", str(port)],
                            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(url: str, timeout: float = 180.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=3) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(1.0)
    raise TimeoutError(f"Label Studio at {url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop Label Studio and every process it started (its process group, led by `proc`): SIGTERM,
    then SIGKILL for whatever is still there after `timeout` seconds."""
    group = proc.pid  # start() makes it a session leader: its pid is the group id
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + timeout
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    while time.time() < deadline:  # children may outlive the leader for a moment
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait()
