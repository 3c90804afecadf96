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
    assert made == [(EMBEDDED_WHISPER, *expected, 3, ("en",), 2, {"zh": "log_mel"}, ("zh",))]


@pytest.mark.slow
def test_the_engine_loads_without_whisperx_pipeline_imports():
    """The Whisper engine needs faster-whisper's model class and openai-whisper's log-mel; whisperx's
    own `asr` module would import transformers' pipelines, torchvision and pyannote (seconds of CPU
    per worker that loads Whisper). Checked in a fresh interpreter, features and language included."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from duplexcorpus.asr.engine import WhisperEngine, EMBEDDED_WHISPER, Clip\n"
            "e = WhisperEngine(EMBEDDED_WHISPER)\n"
            "(lang, p), = e.identify([Clip(np.zeros(16000, np.float32))])\n"
            "assert lang in ('en', 'zh') and 0 < p <= 1, (lang, p)\n"
            "print(sorted(m for m in ('whisperx.asr', 'transformers', 'torchvision', 'pyannote.audio')"
            " if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.slow
def test_mandarin_is_decoded_as_faster_whispers_transcribe_decodes_a_window():
    """`asr.mel_padding` and `asr.timestamp_tokens` per language: by default a Mandarin clip gets the
    log-mel padded with zeros and the timestamp mode, which is what `WhisperModel.transcribe` does with
    a window, so a real clip under 30 s comes back as transcribe writes it; English keeps the padded
    audio and <|notimestamps|>. A clip whose language is detected is encoded again as Mandarin."""
    import soundfile as sf

    from duplexcorpus.asr.engine import Clip, WhisperEngine
    from tests.conftest import realdata

    cfg = AsrConfig()
    eng = WhisperEngine(EMBEDDED_WHISPER, mel_padding=cfg.mel_padding, timestamp_tokens=cfg.timestamp_tokens)
    assert (eng.padding_of("zh"), eng.padding_of("en"), eng.padding_of(None)) == ("log_mel", "audio", "audio")
    for name in ("zh_read_aishell1_BAC009S0724W0121/BAC009S0724W0121.wav", "zh_read_funasr_asr_example/asr_example_zh.wav"):
        audio, sr = sf.read(realdata(*name.split("/")), dtype="float32")
        assert sr == 16_000
        segments, _ = eng.model.transcribe(audio, language="zh", beam_size=cfg.beam_size)
        transcribed = "".join(s.text for s in segments).strip()
        given, detected = eng.run([Clip(audio, language="zh"), Clip(audio, keep_encoding=True)])
        assert given.text == transcribed, (name, given.text, transcribed)
        assert detected.language == "zh" and detected.text == transcribed, (name, detected.text)
    # the former Mandarin decode (padded audio, no timestamps) writes other characters on the FunASR
    # clip (达摩远 ... 云食别 for 达摩院 ... 语音识别): the difference is real, not a no-op setting
    former = WhisperEngine(EMBEDDED_WHISPER, mel_padding="audio")
    assert former.run([Clip(audio, language="zh")])[0].text != transcribed
