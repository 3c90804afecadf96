"""ASR: WER/CER on the real recordings in ../shared/realdata, and throughput against whisperx's
own per-channel transcribe + align, on the same two-channel audio with the same model.

    .venv/bin/python bench/bench_asr.py --realdata      # WER (en) / CER (zh), embedded Whisper base
    .venv/bin/python bench/bench_asr.py --throughput    # ours vs whisperx per channel, ratio + WER

Throughput compares, on data_samples' two-channel recordings (espeak speech, exact word truth):
- ours: the ASR stage over the pipeline's IPUs, both channels of all recordings batched, words aligned
  on the same encoder output;
- whisperx: `whisperx.load_model(...).transcribe(channel)` per channel (its own pyannote VAD, batch 8),
  then word alignment per channel. whisperx.align needs a wav2vec2 model, which cannot be had
  offline, so the baseline aligns its segments with the same Whisper cross-attention aligner
  (a fresh encoder pass per segment, as a separate alignment step must). The alignment method is
  the same on both sides; what differs is batching, clip planning and encoder reuse.
Both are timed after their models are loaded; the printed ratio is baseline time / our time.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from duplexcorpus.config import load_workflow  # noqa: E402
from duplexcorpus.runner import run  # noqa: E402


def realdata_report(root: Path) -> list[dict]:
    import pandas as pd

    from duplexcorpus.realdata import asr_items, stage_items
    from duplexcorpus.text import error_rate, join_text

    items = asr_items(root)
    tmp = Path(tempfile.mkdtemp(prefix="dxc-asr-real-"))
    run(stage_items(items, tmp / "in"), tmp / "out", load_workflow(None), executor="local")
    words = pd.read_parquet(tmp / "out" / "tables" / "words.parquet")
    rows = []
    for it in items:
        hyp = join_text(words[words.recording_id == it.name].sort_values("start").word.tolist())
        er = error_rate(it.reference, hyp)
        rows.append(dict(item=it.name, language=it.language, reference=it.kind,
                         metric="CER" if it.language == "zh" else "WER", rate=round(er["rate"], 4),
                         units=er["units"], hypothesis=hyp))
    return rows


def throughput(overrides: dict | None = None) -> None:
    import pandas as pd
    import soundfile as sf
    import whisperx

    from duplexcorpus.evaluate import score_words
    from duplexcorpus.stages.asr import AsrStage
    from duplexcorpus.stages.base import WorkItem
    from duplexcorpus.storage import stage_outputs
    from duplexcorpus.asr.engine import Clip, WhisperEngine, resolve_whisper

    tmp = Path(tempfile.mkdtemp(prefix="dxc-asr-tp-"))
    wf = load_workflow(ROOT / "workflows" / "samples.yaml", overrides)
    out = tmp / "out"
    run(ROOT / "data_samples" / "audio", out, wf, executor="local")
    outputs = {rid: {stage: str(path) for stage, path in stages.items()} for rid, stages in stage_outputs(out).items()}
    recs = pd.read_parquet(out / "tables" / "recordings.parquet")
    two = recs[recs.num_channels == 2].recording_id.tolist()
    items = []
    for rid in two:
        rec = json.loads((Path(outputs[rid]["ingest"]) / "recording.json").read_text())
        items.append(WorkItem(input={"recording_id": rid, "paths": []}, recording=rec, outputs=outputs[rid]))
    audio_s = sum(float(recs[recs.recording_id == r].duration.iloc[0]) * 2 for r in two)

    stage = AsrStage(wf)
    stage.ensure_setup()
    dirs = [tmp / "ours" / r for r in two]
    for d in dirs:
        d.mkdir(parents=True)
    t0 = time.perf_counter()
    stage.process_batch(items, dirs)
    ours = time.perf_counter() - t0

    model_dir = resolve_whisper(wf.asr.model)
    wx = whisperx.load_model(model_dir, "cpu", compute_type="int8", language="en", vad_method="pyannote",
                             threads=wf.asr.threads)
    aligner = WhisperEngine(wf.asr.model, "cpu", "int8", wf.asr.threads)
    hyp_rows = []
    t0 = time.perf_counter()
    for rid in two:
        stereo, sr = sf.read(Path(outputs[rid]["decrosstalk"]) / "analysis.flac", dtype="float32")
        lang = "zh" if rid.startswith("zh") else "en"
        for ch in range(2):
            # task given explicitly: whisperx 3.8.6 otherwise re-reads it as a token id when the language changes
            result = wx.transcribe(stereo[:, ch].copy(), batch_size=8, language=lang, task="transcribe")
            for seg in result["segments"]:
                a, b = int(seg["start"] * sr), int(seg["end"] * sr)
                d = aligner.run([Clip(stereo[a:b, ch].copy(), lang, None, seg["text"])])[0]
                for w in d.words:
                    hyp_rows.append(dict(recording_id=rid, channel=ch, word=w.word, start=seg["start"] + w.start,
                                         end=seg["start"] + w.end, score=w.probability, interpolated=False))
    baseline = time.perf_counter() - t0

    # WER of both on the same recordings (truth: data_samples/truth/words.parquet)
    base_dir = tmp / "baseline_tables"
    base_dir.mkdir()
    pd.DataFrame(hyp_rows).to_parquet(base_dir / "words.parquet")
    recs[recs.recording_id.isin(two)].to_parquet(base_dir / "recordings.parquet")
    ours_tables = tmp / "ours_tables"
    ours_tables.mkdir()
    ours_words = []
    for rid, d in zip(two, dirs):
        for w in json.loads((d / "words.json").read_text()):
            ours_words.append(dict(w, recording_id=rid))
    pd.DataFrame(ours_words).to_parquet(ours_tables / "words.parquet")
    recs[recs.recording_id.isin(two)].to_parquet(ours_tables / "recordings.parquet")
    s_ours = score_words(ours_tables, ROOT / "data_samples" / "truth")
    s_base = score_words(base_dir, ROOT / "data_samples" / "truth")
    print(f"two-channel audio: {len(two)} recordings, {audio_s:.0f} channel-seconds, model {wf.asr.model}, "
          f"{wf.asr.threads} thread(s)")
    print(f"{'':28s} {'seconds':>8s} {'x real time':>11s} {'WER en':>7s} {'CER zh':>7s} {'start ms':>8s} {'end ms':>7s} {'bc recall':>9s}")
    for name, sec, sc in (("ours (batched stage)", ours, s_ours), ("whisperx per channel", baseline, s_base)):
        print(f"{name:28s} {sec:8.1f} {audio_s / sec:11.1f} {sc['wer_en']:7.3f} {sc['cer_zh']:7.3f} "
              f"{sc['start_median_ms']:8.1f} {sc['end_median_ms']:7.1f} {sc['backchannel_recall']:9.2f}")
    print(f"speed-up (whisperx time / ours): {baseline / ours:.2f}x")
    print("error rate by recording (ours / whisperx):",
          {r: f"{s_ours['error_rate_by_recording'][r]:.3f} / {s_base['error_rate_by_recording'][r]:.3f}" for r in two})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--realdata", action="store_true")
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="workflow override for our side, e.g. asr.pack_gap=1.0")
    args = parser.parse_args()
    import yaml

    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.sets)}
    if args.realdata or not args.throughput:
        rows = realdata_report(ROOT.parent / "shared" / "realdata")
        print(f"{'item':34s} {'lang':4s} {'ref':6s} {'metric':6s} {'rate':>6s} {'units':>5s}  hypothesis")
        for r in rows:
            print(f"{r['item']:34s} {r['language']:4s} {r['reference']:6s} {r['metric']:6s} {r['rate']:6.3f} "
                  f"{r['units']:5d}  {r['hypothesis'][:70]}")
    if args.throughput or not args.realdata:
        throughput(overrides)


if __name__ == "__main__":
    main()
