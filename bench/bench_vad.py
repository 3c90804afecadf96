"""Batched VAD (our stage) vs silero's own get_speech_timestamps per channel, on the same audio.

Prints the speed ratio and the frame agreement of the speech decisions (32 ms frames).
    .venv/bin/python bench/bench_vad.py
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from duplexcorpus.config import Workflow
from duplexcorpus.stages.base import WorkItem
from duplexcorpus.stages.ipus import hysteresis
from duplexcorpus.stages.vad import HOP, VAD_RATE, VadStage, load_silero

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples" / "audio"
FILES = ["en_support_clean.flac", "en_chat_crosstalk.flac", "en_planning_mismatch.flac", "zh_weekend_chat.flac",
         "en_meeting_3ch.flac", "en_support_telephone.wav"]


def main() -> None:
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp())
    items, outs, channels = [], [], []
    for k, name in enumerate(FILES):
        audio, sr = sf.read(SAMPLES / name, dtype="float32", always_2d=True)
        x = soxr.resample(audio, sr, VAD_RATE).astype(np.float32)
        d = tmp / f"r{k}"
        (d / "decrosstalk").mkdir(parents=True)
        (d / "out").mkdir()
        sf.write(d / "decrosstalk" / "analysis.flac", x, VAD_RATE, subtype="PCM_24")
        rec = {"recording_id": f"r{k}", "num_channels": x.shape[1], "duration": len(x) / VAD_RATE}
        items.append(WorkItem(input={}, recording=rec, outputs={"decrosstalk": str(d / "decrosstalk")}))
        outs.append(d / "out")
        channels += list(x.T)
    import duplexcorpus.stages.base as base

    base.WorkItem.rec = lambda self: type("R", (), self.recording)  # minimal recording view for the bench
    seconds = sum(len(c) for c in channels) / VAD_RATE
    import silero_vad

    model = load_silero("silero-jit")
    t0 = time.perf_counter()
    reference = [silero_vad.get_speech_timestamps(torch.from_numpy(c), model, sampling_rate=VAD_RATE,
                                                  min_speech_duration_ms=0, min_silence_duration_ms=0, speech_pad_ms=0)
                 for c in channels]
    t_ref = time.perf_counter() - t0
    stage = VadStage(Workflow())
    stage.ensure_setup()
    t0 = time.perf_counter()
    errors = stage.process_batch(items, outs)
    t_batch = time.perf_counter() - t0
    assert not any(errors), errors
    probs = [row for out in outs for row in np.load(out / "probs.npy").astype(np.float32)]
    agree = []
    for ts, p, c in zip(reference, probs, channels):
        ref = np.zeros(int(np.ceil(len(c) / HOP)), bool)
        for t in ts:
            ref[t["start"] // HOP: -(-t["end"] // HOP)] = True
        n = min(len(ref), len(p))
        agree.append(np.mean(ref[:n] == hysteresis(p[:n], 0.5, 0.35)))
    print(f"audio: {len(channels)} channels, {seconds:.0f} channel-seconds")
    print(f"get_speech_timestamps per channel: {t_ref:.2f} s  ({seconds / t_ref:.0f}x real time)")
    print(f"batched VAD stage (all channels):  {t_batch:.2f} s  ({seconds / t_batch:.0f}x real time)")
    print(f"speed ratio: {t_ref / t_batch:.2f}x")
    print(f"frame agreement: mean {np.mean(agree):.4f}, min {np.min(agree):.4f}")


if __name__ == "__main__":
    main()
