"""CAM++ (the embedded speaker embedding): the onnxruntime network used on CPU gives the torch
network's embeddings, on real speech (the telephone sample)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import realdata

pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_onnx_campp_gives_the_torch_embeddings_on_real_speech():
    from duplexcorpus.diarize.campp import CamppEmbedding, fbank

    wave, rate = sf.read(realdata("en_tel_pyannote_sample") / "sample.wav", dtype="float32")
    assert rate == 16000
    emb = CamppEmbedding()
    windows = [torch.from_numpy(wave[a: a + n]) for a, n in ((16000, 32000), (80000, 80000), (240000, 8000))]
    got = emb.embed(windows)
    assert emb._session  # CPU: onnxruntime ran them
    with torch.inference_mode():
        want = np.stack([emb.net(fbank(w)[None]).numpy()[0] for w in windows])
    assert got.shape == (3, 192) and np.isfinite(got).all()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    # too short for an fbank window set: NaN, which pyannote's clustering skips
    assert np.isnan(emb.embed([torch.zeros(100)])).all()
