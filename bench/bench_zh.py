"""Mandarin CER per kind (read, code-switch, spontaneous) on the real clips in ../shared/realdata,
the pipeline's ASR beside plain faster-whisper base in the same run.

    .venv/bin/python bench/bench_zh.py                     # dev (zh_mixed_dev) and report sets
    .venv/bin/python bench/bench_zh.py --only dev --set asr.beam_size=8 --no-plain   # a dev choice
    .venv/bin/python bench/bench_zh.py --json out.json     # also the per-clip rows

Sets: `dev` = zh_mixed_dev (15 clips, kinds from its SOURCES.tsv), for choosing settings; `report`
= the other zh_* folders (AISHELL-1 and FunASR read sentences, the FunASR Paraformer examples: 1 and
2 spontaneous-sounding, 3 code-switched), for judging. The audio is read where it lies (symlinks).

Systems, on the same embedded Whisper base (`asr/engine.py`'s model resolution, sha256-checked):
- plain: faster-whisper `WhisperModel(...).transcribe(clip, language="zh")` with its defaults (beam 5,
  temperature fallback, VAD off), int8 on the CPU;
- ours: the whole pipeline (`runner.run(..., executor="local")`, metadata language zh, optional
  `--set` workflow overrides) and the text of its words.parquet rows in time order.
Scoring as zh_mixed_dev/README.md says (`text.mandarin_cer`): traditional -> simplified, no
punctuation, Latin lower case, digits as Chinese digits, CER over Han characters plus whole English
words; per kind the errors over the reference units of its clips (micro average).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "pipeline"))

from duplexcorpus.realdata import kaldi_text  # noqa: E402
from duplexcorpus.text import join_text, mandarin_cer  # noqa: E402

# ../shared/realdata beside the checkout, or wherever DUPLEXCORPUS_REALDATA points (a worktree elsewhere)
REALDATA = Path(os.environ.get("DUPLEXCORPUS_REALDATA", ROOT.parent / "shared" / "realdata"))
KINDS = ("read", "code-switch", "spontaneous")


@dataclass(frozen=True)
class Clip:
    name: str
    audio: Path
    reference: str
    kind: str
    set: str  # dev | report


def dev_clips(root: Path = REALDATA) -> list[Clip]:
    folder = root / "zh_mixed_dev"
    texts = kaldi_text(folder / "text")
    with open(folder / "SOURCES.tsv", encoding="utf-8") as f:
        kinds = {r["id"]: r["kind"] for r in csv.DictReader(f, delimiter="\t")}
    return [Clip(k, folder / f"{k}.wav", texts[k], kinds[k], "dev") for k in sorted(texts)]


def report_clips(root: Path = REALDATA) -> list[Clip]:
    out = []
    for folder in sorted(root.glob("zh_read_*")):
        for key, text in sorted(kaldi_text(folder / "text").items()):
            out.append(Clip(f"{folder.name}-{key}", folder / f"{key}.wav", text, "read", "report"))
    silver = root / "zh_funasr_paraformer_examples_silver"
    if silver.exists():
        for key, text in sorted(kaldi_text(silver / "text.paraformer_asr_silver").items()):
            # example_3 mixes an English sentence with Mandarin (README of ../shared/realdata)
            kind = "code-switch" if key == "example_3" else "spontaneous"
            out.append(Clip(f"paraformer-{key}", silver / f"{key}.wav", text, kind, "report"))
    return out


def plain_texts(clips: list[Clip]) -> tuple[dict[str, str], float]:
    """Plain faster-whisper base, per clip, language zh; seconds spent decoding (model loaded)."""
    import soundfile as sf
    from faster_whisper import WhisperModel

    from duplexcorpus.asr.engine import EMBEDDED_WHISPER, resolve_whisper

    model = WhisperModel(resolve_whisper(EMBEDDED_WHISPER), device="cpu", compute_type="int8", cpu_threads=2)
    out, t0 = {}, time.perf_counter()
    for c in clips:
        audio, sr = sf.read(c.audio, dtype="float32")
        assert sr == 16_000, c.audio
        segments, _ = model.transcribe(audio if audio.ndim == 1 else audio.mean(1), language="zh")
        out[c.name] = "".join(s.text for s in segments)
    return out, time.perf_counter() - t0


def pipeline_texts(clips: list[Clip], overrides: dict) -> tuple[dict[str, str], float, dict]:
    """The pipeline over symlinks to the clips (metadata language zh); text of the words in time
    order, the run's wall time, and the word-row contract shares."""
    import pandas as pd

    from duplexcorpus.asr.units import has_han
    from duplexcorpus.config import load_workflow
    from duplexcorpus.runner import run

    tmp = Path(tempfile.mkdtemp(prefix="dxc-bench-zh-"))
    inp = tmp / "in"
    inp.mkdir()
    rows = ["recording_id,channel,speaker_id,language"]
    for c in clips:
        (inp / f"{c.name}.wav").symlink_to(c.audio.resolve())
        rows.append(f"{c.name},0,{c.name}_spk,zh")
    (inp / "metadata.csv").write_text("\n".join(rows) + "\n")
    t0 = time.perf_counter()
    run(inp, tmp / "out", load_workflow(None, overrides), executor="local", metadata=inp / "metadata.csv")
    wall = time.perf_counter() - t0
    words = pd.read_parquet(tmp / "out" / "tables" / "words.parquet")
    out = {c.name: join_text(words[words.recording_id == c.name].sort_values("start").word.tolist()) for c in clips}
    zh = words[words.word.map(has_han)]
    multi = zh.word.str.len() > 1
    shares = dict(rows=len(words), han_rows=len(zh), han_multi_char=int(multi.sum()),
                  en_rows=int((words.language == "en").sum()), interpolated=int(words.interpolated.sum()))
    return out, wall, shares


def table(clips: list[Clip], systems: dict[str, dict[str, str]]) -> list[dict]:
    rows = []
    for sset in ("dev", "report"):
        mine = [c for c in clips if c.set == sset]
        if not mine:
            continue
        for kind in (*KINDS, "all"):
            group = [c for c in mine if kind in ("all", c.kind)]
            if not group:
                continue
            row = dict(set=sset, kind=kind, clips=len(group))
            for sys_name, texts in systems.items():
                scores = [mandarin_cer(c.reference, texts.get(c.name, "")) for c in group]
                units = sum(s["units"] for s in scores)
                row[sys_name] = round(sum(s["errors"] for s in scores) / max(1, units), 4)
                row["units"] = units
            rows.append(row)
    return rows


def main() -> None:
    import yaml

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("dev", "report"), help="one set (default: both)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="workflow override for the pipeline, e.g. asr.beam_size=8 (repeatable)")
    ap.add_argument("--no-plain", action="store_true", help="skip plain faster-whisper")
    ap.add_argument("--json", type=Path, help="write the table and per-clip texts here")
    args = ap.parse_args()
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.sets)}
    clips = [c for c in dev_clips() + report_clips() if args.only in (None, c.set)]
    systems: dict[str, dict[str, str]] = {}
    ours, wall, shares = pipeline_texts(clips, overrides)
    systems["ours"] = ours
    plain_s = None
    if not args.no_plain:
        systems["plain"], plain_s = plain_texts(clips)
    rows = table(clips, systems)
    cols = ["set", "kind", "clips", "units", *systems]
    print(f"overrides: {overrides or 'none'}; pipeline wall {wall:.1f} s (whole run, model load included)"
          + (f"; plain decode {plain_s:.1f} s" if plain_s is not None else ""))
    print(f"word rows: {shares}")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    for c in clips:
        print(f"  {c.set:6s} {c.kind:11s} {c.name:40s} ref {c.reference}")
        for name, texts in systems.items():
            print(f"  {'':60s} {name:5s} {texts.get(c.name, '')}  (CER {mandarin_cer(c.reference, texts.get(c.name, ''))['rate']:.3f})")
    if args.json:
        args.json.write_text(json.dumps(dict(overrides=overrides, rows=rows, shares=shares, texts=systems),
                                        ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
