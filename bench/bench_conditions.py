#!/usr/bin/env python3
"""Recording conditions: the SNR estimate against a known mixing SNR, bandwidth classes, and what
the stage says about real calls.

    PYTHONPATH=pipeline .venv/bin/python bench/bench_conditions.py [--work /tmp/bench_conditions]

Three sets, each run through the real stages ingest -> tracks -> decrosstalk -> vad -> crosstalk ->
ipus -> conditions (local executor, no ASR), so the speech regions are the pipeline's own IPUs:

1. stress calls (bench/stress/make_stress.py: espeak-ng dialogues, leak, reverberant leak, gain,
   brown-with-hum or pink noise, telephone codecs, two-file delivery) with the SNR forced to each
   of --snrs. The mixing SNR is the generator's: noise power against the channel's own clean
   speech power inside the truth IPUs, before gain. The guard around speech (`conditions.guard_s`)
   is chosen on the choose seeds (100-...) and the error is reported on other seeds (200-...).
   Telephone calls are listed apart: their 300-3400 Hz band removes a different share of speech
   and of (low-frequency) noise, so the delivered SNR is not the mixing SNR.
2. real read speech (../shared/realdata: LibriSpeech, AISHELL-1 clips; read there, never copied)
   put two clips to a mono recording with pauses, white / pink / babble noise (babble: six real
   Mandarin talkers from zh_mixed_dev's spontaneous clips summed) at each SNR against the clean
   clips' speech power inside their active spans. The clean clips carry their own recording noise
   (about 30-40 dB below speech), so at 30 dB the truth is a little lower than the mixing SNR.
3. real calls (two-channel 8 kHz telephone calls, mono calls, the 4-channel AMI close-talk
   excerpt): the estimates are printed; there is no truth for them.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "pipeline"))
sys.path.insert(0, str(ROOT / "bench" / "stress"))
sys.path.insert(0, str(ROOT / "data_samples"))
REAL = ROOT.parent / "shared" / "realdata"
if not REAL.exists():
    REAL = Path("/work/shared/realdata")

from duplexcorpus.config import Workflow  # noqa: E402
from duplexcorpus.inputs import discover  # noqa: E402
from duplexcorpus.ray_runtime import quiet_environment  # noqa: E402
from duplexcorpus.runner import dedupe, execute_local  # noqa: E402
from duplexcorpus.stages import INGEST, PROCESSING  # noqa: E402
from duplexcorpus.stages.base import WorkItem  # noqa: E402
from duplexcorpus.stages.conditions import ConditionsStage  # noqa: E402
from duplexcorpus.storage import StageCache  # noqa: E402

UP_TO_CONDITIONS = PROCESSING[: PROCESSING.index(ConditionsStage) + 1]
GUARDS = (0.1, 0.2, 0.3, 0.5)


def seeds(text: str) -> list[int]:
    a, _, b = text.partition("-")
    return list(range(int(a), int(b or a) + 1))


def run_until_conditions(audio_dir: Path, out: Path, workflow: Workflow) -> list[WorkItem]:
    """The real stages up to `conditions` on every recording of a folder (cached in out/cache)."""
    found = discover(audio_dir, workflow.input, None)
    items = [WorkItem(input=dataclasses.asdict(i)) for i in found.inputs]
    cache = StageCache(out / "cache")
    execute_local([INGEST], items, workflow, cache)
    dedupe(items)
    good = [i for i in items if not i.quarantine]
    execute_local(UP_TO_CONDITIONS, good, workflow, cache)
    for i in items:
        if i.quarantine:
            print(f"  quarantined {i.recording_id}: {i.quarantine['reason']}")
    return [i for i in good if not i.quarantine]


def conditions_with(item: WorkItem, workflow: Workflow, scratch: Path):
    """The conditions stage once more with another setting (cheap: it reads cached IPUs and audio)."""
    out = scratch / item.recording_id
    out.mkdir(parents=True, exist_ok=True)
    stage = ConditionsStage(workflow)
    stage.process(item, out)
    return (out / ConditionsStage.CONDITIONS.file).read_text()


# ------------------------------------------------------------------------------- set 1: stress
def render_stress(out: Path, seed_list: list[int], snrs: list[float]) -> dict[str, dict]:
    import make_stress as mk

    mk._CACHE_DIR = out / "tts_cache"
    mk._CACHE_DIR.mkdir(parents=True, exist_ok=True)
    truth_file = out / "mixing.json"
    if truth_file.exists():
        return json.loads(truth_file.read_text())
    results, truth = [], {}
    for seed in seed_list:
        base = mk.draw_conditions(seed)
        for snr in snrs:
            c = dataclasses.replace(base, snr_db=float(snr), recording_id=f"s{seed:04d}_snr{int(snr):02d}")
            results.append(mk.render(c, out))
            truth[c.recording_id] = dict(seed=seed, snr_db=float(snr), telephone=c.telephone, codec=c.codec,
                                         noise=c.noise, two_file=c.two_file, leak_db=round(c.leak_db, 1))
    mk.write_tables(results, out)
    truth_file.write_text(json.dumps(truth, indent=1))
    return truth


def stress_errors(items, truth, workflow, scratch=None):
    """(recording, channel, mixing snr, estimate, telephone, bandwidth) per channel."""
    rows = []
    for item in items:
        t = truth[item.recording_id]
        if scratch is None:
            cond = item.read(ConditionsStage.CONDITIONS).to_dict()
        else:
            cond = json.loads(conditions_with(item, workflow, scratch))
        for ch in cond["channels"]:
            rows.append((item.recording_id, ch["channel"], t["snr_db"], ch["snr_db"], t["telephone"], ch["bandwidth"]))
    return rows


def summarise(rows, label: str) -> None:
    print(f"  {label}")
    print(f"    {'mixing SNR':>10s} {'channels':>8s} {'mean err':>9s} {'mean |err|':>10s} {'max |err|':>9s} "
          f"{'within 3 dB':>11s} {'no estimate':>11s}")
    for snr in sorted({r[2] for r in rows}):
        sel = [r for r in rows if r[2] == snr]
        errs = np.array([r[3] - r[2] for r in sel if r[3] is not None])
        missing = sum(r[3] is None for r in sel)
        if len(errs):
            print(f"    {snr:10.0f} {len(sel):8d} {errs.mean():+9.2f} {np.abs(errs).mean():10.2f} "
                  f"{np.abs(errs).max():9.2f} {np.mean(np.abs(errs) <= 3):11.0%} {missing:11d}")
        else:
            print(f"    {snr:10.0f} {len(sel):8d} {'-':>9s} {'-':>10s} {'-':>9s} {'-':>11s} {missing:11d}")
    errs = np.array([r[3] - r[2] for r in rows if r[3] is not None])
    if len(errs):
        print(f"    {'all':>10s} {len(rows):8d} {errs.mean():+9.2f} {np.abs(errs).mean():10.2f} "
              f"{np.abs(errs).max():9.2f} {np.mean(np.abs(errs) <= 3):11.0%} {sum(r[3] is None for r in rows):11d}")


# --------------------------------------------------------------------------- set 2: read speech
READ_PAIRS = {
    "en_libri": ["en_read_librispeech_1995-1837-0001/1995-1837-0001.wav",
                 "en_read_librispeech_1995-1837-0001/1995-1837-0001.wav"],
    "zh_aishell": ["zh_read_aishell1_BAC009S0724W0121/BAC009S0724W0121.wav",
                   "zh_mixed_dev/aishell1-BAC009S0150W0137.wav"],
    "zh_aishell2": ["zh_mixed_dev/aishell1-BAC009S0150W0193.wav", "zh_mixed_dev/aishell1-BAC009S0150W0247.wav"],
    "zh_funasr": ["zh_read_funasr_asr_example/asr_example_zh.wav", "zh_mixed_dev/aishell1-BAC009S0150W0304.wav"],
}
BABBLE = ["zh_mixed_dev/wenetnst-ID001.wav", "zh_mixed_dev/wenetnst-ID002.wav", "zh_mixed_dev/wenetnst-ID003.wav",
          "zh_mixed_dev/twnarration-5_3039_20231015000.wav", "zh_mixed_dev/twnarration-5_3039_20231015008.wav",
          "zh_mixed_dev/twnarration-5_3039_20231015017.wav"]
SR = 16000


def _read(rel: str) -> np.ndarray:
    x, sr = sf.read(REAL / rel, dtype="float32", always_2d=True)
    return soxr.resample(x[:, 0], sr, SR) if sr != SR else x[:, 0]


def _babble(n: int, rng) -> np.ndarray:
    out = np.zeros(n)
    for rel in BABBLE:
        x = _read(rel).astype(np.float64)
        x /= np.sqrt(np.mean(x**2)) + 1e-12
        out += np.resize(np.roll(x, int(rng.integers(len(x)))), n)
    return out


def _pink(n: int, rng) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    return np.fft.irfft(spec / np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0)), n)


def render_read(out: Path, snrs: list[float]) -> dict[str, dict]:
    import make_samples as ms

    truth_file = out / "mixing.json"
    if truth_file.exists():
        return json.loads(truth_file.read_text())
    audio = out / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    truth = {}
    rng = np.random.default_rng(7)
    for name, clips in READ_PAIRS.items():
        pause = np.zeros(SR, np.float32)
        first, second = _read(clips[0]), _read(clips[1])
        clean = np.concatenate([pause[: SR // 2], first, pause, second, pause]).astype(np.float64)
        clean *= 0.3 / np.max(np.abs(clean))
        inside = np.zeros(len(clean), bool)
        for s, e in ms.activity(clean.astype(np.float32)):
            inside[int(s * SR): int(e * SR)] = True
        p_speech = float(np.mean(clean[inside] ** 2))
        # the clips' own recording noise: their samples outside the active spans (50 ms guard), not
        # the digital zeros put between them
        clip = np.zeros(len(clean), bool)
        clip[SR // 2: SR // 2 + len(first)] = True
        clip[SR // 2 + len(first) + SR: SR // 2 + len(first) + SR + len(second)] = True
        guarded = np.convolve(inside, np.ones(int(0.1 * SR)), mode="same") > 0
        p_own = float(np.mean(clean[clip & ~guarded] ** 2)) if (clip & ~guarded).any() else 0.0
        for kind, make in (("white", lambda n: rng.standard_normal(n)), ("pink", lambda n: _pink(n, rng)),
                           ("babble", lambda n: _babble(n, rng))):
            for snr in snrs:
                noise = make(len(clean))
                noise *= np.sqrt(p_speech / 10 ** (snr / 10) / np.mean(noise**2))
                rid = f"{name}_{kind}_snr{int(snr):02d}"
                sf.write(audio / f"{rid}.flac", (clean + noise).astype(np.float32), SR, subtype="PCM_16")
                p_added = p_speech / 10 ** (snr / 10)
                truth[rid] = dict(snr_db=float(snr), telephone=False, noise=kind,
                                  snr_effective_db=round(10 * np.log10(p_speech / (p_added + p_own)), 2))
    truth_file.write_text(json.dumps(truth, indent=1))
    return truth


# -------------------------------------------------------------------------------- set 3: calls
CALLS = {
    "aws_autorepairs40.wav": "en_2ch_tel_aws_autorepairs40/Auto_Repairs_40_UTC_stereo.wav",
    "spokenwoz_MUL1011.wav": "en_2ch_tel_spokenwoz_MUL1011/MUL1011.wav",
    "azure_call120s.wav": "en_tel_azure_call120s/test_call_audio.wav",
    "pyannote_sample.wav": "en_tel_pyannote_sample/sample.wav",
    **{f"ami_4ch.ch{k}.wav": f"en_ami_meeting60s_4ch/sources/source{k}.wav" for k in range(4)},
    "librispeech_read.wav": "en_read_librispeech_1995-1837-0001/1995-1837-0001.wav",
}


def link_calls(out: Path) -> Path:
    """The real calls as an input folder of links (read in place under ../shared/realdata)."""
    audio = out / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    for name, rel in CALLS.items():
        link = audio / name
        if not link.exists() and (REAL / rel).exists():
            os.symlink(REAL / rel, link)
    return audio


def print_calls(items) -> None:
    print(f"  {'recording':22s} {'ch':>2s} {'SNR dB':>7s} {'speech dBFS':>11s} {'noise dBFS':>10s} {'floor dBFS':>10s} "
          f"{'band Hz':>7s} {'band':13s} {'clipped':>8s} {'speech s':>8s} {'noise s':>7s}  suggested")
    for item in items:
        cond = item.read(ConditionsStage.CONDITIONS)
        for ch in cond.channels:
            f = lambda v, w, d=1: f"{v:{w}.{d}f}" if v is not None else f"{'-':>{w}s}"  # noqa: E731
            print(f"  {item.recording_id:22s} {ch.channel:2d} {f(ch.snr_db, 7)} {f(ch.speech_level_dbfs, 11)} "
                  f"{f(ch.noise_level_dbfs, 10)} {f(ch.noise_floor_dbfs, 10)} {f(ch.bandwidth_hz, 7, 0)} "
                  f"{ch.bandwidth or '-':13s} {f(ch.clipped_share, 8, 5)} {ch.speech_seconds:8.1f} "
                  f"{ch.noise_seconds:7.1f}  " + (f"environment={cond.environment_suggested} device={cond.device_suggested}"
                                                 if ch.channel == 0 else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/bench_conditions")
    ap.add_argument("--choose-seeds", default="100-103")
    ap.add_argument("--report-seeds", default="200-207")
    ap.add_argument("--snrs", default="5,10,20,30")
    ap.add_argument("--skip", default="", help="comma list of sets to skip: stress, read, calls")
    args = ap.parse_args()
    quiet_environment()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = Path(args.work)
    snrs = [float(s) for s in args.snrs.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    workflow = Workflow()
    t0 = time.perf_counter()

    if "stress" not in skip:
        print(f"stress calls (make_stress.py), SNR forced to {args.snrs} dB; IPUs from the pipeline")
        for role, seed_text in (("choose", args.choose_seeds), ("report", args.report_seeds)):
            out = work / f"stress_{role}"
            truth = render_stress(out, seeds(seed_text), snrs)
            items = run_until_conditions(out / "audio", out, workflow)
            if role == "choose":
                print(f"  choosing conditions.guard_s on seeds {seed_text} (non-telephone channels): mean |err|, max |err| dB")
                for guard in GUARDS:
                    wf = dataclasses.replace(workflow, conditions=dataclasses.replace(workflow.conditions, guard_s=guard))
                    rows = [r for r in stress_errors(items, truth, wf, out / f"scratch_{guard}") if not r[4]]
                    errs = np.array([abs(r[3] - r[2]) if r[3] is not None else np.inf for r in rows])
                    print(f"    guard_s={guard:.1f}: {np.mean(errs[np.isfinite(errs)]):.2f}, {np.max(errs):.2f}"
                          + ("  <- default" if guard == workflow.conditions.guard_s else ""))
                continue
            rows = stress_errors(items, truth, workflow)
            summarise([r for r in rows if not r[4]], f"report seeds {seed_text}, wideband calls (SNR error = estimate - mixing)")
            tel = [r for r in rows if r[4]]
            if tel:
                summarise(tel, "telephone calls (300-3400 Hz + codec after mixing: delivered SNR differs from the mixing SNR)")
            bands = [(r[4], r[5]) for r in rows]
            ok = sum((b == "telephone") == t for t, b in bands)
            print(f"  bandwidth class: {ok}/{len(bands)} channels right (telephone calls -> telephone, "
                  f"the others -> wideband or wider)")
    if "read" not in skip:
        out = work / "read"
        truth = render_read(out, snrs)
        print("real read speech (LibriSpeech, AISHELL) + white / pink / real babble noise, mono; IPUs from the pipeline")
        items = run_until_conditions(out / "audio", out, workflow)
        rows = stress_errors(items, truth, workflow)
        summarise(rows, "all noises, against the mixing SNR")
        for kind in ("white", "pink", "babble"):
            summarise([r for r in rows if f"_{kind}_" in r[0]], kind)
        # the clean clips' own noise is part of the recording: the SNR actually delivered
        effective = [(rid, ch, truth[rid]["snr_effective_db"], est, tel, band) for rid, ch, _, est, tel, band in rows]
        print("  against the delivered SNR (mixed noise + the clips' own recording noise), by mixing SNR:")
        for snr in sorted({truth[r[0]]["snr_db"] for r in rows}):
            sel = [r for r in effective if truth[r[0]]["snr_db"] == snr and r[3] is not None]
            errs = np.array([r[3] - r[2] for r in sel])
            print(f"    {snr:10.0f}: delivered {min(r[2] for r in sel):5.1f}-{max(r[2] for r in sel):5.1f} dB, "
                  f"mean err {errs.mean():+.2f}, max |err| {np.abs(errs).max():.2f}, "
                  f"within 3 dB {np.mean(np.abs(errs) <= 3):.0%} of {len(sel)}")
    if "calls" not in skip:
        out = work / "calls"
        print("real calls (no truth): the estimates")
        items = run_until_conditions(link_calls(out), out, workflow)
        print_calls(items)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
