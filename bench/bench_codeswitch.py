"""English inside Mandarin on our generated code-switched dialogues (bench/stress/make_codeswitch.py):
the pipeline's ASR with `asr.codeswitch` on and off, and plain faster-whisper base per channel.

    .venv/bin/python bench/bench_codeswitch.py --seeds choose                 # 100-119: for choosing
    .venv/bin/python bench/bench_codeswitch.py --seeds report                 # 200-219: for reporting
    .venv/bin/python bench/bench_codeswitch.py --seeds choose --systems on --set asr.codeswitch_min_english=0.5

Systems, on the same embedded Whisper base (int8, CPU):
- on / off: the whole pipeline (`runner.run(..., executor="local")`, metadata language zh per channel,
  diarization and non-verbal stages off: neither changes what a two-channel call's ASR hears) with
  `asr.codeswitch` true / false, plus any `--set` overrides (applied to `on` only); the stages before
  ASR are run once first (asr off) into the same output folder, so each system's time is its ASR
  stage and the cheap stages after it;
- plain: faster-whisper `WhisperModel.transcribe(channel, language="zh", word_timestamps=True)` on
  each whole channel; its Latin words count as English.

Scores against the generator's exact truth (words with their language):
- mixed error rate: `text.mandarin_cer` (Han characters plus whole English words) of each channel's
  words in time order against the channel's truth words, summed over channels (micro);
- the same per utterance group (code-switched / Mandarin-only): each hypothesis word goes to the
  truth utterance of its channel that holds its midpoint (0.3 s slack either side, nearest first);
- English recall: truth English words found as a Latin row with language en (plain: any Latin row)
  on the same channel in the same utterance, the same word after normalisation (one row matches one
  word); precision: such matched rows over all English rows; spans: utterances whose whole English
  span came back;
- false English rows on Mandarin-only utterances (and English rows in no utterance: leak or noise);
- time: seconds each system took (the model load included for the pipeline systems; a system whose
  ASR outputs are already in the run folder's cache is not decoded again and shows only its reuse).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "pipeline"))

from duplexcorpus.text import cer_units, join_text, mandarin_cer, normalise  # noqa: E402

SLACK = 0.3  # s: a hypothesis word belongs to an utterance whose span +- this holds its midpoint


def load_generator():
    spec = importlib.util.spec_from_file_location("make_codeswitch", ROOT / "bench" / "stress" / "make_codeswitch.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_codeswitch"] = mod
    spec.loader.exec_module(mod)
    return mod


def generate(seeds: list[int], out: Path) -> Path:
    """The dialogues for `seeds` under `out` (rendered once; reused while the seeds match)."""
    gen = load_generator()
    stamp = out / "seeds.json"
    if not (stamp.exists() and json.loads(stamp.read_text()) == seeds):
        gen.render_set(seeds, out)
        stamp.write_text(json.dumps(seeds))
    return out


def latin(word: str) -> bool:
    return bool(cer_units(word)) and not any("\u3400" <= ch <= "\u9fff" for ch in word)


# ----------------------------------------------------------------------------------------- systems
def pipeline_words(data: Path, run_dir: Path, overrides: dict) -> tuple[list[dict], float, dict]:
    """Word rows (recording_id, channel, word, start, end, language) of one pipeline run into
    `run_dir` (stages before ASR already cached there), its wall time, and the code-switch clips it
    tried / accepted in this run."""
    import pandas as pd

    from duplexcorpus.config import load_workflow
    from duplexcorpus.runner import run

    t0 = time.perf_counter()
    run(data / "audio", run_dir, load_workflow(None, {**BASE, **overrides}), executor="local",
        metadata=data / "audio" / "metadata.csv")
    wall = time.perf_counter() - t0
    words = pd.read_parquet(run_dir / "tables" / "words.parquet")
    rows = words[["recording_id", "channel", "word", "start", "end", "language"]].to_dict("records")
    tried = accepted = 0
    recordings = set(words.recording_id)
    if overrides.get("asr.codeswitch"):  # the code-switch clips of this run's ASR outputs
        for p in (run_dir / "cache" / "asr").glob("*/*/clips.json"):
            clips = json.loads(p.read_text())
            if p.parent.parent.name in recordings and any(c.get("role") == "codeswitch" for c in clips):
                tried += sum(c.get("role") == "codeswitch" for c in clips)
                accepted += sum(bool(c.get("accepted")) for c in clips if c.get("role") == "codeswitch")
    return rows, wall, dict(codeswitch_tried=tried, codeswitch_accepted=accepted)


BASE = {"diarization.enabled": False, "nonverbal.enabled": False}


def plain_words(data: Path) -> tuple[list[dict], float]:
    """Plain faster-whisper base per channel, language zh, word timestamps; decode seconds."""
    import soundfile as sf
    from faster_whisper import WhisperModel

    from duplexcorpus.asr.engine import EMBEDDED_WHISPER, resolve_whisper

    model = WhisperModel(resolve_whisper(EMBEDDED_WHISPER), device="cpu", compute_type="int8", cpu_threads=2)
    rows, t0 = [], time.perf_counter()
    for path in sorted((data / "audio").glob("cs_*.flac")):
        audio, sr = sf.read(path, dtype="float32")
        assert sr == 16_000, path
        for ch in range(audio.shape[1]):
            segments, _ = model.transcribe(audio[:, ch], language="zh", word_timestamps=True)
            for s in segments:
                for w in s.words or []:
                    for unit in cer_units(w.word):  # one row per character / Latin word, like ours
                        rows.append(dict(recording_id=path.stem, channel=ch, word=unit, start=w.start, end=w.end,
                                         language="en" if latin(unit) else "zh"))
    return rows, time.perf_counter() - t0


# ----------------------------------------------------------------------------------------- scoring
def score(truth_words, utterances, hyp: list[dict]) -> dict:
    """The measures of the module docstring for one system's word rows."""
    import pandas as pd

    hyp = pd.DataFrame(hyp, columns=["recording_id", "channel", "word", "start", "end", "language"])
    hyp = hyp[hyp.word.map(lambda w: bool(cer_units(w)))]  # punctuation-only rows carry no unit
    hyp = hyp.assign(mid=(hyp.start + hyp.end) / 2, en=hyp.word.map(latin) & (hyp.language == "en"))
    total = dict(errors=0, units=0)
    groups = {True: dict(errors=0, units=0), False: dict(errors=0, units=0)}
    en_truth = en_found = span_total = span_found = false_en = stray_en = 0
    for (rid, ch), tw in truth_words.groupby(["recording_id", "channel"]):
        hw = hyp[(hyp.recording_id == rid) & (hyp.channel == ch)].sort_values("start")
        r = mandarin_cer(join_text(tw.sort_values(["start", "index"]).word.tolist()), join_text(hw.word.tolist()))
        total["errors"] += r["errors"]
        total["units"] += r["units"]
        utts = utterances[(utterances.recording_id == rid) & (utterances.channel == ch)]
        owner = {}
        for i, w in hw.iterrows():
            near = [(0.0 if u.start <= w.mid <= u.end else min(abs(w.mid - u.start), abs(w.mid - u.end)), u.utterance)
                    for u in utts.itertuples() if u.start - SLACK <= w.mid <= u.end + SLACK]
            owner[i] = min(near)[1] if near else None
        stray_en += int(sum(1 for i, w in hw.iterrows() if owner[i] is None and w.en))
        for u in utts.itertuples():
            mine = hw.loc[[i for i in hw.index if owner[i] == u.utterance]]
            ref = tw[tw.utterance == u.utterance].sort_values("index")
            r = mandarin_cer(u.text, join_text(mine.word.tolist()))
            groups[bool(u.code_switched)]["errors"] += r["errors"]
            groups[bool(u.code_switched)]["units"] += r["units"]
            if not u.code_switched:
                false_en += int(mine.en.sum())
                continue
            pool = [normalise(w) for w in mine[mine.en].word]
            english = [normalise(w) for w in ref[ref.language == "en"].word]
            found = 0
            for w in english:
                if w in pool:
                    pool.remove(w)
                    found += 1
            en_truth += len(english)
            en_found += found
            span_total += 1
            span_found += found == len(english)
    en_rows = int(hyp.en.sum())
    rate = lambda g: round(g["errors"] / max(1, g["units"]), 4)  # noqa: E731
    return dict(mixed_er=rate(total), er_code_switched=rate(groups[True]), er_mandarin_only=rate(groups[False]),
                en_recall=round(en_found / max(1, en_truth), 4), en_precision=round(en_found / max(1, en_rows), 4),
                en_spans=f"{span_found}/{span_total}", en_rows=en_rows,
                false_en_mandarin_only=false_en, stray_en=stray_en, units=total["units"])


def main() -> None:
    import pandas as pd
    import yaml

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="choose", help="choose (100-119) | report (200-219) | e.g. 100-104")
    ap.add_argument("--data", type=Path, help="where the dialogues are rendered (default /tmp/dxc-cs-<seeds>)")
    ap.add_argument("--systems", default="on,off,plain", help="comma list of on, off, plain")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="workflow override for the `on` system, e.g. asr.codeswitch_min_english=0.5")
    ap.add_argument("--json", type=Path, help="write the table here")
    args = ap.parse_args()
    gen = load_generator()
    seeds = {"choose": list(gen.CHOOSE_SEEDS), "report": list(gen.REPORT_SEEDS)}.get(args.seeds) \
        or gen.parse_seeds(args.seeds)
    data = generate(seeds, args.data or Path(f"/tmp/dxc-cs-{args.seeds}"))
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.sets)}
    truth = pd.read_parquet(data / "truth" / "words.parquet")
    utterances = pd.read_parquet(data / "truth" / "utterances.parquet")
    conds = pd.read_parquet(data / "truth" / "conditions.parquet")
    systems = args.systems.split(",")
    run_dir = data / "run"
    rows = []
    if {"on", "off"} & set(systems):
        t0 = time.perf_counter()
        run(data, run_dir, {"asr.enabled": False})
        print(f"stages before ASR: {time.perf_counter() - t0:.1f} s")
    for name in systems:
        if name == "plain":
            hyp, secs = plain_words(data)
            extra = {}
        else:
            hyp, secs, extra = pipeline_words(data, run_dir, {"asr.codeswitch": name == "on",
                                                              **(overrides if name == "on" else {})})
        rows.append(dict(system=name, **score(truth, utterances, hyp), seconds=round(secs, 1), **extra))
        print(rows[-1], flush=True)
    cs_utts = int(utterances.code_switched.sum())
    print(f"seeds {seeds[0]}-{seeds[-1]}: {len(conds)} calls, {conds.duration_s.sum() / 60:.1f} min, "
          f"{len(utterances)} utterances ({cs_utts} code-switched, {int((truth.language == 'en').sum())} English "
          f"words); overrides for `on`: {overrides or 'none'}")
    cols = ["system", "mixed_er", "er_code_switched", "er_mandarin_only", "en_recall", "en_precision", "en_spans",
            "false_en_mandarin_only", "stray_en", "seconds"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    if args.json:
        args.json.write_text(json.dumps(dict(seeds=seeds, overrides=overrides, rows=rows), indent=1))


def run(data: Path, run_dir: Path, overrides: dict) -> None:
    from duplexcorpus.config import load_workflow
    from duplexcorpus.runner import run as run_pipeline

    run_pipeline(data / "audio", run_dir, load_workflow(None, {**BASE, **overrides}), executor="local",
                 metadata=data / "audio" / "metadata.csv")


if __name__ == "__main__":
    main()
