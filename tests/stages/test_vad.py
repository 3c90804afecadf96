"""Batched silero windows agree with silero's own sequential pass over each channel."""
import numpy as np
import soundfile as sf
import soxr

from duplexcorpus.config import Workflow
from duplexcorpus.stages.base import WorkItem
from duplexcorpus.stages.vad import VAD_RATE, VadStage, load_silero, per_channel_reference
from tests.conftest import SAMPLES


def test_batched_windows_match_sequential_pass(tmp_path):
    audio, sr = sf.read(SAMPLES / "audio" / "en_support_clean.flac", dtype="float32", always_2d=True)
    analysis = soxr.resample(audio, sr, VAD_RATE).astype(np.float32)
    folder = tmp_path / "decrosstalk"
    folder.mkdir()
    sf.write(folder / "analysis.flac", analysis, VAD_RATE, subtype="PCM_24")
    rec = {"recording_id": "r", "num_channels": 2, "duration": len(analysis) / VAD_RATE, "channels": [],
           "source_paths": [], "source_sha256": [], "sha256": "x", "format": "", "sample_rate": VAD_RATE,
           "language": None, "scenario": None, "environment": None, "device": None, "warnings": []}
    item = WorkItem(input={}, recording=rec, outputs={"decrosstalk": str(folder)})
    out = tmp_path / "out"
    out.mkdir()
    stage = VadStage(Workflow())
    stage.ensure_setup()
    stage.process(item, out)
    batched = np.load(out / "probs.npy").astype(np.float32)
    model = load_silero("silero-jit")
    for c in range(2):
        reference = per_channel_reference(model, analysis[:, c])
        n = min(len(reference), batched.shape[1])
        agreement = np.mean((reference[:n] >= 0.5) == (batched[c, :n] >= 0.5))
        assert agreement >= 0.98, agreement


def test_model_hash_is_verified(monkeypatch):
    import duplexcorpus.stages.vad as vad

    monkeypatch.setitem(vad.MODEL_SHA256, "silero-jit", ("silero_vad.jit", "0" * 64))
    try:
        vad.load_silero("silero-jit")
    except RuntimeError as err:
        assert "does not match" in str(err)
    else:
        raise AssertionError("a wrong hash must refuse to load")
