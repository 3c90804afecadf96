"""Whole-run throughput (x real time) and peak memory on a long recording.

Builds a long two-channel call by repeating a bundled sample (crosstalk, noise), runs the whole
pipeline in-process (so the peak RSS is the pipeline's, not Ray's), and prints both.
    .venv/bin/python bench/bench_run.py --minutes 30
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import soundfile as sf

from duplexcorpus.config import load_workflow
from duplexcorpus.runner import run

SAMPLE = Path(__file__).resolve().parent.parent / "data_samples" / "audio" / "en_chat_crosstalk.flac"


def make_long(path: Path, minutes: float) -> float:
    audio, sr = sf.read(SAMPLE, dtype="float32", always_2d=True)
    total = int(minutes * 60 * sr)
    with sf.SoundFile(path, "w", samplerate=sr, channels=audio.shape[1], format="FLAC", subtype="PCM_16") as out:
        written = 0
        while written < total:  # stream it out: the bench itself must not hold 2 hours either
            chunk = audio[: total - written]
            out.write(chunk)
            written += len(chunk)
    return total / sr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dxc-bench-"))
    (work / "in").mkdir()
    duration = make_long(work / "in" / "long_call.flac", args.minutes)
    t0 = time.perf_counter()
    result = run(work / "in", work / "out", load_workflow(), executor="local")
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"recording: {duration / 60:.0f} min, 2 channels; wall {wall:.1f} s")
    print(f"throughput: {duration / wall:.1f}x real time (conversation seconds per wall second), "
          f"{2 * duration / wall:.1f}x per channel-second")
    print(f"peak RSS: {peak_mb:.0f} MB  (audio of the whole call at 24 kHz float32 would be "
          f"{duration * 24000 * 2 * 4 / 2**20:.0f} MB)")
    print(f"recordings {result.recordings}, quarantined {result.quarantined}")


if __name__ == "__main__":
    main()
