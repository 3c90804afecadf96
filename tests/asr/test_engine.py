"""The Whisper engine's model handling: the embedded model's sha256 pins, model resolution, and
the device/compute choice of an `asr` section (the engine itself is faked: no model load)."""
from __future__ import annotations

import pytest

from duplexcorpus.asr import engine
from duplexcorpus.asr.engine import EMBEDDED_WHISPER, ModelError, embedded_whisper_dir, load_engine, resolve_whisper
from duplexcorpus.config import AsrConfig


def test_embedded_model_hash_is_verified(tmp_path, monkeypatch):
    monkeypatch.setenv("DUPLEXCORPUS_MODEL_CACHE", str(tmp_path))
    folder = embedded_whisper_dir()
    assert (folder / "model.bin").stat().st_size == 145_217_532
    assert resolve_whisper(EMBEDDED_WHISPER) == str(folder)
    with open(folder / "config.json", "a") as handle:
        handle.write(" ")
    with pytest.raises(ModelError, match="sha256"):
        embedded_whisper_dir()


def test_a_local_folder_must_hold_a_ctranslate2_model(tmp_path):
    with pytest.raises(ModelError, match="no model.bin"):
        resolve_whisper(str(tmp_path))
    (tmp_path / "model.bin").write_bytes(b"")
    assert resolve_whisper(str(tmp_path)) == str(tmp_path)


def test_nothing_is_downloaded():
    with pytest.raises(ModelError, match="no download"):
        resolve_whisper("no-such-whisper-model")


@pytest.mark.parametrize("device,compute,expected", [("cpu", "auto", ("cpu", "int8")),
                                                     ("cuda", "auto", ("cuda", "float16")),
                                                     ("cpu", "float32", ("cpu", "float32"))])
def test_load_engine_picks_the_compute_type_for_the_device(monkeypatch, device, compute, expected):
    made = []
    monkeypatch.setattr(engine, "WhisperEngine", lambda *args: made.append(args) or "engine")
    cfg = AsrConfig(device=device, compute_type=compute, threads=3, beam_size=2, languages=("en",))
    assert load_engine(cfg) == "engine"
    assert made == [(EMBEDDED_WHISPER, *expected, 3, ("en",), 2, "audio")]
