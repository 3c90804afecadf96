"""Diarization DER and speed on the real recordings with human RTTMs (../shared/realdata), the
embedded pipeline (diarize/pipeline.py: pyannote SpeakerDiarization + segmentation-3.0 + CAM++)
beside a plain baseline without pyannote's segmentation (silero VAD speech, 1.5 s CAM++ windows,
agglomerative clustering; no overlap). DER by pyannote.metrics: no collar with overlap scored, and
a 0.25 s collar. The data_samples mono mix has no per-speaker truth: speaker count and speed only.

    .venv/bin/python bench/bench_diarization.py [--set threshold=0.7 --set step=0.1 --set threads=2] [--no-baseline]

Columns: DER with its components (missed, false alarm, confusion: shares of reference speech that
sum to the DER), DER with a 0.25 s collar, speakers found, x real time by the wall clock and by the
process's CPU time (all threads; on a shared, loaded machine the wall clock says little).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
# ../shared/realdata beside the checkout; a git worktree elsewhere names it in DUPLEXCORPUS_REALDATA
REAL = Path(os.environ.get("DUPLEXCORPUS_REALDATA", ROOT.parent / "shared" / "realdata"))


def rttm(path: Path):
    from pyannote.core import Annotation, Segment

    ann = Annotation()
    for line in path.read_text().splitlines():
        p = line.split()
        if p and p[0] == "SPEAKER":
            ann[Segment(float(p[3]), float(p[3]) + float(p[4]))] = p[7]
    return ann


def data_samples_mono():
    """en_planning_mono (two espeak voices mixed): its truth names no speakers, so only the speaker
    count (2) and speed are reported."""
    wav = ROOT / "data_samples" / "audio" / "en_planning_mono.flac"
    return (wav, None) if wav.exists() else None


def cases():
    out = []
    for name, wav, ref in [
        ("tel_sample", REAL / "en_tel_pyannote_sample/sample.wav", REAL / "en_tel_pyannote_sample/sample.rttm"),
        ("ami_dev00", REAL / "en_ami_meeting30s_pyannote/dev00.wav", REAL / "en_ami_meeting30s_pyannote/dev00.rttm"),
        ("ami_tst00", REAL / "en_ami_meeting30s_pyannote/tst00.wav", REAL / "en_ami_meeting30s_pyannote/tst00.rttm"),
    ]:
        if wav.exists():
            out.append((name, load16k(wav), rttm(ref)))
    src = REAL / "en_ami_meeting60s_4ch"
    if src.exists():  # mixed to mono from its 4 sources, equal gains
        mix = sum(load16k(p) for p in sorted((src / "sources").glob("source*.wav")))
        out.append(("ami60_4src_mix", (mix / np.abs(mix).max() * 0.9).astype(np.float32), rttm(src / "mixture.rttm")))
    ds = data_samples_mono()
    if ds:
        out.append(("data_samples_mono", load16k(ds[0]), ds[1]))
    return out


def load16k(path: Path) -> np.ndarray:
    wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)
    if rate != 16000:
        import librosa

        wave = librosa.resample(wave, orig_sr=rate, target_sr=16000)
    return wave.astype(np.float32)


class Baseline:
    """silero VAD speech -> 1.5 s CAM++ windows (0.75 s hop) -> agglomerative (cosine, average)."""

    def __init__(self, threshold: float = 0.6):
        from silero_vad import load_silero_vad

        from duplexcorpus.diarize.campp import CamppEmbedding

        self.vad = load_silero_vad()
        self.emb = CamppEmbedding()
        self.threshold = threshold

    def __call__(self, wave: np.ndarray):
        import torch
        from pyannote.core import Annotation, Segment
        from scipy.cluster.hierarchy import fcluster, linkage
        from silero_vad import get_speech_timestamps

        speech = get_speech_timestamps(torch.from_numpy(wave), self.vad, sampling_rate=16000)
        wins = []
        for s in speech:
            a, b = s["start"], s["end"]
            step, size = 12000, 24000
            starts = list(range(a, max(a + 1, b - size + 1), step)) or [a]
            for w in starts:
                wins.append((w, min(b, w + size)))
        ann = Annotation()
        if not wins:
            return ann
        emb = self.emb.embed([torch.from_numpy(wave[a:b]) for a, b in wins])
        ok = ~np.isnan(emb).any(axis=1)
        labels = np.zeros(len(wins), int)
        if ok.sum() > 1:
            e = emb[ok] / np.linalg.norm(emb[ok], axis=1, keepdims=True)
            labels[ok] = fcluster(linkage(e, "average", metric="cosine"), self.threshold, "distance")
        # each sample takes the label of the window whose centre is nearest
        centres = np.array([(a + b) / 2 for a, b in wins])
        for s in speech:
            for t in range(s["start"], s["end"], 1600):
                k = int(np.argmin(np.abs(centres - (t + 800))))
                ann[Segment(t / 16000, min(t + 1600, s["end"]) / 16000)] = str(labels[k])
        return ann.support()


def main() -> None:
    from pyannote.metrics.diarization import DiarizationErrorRate

    from duplexcorpus.diarize.pipeline import Diarizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], help="embedded pipeline option, e.g. threshold=0.7")
    ap.add_argument("--no-baseline", action="store_true", help="the embedded pipeline only")
    ap.add_argument("--only", default="", help="comma-separated recording names (default: all)")
    args = ap.parse_args()
    from duplexcorpus.config import DiarizationConfig

    from duplexcorpus.stages.diarize import DiarizeStage

    cfg = DiarizationConfig()
    opts = DiarizeStage.embedded_options(cfg)
    opts["threads"] = cfg.threads  # torch threads (not a pipeline option; applied below)
    for kv in args.set:
        k, v = kv.split("=", 1)
        opts[k] = (v.lower() in ("1", "true", "yes")) if isinstance(opts.get(k), bool) else \
            type(opts[k])(v) if k in opts else v
    import torch

    threads = opts.pop("threads")
    torch.set_num_threads(threads)
    systems = {"pipeline": Diarizer(device="cpu", **opts)}
    if not args.no_baseline:
        systems["baseline"] = Baseline()
    print(f"embedded pipeline options: {opts}, {threads} torch thread(s)")
    print(f"{'recording':20s} {'dur':>5s} {'spk':>3s} | {'system':9s} {'DER':>6s} {'miss':>6s} {'FA':>6s} "
          f"{'conf':>6s} {'DER.25':>6s} {'spk':>3s} {'xRT':>5s} {'xCPU':>5s}")
    only = set(filter(None, args.only.split(",")))
    for name, wave, ref in cases():
        if only and name not in only:
            continue
        dur = len(wave) / 16000
        for sname, system in systems.items():
            t0, c0 = time.perf_counter(), time.process_time()
            hyp = system.annotation(wave) if sname == "pipeline" else system(wave)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            if ref is None:
                der0 = der25 = miss = fa = conf = float("nan")
            else:
                # components as shares of the reference speech (they sum to the DER)
                parts = DiarizationErrorRate(collar=0.0, skip_overlap=False)(ref, hyp, detailed=True)
                total = parts["total"]
                der0 = parts["diarization error rate"]
                miss, fa, conf = (parts[k] / total for k in ("missed detection", "false alarm", "confusion"))
                der25 = DiarizationErrorRate(collar=0.25, skip_overlap=False)(ref, hyp)
            nref = len(ref.labels()) if ref is not None else 2
            print(f"{name:20s} {dur:5.1f} {nref:3d} | {sname:9s} {der0:6.3f} {miss:6.3f} {fa:6.3f} {conf:6.3f} "
                  f"{der25:6.3f} {len(hyp.labels()):3d} {dur / dt:5.1f} {dur / cpu:5.1f}", flush=True)


if __name__ == "__main__":
    main()
