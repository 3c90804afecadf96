"""Speech activity with silero-vad, batched over windows of many channels and recordings at once.

silero is a small recurrent model that steps through 32 ms frames; run per channel it makes one
tiny call per frame. Here every channel of every recording in the batch is cut into windows (with a
little left context, run through the RNN and discarded so its state is warm), and the windows are
stacked into one tensor: each model step then processes `batch_windows` frames at once (GPU when
present). Output: per-channel speech probability at 31.25 Hz (512 samples at 16 kHz).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

import numpy as np

from pipeline.audio import ChannelStream
from pipeline.stages.base import Resources, Stage, WorkItem
from pipeline.stages.decrosstalk import analysis_path

VAD_RATE = 16000
HOP = 512  # samples per silero frame at 16 kHz
FRAME_RATE = VAD_RATE / HOP  # 31.25 Hz
# sha256 of the weights shipped in silero-vad 6.2.3 (verified before loading: no silent model swaps)
MODEL_SHA256 = {
    "silero-jit": ("silero_vad.jit", "e1122837f4154c511485fe0b9c64455f7b929c96fbb8d79fbdb336383ebd3720"),
    "silero-onnx": ("silero_vad.onnx", "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"),
}


def load_silero(kind: str, device: str = "cpu"):
    import silero_vad
    import torch

    fname, expected = MODEL_SHA256[kind]
    path = Path(silero_vad.__file__).parent / "data" / fname
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise RuntimeError(f"{path}: sha256 {digest} does not match the pinned {expected}")
    model = silero_vad.load_silero_vad(onnx=kind == "silero-onnx")
    if device == "cuda" and kind == "silero-jit":
        model = model.to(torch.device("cuda"))
    return model


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


class VadStage(Stage):
    name = "vad"
    version = "1"
    config_section = "vad"
    reads = ("decrosstalk",)
    writes = ("probs.npy",)
    resources = Resources(cpus=1.0)
    uses_model = True

    def setup(self) -> None:
        import torch

        torch.set_num_threads(self.cfg.threads)
        self.device = resolve_device(self.cfg.device)
        self.model = load_silero(self.cfg.model, self.device)

    # windows -------------------------------------------------------------------------------------
    def _windows(self, idx: int, path: str, channels: int) -> Iterator[tuple[int, int, int, np.ndarray]]:
        """(item index, channel, first frame, samples with context) for one recording, streamed."""
        win = int(round(self.cfg.window * FRAME_RATE)) * HOP
        ctx = int(round(self.cfg.context * FRAME_RATE)) * HOP
        history = np.zeros((channels, ctx), np.float32)
        buffer = np.zeros((channels, 0), np.float32)
        pos = 0  # sample index (16 kHz) of buffer[0]
        stream = ChannelStream([(path, c) for c in range(channels)], VAD_RATE)
        blocks = stream.blocks()
        exhausted = False
        while True:
            while buffer.shape[1] < win and not exhausted:
                block = next(blocks, None)
                if block is None:
                    exhausted = True
                else:
                    buffer = np.concatenate([buffer, block], axis=1)
            if buffer.shape[1] == 0:
                return
            chunk = buffer[:, :win]
            if chunk.shape[1] < win:
                chunk = np.pad(chunk, ((0, 0), (0, win - chunk.shape[1])))
            full = np.concatenate([history, chunk], axis=1)
            for c in range(channels):
                yield idx, c, pos // HOP, full[c]
            history = full[:, -ctx:] if ctx else history
            buffer = buffer[:, win:]
            pos += win
            if exhausted and buffer.shape[1] == 0:
                return

    def process_batch(self, items: list[WorkItem], out_dirs: list[Path]) -> list[BaseException | None]:
        import torch

        errors: list[BaseException | None] = [None] * len(items)
        probs: list[np.ndarray | None] = []
        for item in items:
            info = item.rec()
            n = int(np.ceil(info.duration * VAD_RATE / HOP)) + 2
            probs.append(np.zeros((info.num_channels, n), np.float32))
        ctx_frames = int(round(self.cfg.context * FRAME_RATE))

        def generator():
            for i, item in enumerate(items):
                try:
                    yield from self._windows(i, analysis_path(item), item.rec().num_channels)
                except Exception as err:  # noqa: BLE001 - isolate a bad recording
                    errors[i] = err

        pending: list[tuple[int, int, int, np.ndarray]] = []

        def flush():
            if not pending:
                return
            batch = torch.from_numpy(np.stack([w[3] for w in pending])).to(self.device)
            with torch.inference_mode():
                out = self.model.audio_forward(batch, VAD_RATE).float().cpu().numpy()
            for (i, c, f0, _), p in zip(pending, out):
                p = p[ctx_frames:]
                target = probs[i]
                stop = min(target.shape[1], f0 + len(p))
                target[c, f0:stop] = p[: stop - f0]
            pending.clear()

        for window in generator():
            pending.append(window)
            if len(pending) >= self.cfg.batch_windows:
                flush()
        flush()
        for i, (item, out) in enumerate(zip(items, out_dirs)):
            if errors[i] is None:
                n = int(np.ceil(item.rec().duration * FRAME_RATE))
                np.save(out / "probs.npy", probs[i][:, :n].astype(np.float16))
        return errors

    def process(self, item: WorkItem, out_dir: Path) -> None:
        err = self.process_batch([item], [out_dir])[0]
        if err:
            raise err


def per_channel_reference(model, audio_16k: np.ndarray) -> np.ndarray:
    """silero's own sequential frame loop over one channel (the unbatched baseline), as probs."""
    import torch

    with torch.inference_mode():
        return model.audio_forward(torch.from_numpy(audio_16k[None]), VAD_RATE)[0].numpy()
