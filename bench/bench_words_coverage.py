"""Words: is every stretch of speech given its words? IPUs with words (share of IPUs and of speech
seconds, and why the others have none) on data_samples and on real calls in ../shared/realdata (read
where they lie, never copied), WER where a reference exists, backchannel-word recall and WER/CER on
data_samples against the exact espeak truth, and the ASR stage's own time on data_samples.

    .venv/bin/python bench/bench_words_coverage.py                 # this checkout
    .venv/bin/python bench/bench_words_coverage.py --time 2        # + the ASR stage timed twice
    # stress calls only, the ASR with the defaults and with a variant beside them (same stages before)
    .venv/bin/python bench/bench_words_coverage.py --stress-only --stress 100,122,124,132,134,136 \\
        --variant "old:asr.filler_prompt_zh=嗯。对。是的。呃，啊。好的。"
    # an older commit (the numbers before): run this file against its package
    git worktree add /tmp/dxc-before 2730087 && PYTHONPATH=/tmp/dxc-before/pipeline \\
        .venv/bin/python bench/bench_words_coverage.py --work /tmp/dxc-cov-before

Coverage is computed from the segments table (`words` per IPU), so an older checkout without
`no_words_reason` is measured the same way; its reasons read "unknown".
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REAL_CALLS = {  # folder -> (audio file, channels)
    "en_tel_pyannote_sample": ("sample.wav", 1),
    "en_2ch_tel_spokenwoz_MUL1011": ("MUL1011.wav", 2),
    "en_2ch_tel_aws_autorepairs40": ("Auto_Repairs_40_UTC_stereo.wav", 2),
}


def stage_real_calls(realdata: Path, folder: Path) -> Path:
    """Symlinks to the calls (never copies) and a metadata.csv saying every channel is English."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["recording_id,channel,speaker_id,language"]
    for name, (audio, channels) in REAL_CALLS.items():
        src = realdata / name / audio
        if not src.exists():
            continue
        link = folder / f"{name}{src.suffix}"
        if not link.exists():
            link.symlink_to(src.resolve())
        rows += [f"{name},{c},{name}_spk{c},en" for c in range(channels)]
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return folder


def coverage(out: Path) -> dict[str, dict]:
    """Per recording (and 'all'): IPUs, share with words, share of speech seconds with words, reasons."""
    import pandas as pd

    segs = pd.read_parquet(out / "tables" / "segments.parquet")
    attrs = segs.attributes.map(json.loads)
    keep = ~attrs.map(lambda a: bool(a.get("overlapped"))).to_numpy()  # inside another IPU (stats.asr_coverage)
    segs, attrs = segs[keep], attrs[keep]
    segs = segs.assign(n=attrs.map(lambda a: a.get("words", 0)), why=attrs.map(lambda a: a.get("no_words_reason", "unknown")),
                       dur=segs.end - segs.start)
    rows = {}
    for rid, g in [*segs.groupby("recording_id"), ("all", segs)]:
        has = g[g.n > 0]
        rows[rid] = dict(ipus=len(g), ipus_with_words=round(len(has) / max(len(g), 1), 4),
                         speech_s=round(float(g.dur.sum()), 1),
                         speech_with_words=round(float(has.dur.sum() / max(g.dur.sum(), 1e-9)), 4),
                         without=dict(Counter(g[g.n == 0].why)))
    return rows


def pyannote_wer(out: Path, realdata: Path) -> dict | None:
    import pandas as pd

    from duplexcorpus.realdata import asr_items
    from duplexcorpus.text import error_rate, join_text

    item = next((i for i in asr_items(realdata) if i.name == "pyannote_telephone_call"), None)
    if item is None:
        return None
    words = pd.read_parquet(out / "tables" / "words.parquet")
    hyp = join_text(words[words.recording_id == "en_tel_pyannote_sample"].sort_values("start").word.tolist())
    return error_rate(item.reference, hyp)


def time_asr(out: Path, workflow, repeats: int) -> list[float]:
    """The ASR stage alone (model loaded, upstream stages cached) over every recording of a run:
    (wall, CPU) seconds per repeat; on a shared machine the CPU time is the steadier figure."""
    import pandas as pd

    from duplexcorpus.stages.asr import AsrStage
    from duplexcorpus.stages.base import WorkItem
    from duplexcorpus.storage import stage_outputs

    outputs = {rid: {stage: str(path) for stage, path in stages.items()} for rid, stages in stage_outputs(out).items()}
    rids = pd.read_parquet(out / "tables" / "recordings.parquet").recording_id.tolist()
    items = []
    for rid in rids:
        rec = json.loads((Path(outputs[rid]["ingest"]) / "recording.json").read_text())
        items.append(WorkItem(input={"recording_id": rid, "paths": []}, recording=rec, outputs=outputs[rid]))
    stage = AsrStage(workflow)
    stage.ensure_setup()
    times = []
    for k in range(repeats):
        dirs = [Path(tempfile.mkdtemp(prefix=f"dxc-asr-time{k}-")) for _ in rids]
        t0, c0 = time.perf_counter(), time.process_time()
        errors = stage.process_batch(items, dirs)
        times.append((round(time.perf_counter() - t0, 2), round(time.process_time() - c0, 2)))
        assert not any(errors), errors
    return times


def stress_listener_tokens(seeds: str, work: Path, variants: dict[str, dict] | None = None) -> None:
    """Stress calls with the ASR on: IPUs with words, WER/CER and listener-token recall per language
    against the generator's exact word truth. `variants` (name -> workflow overrides): the ASR run
    again with each, beside the defaults, on the same stages before it (run once, asr off)."""
    import shutil

    import pandas as pd

    from bench.stress.make_stress import parse_seeds, render_set
    from duplexcorpus.config import load_workflow
    from duplexcorpus.evaluate import score_words
    from duplexcorpus.runner import run

    render_set(parse_seeds(seeds), work)
    meta = pd.read_csv(work / "audio" / "metadata.csv")
    systems = {"defaults": {}, **(variants or {})}
    if variants:
        run(work / "audio", work / "before_asr", load_workflow(None, {"asr.enabled": False}), executor="local",
            metadata=work / "audio" / "metadata.csv")
    for name, overrides in systems.items():
        out = work / ("out" if not variants else f"out_{name}")
        if variants:
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(work / "before_asr", out)
        run(work / "audio", out, load_workflow(None, overrides), executor="local",
            metadata=work / "audio" / "metadata.csv")
        cov = coverage(out)
        ipus = sum(r["ipus"] for r in cov.values())
        print(f"stress {seeds} [{name}]: IPUs with words "
              f"{sum(r['ipus'] * r['ipus_with_words'] for r in cov.values()) / max(ipus, 1):.3f} of {ipus}, speech "
              f"seconds with words {sum(r['speech_s'] * r['speech_with_words'] for r in cov.values()) / max(sum(r['speech_s'] for r in cov.values()), 1e-9):.3f}")
        for lang, rows in meta.groupby("language"):
            sc = score_words(out / "tables", work / "truth", sorted(set(rows.recording_id)))
            rate = sc["wer_en"] if lang == "en" else sc["cer_zh"]
            print(f"stress {seeds} [{name}] {lang}: {'WER' if lang == 'en' else 'CER'} {rate:.4f}  listener-token "
                  f"recall {sc['backchannel_recall']:.3f} of {sc['backchannel_units']} units")


def main() -> None:
    import yaml

    from duplexcorpus.config import load_workflow
    from duplexcorpus.evaluate import score_words
    from duplexcorpus.runner import run

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "dxc-cov")
    ap.add_argument("--realdata", type=Path, default=ROOT.parent / "shared" / "realdata")
    ap.add_argument("--time", type=int, default=0, help="time the ASR stage on data_samples this many times")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--stress", metavar="SEEDS",
                    help='also stress calls (bench/stress, listener tokens drawn per seed): "200-209" to report, '
                         '"100-119" to choose on')
    ap.add_argument("--stress-only", action="store_true", help="only the stress calls")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE",
                    help="also run with this override, beside the defaults, on the same recordings "
                         "(repeatable; the same NAME twice gathers its overrides)")
    args = ap.parse_args()
    import duplexcorpus

    print(f"package: {Path(duplexcorpus.__file__).parent}")
    variants: dict[str, dict] = {}
    for spec in args.variant:
        name, _, setting = spec.partition(":")
        key, _, value = setting.partition("=")
        variants.setdefault(name, {})[key] = yaml.safe_load(value)
    if args.stress_only:
        stress_listener_tokens(args.stress, args.work / "stress", variants)
        return
    # the defaults, and each variant beside them on the same recordings (a run folder each)
    for name, overrides in {"defaults": {}, **variants}.items():
        suffix = "" if name == "defaults" else f"_{name}"
        label = "" if not variants else f" [{name}]"
        samples_wf = load_workflow(ROOT / "workflows" / "samples.yaml", overrides)
        runs = {"data_samples": args.work / f"samples{suffix}"}
        if name == "defaults":
            timed = (runs["data_samples"], samples_wf)  # --time times the defaults
        run(ROOT / "data_samples" / "audio", runs["data_samples"], samples_wf, executor="local")
        if not args.skip_real:
            runs["realdata calls"] = args.work / f"real{suffix}"
            run(stage_real_calls(args.realdata, args.work / "real_in"), runs["realdata calls"],
                load_workflow(None, overrides), executor="local")
        print(f"{'set':15s} {'recording':34s} {'IPUs':>5s} {'with words':>10s} {'speech s':>8s} {'s with words':>12s}  without words{label}")
        for set_name, out in runs.items():
            for rid, r in coverage(out).items():
                print(f"{set_name:15s} {rid:34s} {r['ipus']:5d} {r['ipus_with_words']:10.3f} {r['speech_s']:8.1f} "
                      f"{r['speech_with_words']:12.3f}  {r['without'] or ''}")
        sc = score_words(runs["data_samples"] / "tables", ROOT / "data_samples" / "truth")
        print(f"data_samples{label}: WER en {sc['wer_en']:.4f}  CER zh {sc['cer_zh']:.4f}  backchannel recall "
              f"{sc['backchannel_recall']:.3f}  start/end median {sc['start_median_ms']:.1f}/{sc['end_median_ms']:.1f} ms")
        if "realdata calls" in runs:
            wer = pyannote_wer(runs["realdata calls"], args.realdata)
            if wer:
                print(f"pyannote telephone call{label}: WER {wer['rate']:.4f} over {wer['units']} reference words")
    if args.stress:
        stress_listener_tokens(args.stress, args.work / "stress", variants)
    if args.time:
        print(f"ASR stage on data_samples (8 recordings), (wall s, CPU s): {time_asr(*timed, args.time)}")


if __name__ == "__main__":
    main()
