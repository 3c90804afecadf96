"""The embedded server's credentials: generated once, kept in a 0600 file, the environment wins."""
import stat

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
