"""Mono mixes of the stress dialogues: who-speaks-when and turn-taking events from one mixed channel
beside the same calls processed from their two channels.

    .venv/bin/python bench/bench_diarization_stress.py --choose            # seeds 100-119 (choose here)
    .venv/bin/python bench/bench_diarization_stress.py --report            # seeds 200-219 (report only)
    .venv/bin/python bench/bench_diarization_stress.py --choose --seeds 100-105 --set diarization.threshold=0.7

Per seed, bench/stress/make_stress.py renders the two-channel call (leak, noise, gain, codec, two
files) and `mono_mix` the same dialogue as one device hears it: the sum of the two close-talk
tracks plus the seed's noise (and telephone band + codec when drawn), on the same truth timeline.
Both go through the pipeline in-process (`executor="local"`) with **ASR off**: diarization, DER and
the timing events (overlap, gap, backchannel) need no words. The mono files carry no speaker count:
the diarizer estimates it.

Scores against the generator's truth (speaker = channel of the clean track):
- DER by pyannote.metrics, pooled over the calls (no collar with overlap scored, and 0.25 s collar),
  with its components (missed, false alarm, confusion as shares of reference speech). The
  hypothesis is the `segments` table (what events are computed from): speaker = channel on the
  two-channel run, the diarized `speaker_id` on the mono run; "mono raw" is the diarizer's own
  output (turns.rttm, overlap kept).
- overlap / gap / backchannel F1 (duplexcorpus.evaluate.score_run, 200 ms collar). Mono speakers
  are mapped to truth channels by pyannote's optimal DER mapping before scoring (a backchannel is
  scored on its speaker's channel); a speaker left unmapped scores as a wrong channel.
The issue's target: mono F1 within 0.15 of two-channel F1 for each event type.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import yaml

from duplexcorpus.config import load_workflow
from duplexcorpus.evaluate import score_run
from duplexcorpus.runfolder import RunFolder
from duplexcorpus.runner import run
from duplexcorpus.stages.diarize import DiarizeStage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench" / "stress"))
import make_stress  # noqa: E402

EVENTS = ("overlap", "gap", "backchannel")
SEEDS = {"choose": range(100, 120), "report": range(200, 220)}
UNMAPPED = 99  # channel given to a diarized speaker that the optimal mapping leaves without a truth speaker


def render_mono(data: Path, mono: Path, declare_speakers: bool = False) -> None:
    """One mono file per rendered call (same recording ids, so the truth tables apply); with
    `declare_speakers`, metadata.csv says the channel carries 2 speakers, as a user's metadata
    would for a known two-party call (the diarizer is then held to 2)."""
    audio = mono / "audio"
    shutil.rmtree(audio, ignore_errors=True)
    audio.mkdir(parents=True)
    make_stress._CACHE_DIR = data / "tts_cache"  # the synthesis is cached: rendering again is cheap
    cond = pd.read_parquet(data / "truth" / "conditions.parquet")
    rows = ["recording_id,channel,language" + (",speakers" if declare_speakers else "")]
    for c in cond.itertuples():
        wave, rate = make_stress.mono_mix(make_stress.draw_conditions(int(c.seed)))
        sf.write(audio / f"{c.recording_id}.flac", wave, rate, subtype="PCM_16")
        rows.append(f"{c.recording_id},0,{c.language}" + (",2" if declare_speakers else ""))
    (audio / "metadata.csv").write_text("\n".join(rows) + "\n")


def annotation(rows, label):
    from pyannote.core import Annotation, Segment

    ann = Annotation()
    for k, r in enumerate(rows.itertuples()):
        ann[Segment(float(r.start), float(r.end)), k] = str(label(r))
    return ann


def rttm_annotation(path: Path):
    from pyannote.core import Annotation, Segment

    ann = Annotation()
    for k, line in enumerate(path.read_text().splitlines()):
        p = line.split()
        ann[Segment(float(p[3]), float(p[3]) + float(p[4])), k] = p[7]
    return ann


class Der:
    """Pooled DER over calls, with components, for one collar."""

    def __init__(self, collar: float):
        from pyannote.metrics.diarization import DiarizationErrorRate

        self.metric = DiarizationErrorRate(collar=collar, skip_overlap=False)

    def __call__(self, ref, hyp) -> float:
        return self.metric(ref, hyp)

    def summary(self) -> dict[str, float]:
        acc = self.metric.accumulated_
        total = max(acc["total"], 1e-9)
        return {"der": abs(self.metric), "miss": acc["missed detection"] / total,
                "fa": acc["false alarm"] / total, "conf": acc["confusion"] / total}


def mapped_tables(run_dir: Path, truth_seg: pd.DataFrame, work: Path) -> tuple[Path, dict]:
    """The mono run's segments and events with `channel` = the truth channel of their speaker
    (pyannote's optimal mapping per recording), written as a tables folder score_run can read."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    tables = run_dir / "tables"
    seg = pd.read_parquet(tables / "segments.parquet")
    ev = pd.read_parquet(tables / "events.parquet")
    der = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    maps = {}
    for rid, hyp_rows in seg.groupby("recording_id"):
        ref = annotation(truth_seg[truth_seg.recording_id == rid], lambda r: r.channel)
        hyp = annotation(hyp_rows, lambda r: r.speaker_id)
        maps[rid] = {h: int(r) for h, r in der.optimal_mapping(ref, hyp).items()}
    chan = lambda f: [maps.get(r.recording_id, {}).get(r.speaker_id, UNMAPPED) if isinstance(r.speaker_id, str)  # noqa: E731
                      else (None if pd.isna(r.channel) else r.channel) for r in f.itertuples()]
    out = work / "tables"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    seg.assign(channel=chan(seg)).to_parquet(out / "segments.parquet")
    ev.assign(channel=np.array([np.nan if c is None else c for c in chan(ev)], float)).to_parquet(out / "events.parquet")
    shutil.copy(tables / "recordings.parquet", out / "recordings.parquet")
    return out, maps


def without_overlapped(run_dir: Path, mapped: Path, work: Path) -> Path:
    """The mapped mono tables as the stage wrote them before `overlapped_segments` existed: the
    segments under another speaker's piece dropped and the timing events computed again from the
    rest (turntaking.detect_events, what the events stage runs with ASR off)."""
    from duplexcorpus.config import EventsConfig
    from duplexcorpus.records import Segment
    from duplexcorpus.turntaking import detect_events

    seg = pd.read_parquet(mapped / "segments.parquet")
    keep = ~seg.attributes.astype(str).str.contains('"overlapped": true')
    seg = seg[keep]
    rows = []
    for rid, group in seg.groupby("recording_id"):
        segs = [Segment(rid, int(r.channel), r.speaker_id, float(r.start), float(r.end), float(r.confidence))
                for r in group.sort_values("start").itertuples()]
        for e in detect_events(segs, EventsConfig()):
            rows.append(dict(recording_id=rid, type=e.type, channel=np.nan if e.channel is None else float(e.channel),
                             start=e.start, end=e.end, attributes=json.dumps(e.attributes)))
    out = work / "tables"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    seg.to_parquet(out / "segments.parquet")
    pd.DataFrame(rows).to_parquet(out / "events.parquet")
    shutil.copy(mapped / "recordings.parquet", out / "recordings.parquet")
    return out


def diarizer_only(mono: Path, truth_seg: pd.DataFrame, sets: dict, declare_speakers: bool) -> None:
    """The embedded diarizer alone on the mono files (no pipeline run; what `mono raw` scores):
    per call and pooled DER with components, speakers found, speed. `sets` are `diarization.*`
    overrides (threshold, step, constrained_assignment, ...); fast enough to compare settings."""
    import dataclasses

    import torch

    from duplexcorpus.config import DiarizationConfig
    from duplexcorpus.diarize.pipeline import Diarizer
    from duplexcorpus.stages.diarize import DiarizeStage

    cfg = dataclasses.replace(DiarizationConfig(), **{k.split(".", 1)[1]: v for k, v in sets.items()
                                                     if k.startswith("diarization.")})
    torch.set_num_threads(cfg.threads)
    diarizer = Diarizer(device="cpu", **DiarizeStage.embedded_options(cfg))
    print(f"diarizer only: {cfg}")
    ders = {c: Der(c) for c in (0.0, 0.25)}
    audio_s = wall = cpu = 0.0
    found = []
    for path in sorted((mono / "audio").glob("*.flac")):
        rid = path.stem
        wave, rate = sf.read(str(path), dtype="float32")
        if rate != 16000:
            import librosa

            wave = librosa.resample(wave, orig_sr=rate, target_sr=16000)
        bounds = (2, 2) if declare_speakers else (None, None)
        t0, c0 = time.perf_counter(), time.process_time()
        hyp = diarizer.annotation(wave, *bounds)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        audio_s += len(wave) / 16000
        ref = annotation(truth_seg[truth_seg.recording_id == rid], lambda r: r.channel)
        from pyannote.metrics.diarization import DiarizationErrorRate

        parts = DiarizationErrorRate(collar=0.0, skip_overlap=False)(ref, hyp, detailed=True)
        for c, d in ders.items():
            d(ref, hyp)
        total = max(parts["total"], 1e-9)
        found.append(len(hyp.labels()))
        print(f"{rid:12s} DER {parts['diarization error rate']:6.3f} miss {parts['missed detection'] / total:6.3f} "
              f"FA {parts['false alarm'] / total:6.3f} conf {parts['confusion'] / total:6.3f} | "
              f"{len(hyp.labels())} speakers", flush=True)
    d0, d25 = ders[0.0].summary(), ders[0.25].summary()
    print(f"pooled ({len(found)} calls, {audio_s / 60:.1f} min): DER {d0['der']:.3f} (missed / FA / confusion "
          f"{d0['miss']:.3f} / {d0['fa']:.3f} / {d0['conf']:.3f}); 0.25 s collar {d25['der']:.3f}; "
          f"2 speakers found in {sum(n == 2 for n in found)} of {len(found)}; "
          f"{audio_s / wall:.1f}x real time (wall), {audio_s / cpu:.1f}x (process CPU), {cfg.threads} thread(s)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--choose", action="store_true", help="seeds 100-119 (parameters may be chosen here)")
    mode.add_argument("--report", action="store_true", help="seeds 200-219 (never choose parameters here)")
    ap.add_argument("--seeds", help='a subset of the range, e.g. "100-105"')
    ap.add_argument("--work", default="/tmp/dxc-diar-stress")
    ap.add_argument("--jobs", type=int, default=2, help="rendering processes")
    ap.add_argument("--collar", type=float, default=0.2, help="event collar (s)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="a workflow override for the mono run, e.g. diarization.threshold=0.7")
    ap.add_argument("--mono-only", action="store_true", help="reuse the two-channel run of an earlier call")
    ap.add_argument("--diarizer-only", action="store_true",
                    help="no pipeline runs: the embedded diarizer alone on the mono files (DER, speed)")
    ap.add_argument("--declare-speakers", action="store_true",
                    help="the mono metadata says 2 speakers (as a user's would), holding the diarizer to 2")
    a = ap.parse_args(argv)
    label = "choose" if a.choose else "report"
    seeds = make_stress.parse_seeds(a.seeds) if a.seeds else list(SEEDS[label])
    if not set(seeds) <= set(SEEDS[label]):
        ap.error(f"--seeds must lie in {SEEDS[label].start}-{SEEDS[label].stop - 1} with --{label}")

    work = Path(a.work) / label
    data, mono = work / "data", work / "mono"
    t0 = time.perf_counter()
    cond_path = data / "truth" / "conditions.parquet"
    if not cond_path.exists() or sorted(pd.read_parquet(cond_path).seed) != sorted(seeds):
        make_stress.render_set(seeds, data, a.jobs)
        render_mono(data, mono, a.declare_speakers)
        print(f"rendered in {time.perf_counter() - t0:.0f} s")
    elif a.declare_speakers != ("speakers" in (mono / "audio" / "metadata.csv").read_text().splitlines()[0]):
        render_mono(data, mono, a.declare_speakers)
    truth = data / "truth"
    truth_seg = pd.read_parquet(truth / "segments.parquet")
    cond = pd.read_parquet(truth / "conditions.parquet").set_index("recording_id")

    mono_over = {"asr.enabled": False}
    for pair in a.sets:
        key, value = pair.split("=", 1)
        mono_over[key] = yaml.safe_load(value)
    if a.diarizer_only:
        diarizer_only(mono, truth_seg, mono_over, a.declare_speakers)
        return
    runs = {"two-channel": (data / "audio", {"asr.enabled": False}), "mono": (mono / "audio", mono_over)}
    times = {}
    for name, (audio, overrides) in runs.items():
        out = work / f"run_{name}"
        if name == "two-channel" and a.mono_only and (out / "tables" / "events.parquet").exists():
            continue
        shutil.rmtree(out, ignore_errors=True)
        t1 = time.perf_counter()
        res = run(audio, out, load_workflow(None, overrides), executor="local")
        times[name] = time.perf_counter() - t1
        print(f"{name}: {res.recordings} recordings, {res.quarantined} quarantined, "
              f"{res.audio_seconds / 60:.1f} min of audio in {times[name]:.0f} s")

    # DER
    two_run, mono_run = work / "run_two-channel", work / "run_mono"
    two_seg = pd.read_parquet(two_run / "tables" / "segments.parquet")
    mono_seg = pd.read_parquet(mono_run / "tables" / "segments.parquet")
    mono_folder = RunFolder(mono_run)
    systems = ("two-channel", "mono", "mono raw")
    ders = {(s, c): Der(c) for s in systems for c in (0.0, 0.25)}
    print(f"\n{'recording':12s} {'dialogue':12s} {'dur':>5s} {'tel':>3s} {'snr':>4s} | DER (no collar) "
          f"{'2ch':>6s} {'mono':>6s} {'raw':>6s} | mono speakers")
    for rid in cond.index:
        ref = annotation(truth_seg[truth_seg.recording_id == rid], lambda r: r.channel)
        hyps = {"two-channel": annotation(two_seg[two_seg.recording_id == rid], lambda r: r.channel),
                "mono": annotation(mono_seg[mono_seg.recording_id == rid], lambda r: r.speaker_id),
                "mono raw": rttm_annotation(mono_folder.path(rid, DiarizeStage.TURNS))}
        row = {s: [ders[s, c](ref, hyps[s]) for c in (0.0, 0.25)][0] for s in systems}
        c = cond.loc[rid]
        print(f"{rid:12s} {c.dialogue:12s} {c.duration_s:5.1f} {'y' if c.telephone else 'n':>3s} {c.snr_db:4.0f} | "
              f"{'':15s} {row['two-channel']:6.3f} {row['mono']:6.3f} {row['mono raw']:6.3f} | "
              f"{len(hyps['mono raw'].labels())}", flush=True)

    minutes = cond.duration_s.sum() / 60
    print(f"\n{label} seeds {min(seeds)}-{max(seeds)}: {len(seeds)} calls, {minutes:.1f} min; ASR off; "
          f"DER pooled (missed / false alarm / confusion as shares of reference speech)")
    print(f"{'system':12s} {'DER':>6s} {'miss':>6s} {'FA':>6s} {'conf':>6s} | {'DER.25':>6s}")
    for s in systems:
        d0, d25 = ders[s, 0.0].summary(), ders[s, 0.25].summary()
        print(f"{s:12s} {d0['der']:6.3f} {d0['miss']:6.3f} {d0['fa']:6.3f} {d0['conf']:6.3f} | {d25['der']:6.3f}")

    # events
    scored, maps = mapped_tables(mono_run, truth_seg, work / "mono_mapped")
    unmapped = sum(len(set(mono_seg[mono_seg.recording_id == r].speaker_id) - set(m)) for r, m in maps.items())
    two_rep = score_run(two_run / "tables", truth, a.collar)
    mono_rep = score_run(scored, truth, a.collar)
    plain_rep = score_run(without_overlapped(mono_run, scored, work / "mono_plain"), truth, a.collar)
    print(f"\nevents, {a.collar * 1000:.0f} ms collar (mono speakers mapped to truth channels; "
          f"{unmapped} diarized speakers left unmapped); 'no ovl seg': mono without the segments under "
          "another speaker's piece")
    print(f"{'event':12s} {'2ch F1':>7s} {'mono F1':>7s} {'diff':>6s} | {'mono P':>6s} {'mono R':>6s} | "
          f"within 0.15 | {'no ovl seg':>10s}")
    for e in EVENTS:
        f2, fm = two_rep[e]["f1"], mono_rep[e]["f1"]
        print(f"{e:12s} {f2:7.3f} {fm:7.3f} {fm - f2:+6.3f} | {mono_rep[e]['precision']:6.3f} "
              f"{mono_rep[e]['recall']:6.3f} | {'yes' if abs(fm - f2) <= 0.15 else 'NO':11s} | {plain_rep[e]['f1']:10.3f}")
    print(f"IPU F1 (per truth channel): 2ch {two_rep['ipu']['f1']:.3f}, mono {mono_rep['ipu']['f1']:.3f}")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
