"""Mandarin given-transcript alignment on the real development clips (../shared/realdata/zh_mixed_dev):
is every character of a human transcript timed, in order, inside its IPU?

    .venv/bin/python bench/bench_zh_align.py                 # all 15 dev clips
    .venv/bin/python bench/bench_zh_align.py --json out.json # also the per-clip rows
    .venv/bin/python bench/bench_zh_align.py --set asr.min_word=0.03

Each clip is symlinked into an input folder (metadata language zh; the audio stays where it lies)
with its reference text beside it as `<clip>.transcript.json` (one utterance over the whole clip, as a
corpus with per-utterance transcripts gives it). The whole pipeline runs (`runner.run`, executor
local): the ASR stage aligns the given text instead of recognising it. A second run over the same clips
without the transcripts gives the ASR's own character times, the second source of timing.

Per clip and in total:
- `ref_units`: the reference's contract units (Han characters, Latin words, numbers: `units.pieces`);
- `rows`, `aligned` (timed by the aligner), `interpolated` (spread between neighbours, flagged);
- `missing`: reference units with no row (difflib on the unit sequences), `extra`: rows not in it;
- `out_of_order`: rows starting before the previous row ended (in time order), or whose time order
  differs from the transcript's;
- `outside_ipu`: rows not inside one IPU of their channel (segments.parquet);
- `one_unit_share`: rows that are one Han character or one Latin word / number;
- `asr_start_diff_ms`: median |start difference| between a transcript row and the ASR's row of the
  same character, over the characters the ASR got right (matched by difflib), with how many.
"""
from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "pipeline"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_zh import REALDATA, dev_clips  # noqa: E402

from duplexcorpus.asr.units import HAN, pieces  # noqa: E402

ONE_UNIT = re.compile(rf"[{HAN}]|[0-9]*[A-Za-z\u00c0-\u024f]+(?:['’\-]?[A-Za-z\u00c0-\u024f0-9]+)*|[0-9]+(?:[.,:][0-9]+)*%?")


def reference_units(text: str) -> list[str]:
    """The contract units of a reference transcript (punctuation dropped), lower-cased Latin."""
    return [u.lower() for u, _, _ in pieces(text, "zh") if u]


def stage(clips, folder: Path, transcripts: bool) -> Path:
    """Symlinks to the clips, metadata language zh, and (with `transcripts`) each reference beside
    its audio as `<clip>.transcript.json` (`duplexcorpus/transcripts.py`)."""
    import soundfile as sf

    if folder.exists():  # a kept run folder: its links again (the run's cache is reused)
        import shutil

        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    rows = ["recording_id,channel,speaker_id,language"]
    for c in clips:
        (folder / f"{c.name}.wav").symlink_to(c.audio.resolve())
        rows.append(f"{c.name},0,{c.name}_spk,zh")
        if transcripts:
            utterance = dict(channel=0, start=0.0, end=round(sf.info(c.audio).duration, 3), text=c.reference)
            (folder / f"{c.name}.transcript.json").write_text(json.dumps([utterance], ensure_ascii=False))
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return folder


def run_pipeline(inp: Path, out: Path, overrides: dict) -> float:
    from duplexcorpus.config import load_workflow
    from duplexcorpus.runner import run

    t0 = time.perf_counter()
    run(inp, out, load_workflow(None, overrides), executor="local", metadata=inp / "metadata.csv")
    return time.perf_counter() - t0


def measure(reference: str, rows, ipus, asr_rows=None) -> dict:
    """The alignment's numbers for one clip. `rows`: its words (DataFrame, one channel), `ipus`:
    its segments, `asr_rows`: the ASR run's words of the same clip (or None)."""
    import numpy as np

    ref = reference_units(reference)
    rows = rows.sort_values(["start", "end"], kind="stable")
    got = [w.lower() for w in rows.word]
    match = difflib.SequenceMatcher(a=ref, b=got, autojunk=False)
    matched = sum(b.size for b in match.get_matching_blocks())
    starts, ends = rows.start.to_numpy(), rows.end.to_numpy()
    overlaps = int(np.sum(starts[1:] < ends[:-1] - 1e-3)) if len(rows) > 1 else 0
    reordered = 0 if got == [u for u in ref if u in got] or matched == len(got) else len(got) - matched
    spans = list(zip(ipus.start, ipus.end))
    outside = sum(not any(s - 1e-3 <= a and b <= e + 1e-3 for s, e in spans) for a, b in zip(starts, ends))
    out = dict(ref_units=len(ref), rows=len(rows), aligned=int((~rows.interpolated).sum()),
               interpolated=int(rows.interpolated.sum()), missing=len(ref) - matched, extra=len(got) - matched,
               out_of_order=overlaps + reordered, outside_ipu=int(outside),
               one_unit_share=round(float(np.mean([bool(ONE_UNIT.fullmatch(w)) for w in rows.word])), 4) if len(rows) else 1.0)
    if asr_rows is not None and len(asr_rows) and len(rows):
        asr_rows = asr_rows.sort_values(["start", "end"], kind="stable")
        asr_words = [w.lower() for w in asr_rows.word]
        pairs = difflib.SequenceMatcher(a=got, b=asr_words, autojunk=False).get_matching_blocks()
        diffs = [abs(starts[b.a + k] - asr_rows.start.iloc[b.b + k]) for b in pairs for k in range(b.size)]
        out["asr_matched"] = len(diffs)
        out["asr_start_diff_ms"] = round(1000 * float(np.median(diffs)), 1) if diffs else None
    return out


SYNTHETIC = "zh_weekend_chat"  # data_samples: espeak-ng Mandarin, a time for every character (truth/words.parquet)


def synthetic_truth(folder: Path, overrides: dict) -> dict:
    """Timing truth: zh_weekend_chat from data_samples (synthetic speech: no use for judging ASR, exact
    for timing), its truth utterances given as the transcript (channel, start, end, text of each
    turn). Each row is matched to its truth character (difflib per channel); start and end errors."""
    import numpy as np
    import pandas as pd

    truth = pd.read_parquet(ROOT / "data_samples" / "truth" / "words.parquet")
    truth = truth[truth.recording_id == SYNTHETIC]
    inp = folder / "synthetic"
    if inp.exists():
        import shutil

        shutil.rmtree(inp)
    inp.mkdir(parents=True)
    (inp / f"{SYNTHETIC}.flac").symlink_to((ROOT / "data_samples" / "audio" / f"{SYNTHETIC}.flac").resolve())
    utterances = [dict(channel=int(ch), start=round(float(g.start.min()), 3), end=round(float(g.end.max()), 3),
                       text="".join(g.sort_values("index").word) if (g.language == "zh").all()
                       else " ".join(g.sort_values("index").word))
                  for (ch, _), g in truth.groupby(["channel", "utterance"])]
    (inp / f"{SYNTHETIC}.transcript.json").write_text(json.dumps(utterances, ensure_ascii=False))
    (inp / "metadata.csv").write_text(f"recording_id,channel,speaker_id,language\n{SYNTHETIC},0,A,zh\n{SYNTHETIC},1,B,zh\n")
    wall = run_pipeline(inp, folder / "out_synthetic", overrides)
    words = pd.read_parquet(folder / "out_synthetic" / "tables" / "words.parquet")
    ds, de = [], []
    rows = interpolated = missing = 0
    for ch in sorted(truth.channel.unique()):
        t = truth[truth.channel == ch].sort_values("start")
        w = words[words.channel == ch].sort_values("start")
        rows += len(w)
        interpolated += int(w.interpolated.sum())
        blocks = difflib.SequenceMatcher(a=t.word.str.lower().tolist(), b=w.word.str.lower().tolist(),
                                         autojunk=False).get_matching_blocks()
        missing += len(t) - sum(b.size for b in blocks)
        for b in blocks:
            for k in range(b.size):
                ds.append(w.start.iloc[b.b + k] - t.start.iloc[b.a + k])
                de.append(w.end.iloc[b.b + k] - t.end.iloc[b.a + k])
    ds, de = np.abs(ds), np.abs(de)
    return dict(recording=SYNTHETIC, wall_s=round(wall, 1), truth_units=len(truth), rows=rows, interpolated=interpolated,
                missing=missing, start_err_median_ms=round(1000 * float(np.median(ds)), 1),
                end_err_median_ms=round(1000 * float(np.median(de)), 1),
                start_within_50ms=round(float(np.mean(ds <= 0.05)), 3), end_within_50ms=round(float(np.mean(de <= 0.05)), 3),
                start_within_100ms=round(float(np.mean(ds <= 0.1)), 3))


def main() -> None:
    import pandas as pd
    import yaml

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="workflow override, e.g. asr.min_word=0.03 (repeatable)")
    ap.add_argument("--no-asr", action="store_true", help="skip the second (ASR) run")
    ap.add_argument("--synthetic", action="store_true",
                    help=f"also align data_samples {SYNTHETIC}'s truth text against its character times")
    ap.add_argument("--synthetic-only", action="store_true", help="only that (no real clips)")
    ap.add_argument("--keep", type=Path, help="run here (kept) instead of a temporary folder")
    ap.add_argument("--json", type=Path, help="write the per-clip rows here")
    args = ap.parse_args()
    if not (REALDATA / "zh_mixed_dev").exists():
        sys.exit(f"{REALDATA / 'zh_mixed_dev'} not present (set DUPLEXCORPUS_REALDATA)")
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.sets)}
    clips = dev_clips()
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="dxc-bench-zh-align-"))
    if args.synthetic_only:
        print(f"timing truth ({SYNTHETIC}, synthetic speech, its truth text given): {synthetic_truth(tmp, overrides)}")
        return
    wall = run_pipeline(stage(clips, tmp / "given", True), tmp / "out_given", overrides)
    words = pd.read_parquet(tmp / "out_given" / "tables" / "words.parquet")
    segments = pd.read_parquet(tmp / "out_given" / "tables" / "segments.parquet")
    asr_words, asr_wall = None, None
    if not args.no_asr:
        asr_wall = run_pipeline(stage(clips, tmp / "asr", False), tmp / "out_asr", overrides)
        asr_words = pd.read_parquet(tmp / "out_asr" / "tables" / "words.parquet")
    sources = sorted(words.source.unique().tolist())
    rows = []
    for c in clips:
        mine = words[words.recording_id == c.name]
        theirs = asr_words[asr_words.recording_id == c.name] if asr_words is not None else None
        rows.append(dict(clip=c.name, kind=c.kind, **measure(c.reference, mine, segments[segments.recording_id == c.name],
                                                             theirs)))
    total = {k: sum(r[k] for r in rows) for k in ("ref_units", "rows", "aligned", "interpolated", "missing", "extra",
                                                 "out_of_order", "outside_ipu")}
    total["one_unit_share"] = round(float((words.word.map(lambda w: bool(ONE_UNIT.fullmatch(w)))).mean()), 4)
    if asr_words is not None:
        import numpy as np

        total["asr_matched"] = sum(r.get("asr_matched", 0) for r in rows)
        total["asr_start_diff_ms"] = round(float(np.median([r["asr_start_diff_ms"] for r in rows
                                                            if r.get("asr_start_diff_ms") is not None])), 1)
    print(f"overrides: {overrides or 'none'}; run with transcripts {wall:.1f} s"
          + (f", ASR run {asr_wall:.1f} s" if asr_wall else "") + f"; word sources {sources}")
    cols = ["clip", "kind", "ref_units", "rows", "aligned", "interpolated", "missing", "extra", "out_of_order",
            "outside_ipu", "one_unit_share", "asr_matched", "asr_start_diff_ms"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in [*rows, dict(clip="total", kind="", **total)]:
        print("| " + " | ".join(str(r.get(k, "")) for k in cols) + " |")
    synthetic = synthetic_truth(tmp, overrides) if args.synthetic else None
    if synthetic:
        print(f"timing truth ({SYNTHETIC}, synthetic speech, its truth text given): {synthetic}")
    if args.json:
        args.json.write_text(json.dumps(dict(overrides=overrides, clips=rows, total=total, synthetic=synthetic),
                                        ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
