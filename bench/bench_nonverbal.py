"""Non-verbal events on real sounds: real laughter mixed into two-channel stress calls at known times,
and laughter-free real speech for false alarms. Prints precision / recall / F1 (200 ms collar on
both boundaries) per event type, the right-channel share, false laughter events per hour, and the
non-verbal stage's share of a whole run's time on data_samples.

    .venv/bin/python bench/bench_nonverbal.py --choose           # seeds 100-119: choose thresholds here
    .venv/bin/python bench/bench_nonverbal.py --report           # seeds 200-239: report only
    .venv/bin/python bench/bench_nonverbal.py --false-alarms     # real calls and read speech (../shared/realdata)
    .venv/bin/python bench/bench_nonverbal.py --time-share       # a whole default run on data_samples

Mixing (`mix_set`): each seed's call is rendered by bench/stress/make_stress.py (delivered as one
two-channel file, wideband: `two_file` and `telephone` are forced off, every other condition is the
seed's own: leak delay / level, reverberant leak, noise, gain difference). Real laughter from
../shared/realdata/laughter_isolated_whisper_timestamped (AGPL repository: read there, never copied
into the project) is then added at known times: 3 laughs per call, each on a random channel, each
one of the two clips (laugh1, 4.3 s; laugh2, 0.7 s; whole), speed-perturbed
by U(0.9, 1.1), at U(-12, 0) dB against the channel's own speech level, placed where that channel
is silent (at least 0.3 s from its own speech; it may overlap the other speaker: a listener's
laugh), and leaked into the other channel with the call's own leak delay and level (and room
response when the call's leak is reverberant), both through the call's channel gains and output
scale. Truth: one `laughter` event per laugh, on its channel, from the first to the last 10 ms
frame of the clip within 25 dB of the clip's loudest frame.

Scoring: hypotheses are the run's `laughter` events (YAMNet's, source `yamnet`, and Whisper's captions,
source `whisper_caption`) (and breath / cough / sigh, which have no truth
here: every one is counted as a false alarm per hour of the mixed calls). Right-channel share: of
the truth laughs that some hypothesis overlaps on any channel, the share whose overlapping
hypotheses include one on the right channel and none on the other.

**Thresholds are chosen on the choose seeds (100-119) only**; the report seeds (200-239) are run
once to report. The laughter-free set is the real calls and read clips named in FALSE_ALARM_SET.
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
import scipy.signal
import soundfile as sf
import soxr

from duplexcorpus.config import load_workflow
from duplexcorpus.metrics import match_intervals
from duplexcorpus.runner import run

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench" / "stress"))
import make_stress  # noqa: E402

REALDATA = (ROOT.parent / "shared" / "realdata") if (ROOT.parent / "shared" / "realdata").exists() else Path("/work/shared/realdata")
LAUGHS = REALDATA / "laughter_isolated_whisper_timestamped"
SR = make_stress.SR
COLLAR = 0.2
LAUGHS_PER_CALL = 3
FALSE_ALARM_SET = [  # (path relative to realdata, recording id)
    ("en_2ch_tel_spokenwoz_MUL1011/MUL1011.wav", "fa_spokenwoz_MUL1011"),
    ("en_2ch_tel_aws_autorepairs40/Auto_Repairs_40_UTC_stereo.wav", "fa_aws_autorepairs40"),
    ("en_tel_azure_call120s/test_call_audio.wav", "fa_azure_call120s"),
    ("en_tel_pyannote_sample/sample.wav", "fa_pyannote_sample"),
    ("en_read_librispeech_1995-1837-0001/1995-1837-0001.wav", "fa_librispeech"),
    ("zh_read_aishell1_BAC009S0724W0121/BAC009S0724W0121.wav", "fa_aishell"),
    ("zh_read_funasr_asr_example/asr_example_zh.wav", "fa_funasr_example"),
]
BENCH_SETTINGS = {"asr.enabled": False, "diarization.enabled": False}


def laugh_clips() -> list[tuple[str, np.ndarray]]:
    """The real laughs at the stress calls' rate (16 kHz), mono."""
    out = []
    for name in ("laugh1", "laugh2"):
        audio, sr = sf.read(LAUGHS / f"{name}.mp3", always_2d=True, dtype="float32")
        out.append((name, soxr.resample(audio.mean(axis=1), sr, SR).astype(np.float32)))
    return out


def audible_span(x: np.ndarray, within_db: float = 25.0) -> tuple[float, float]:
    """First and last 10 ms frame within `within_db` of the loudest one (seconds into x)."""
    hop = SR // 100
    n = len(x) // hop
    e = 10 * np.log10(np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(e >= e.max() - within_db)
    return loud[0] * hop / SR, (loud[-1] + 1) * hop / SR


def _level_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-12)


def mix_call(seed: int, out: Path, clips) -> list[dict]:
    """Render the seed's call (one wideband two-channel file), add the laughs, return their truth."""
    c = make_stress.draw_conditions(seed, two_file=False, telephone=False)
    result = make_stress.render(c, out)
    path = out / "audio" / f"{c.recording_id}.flac"
    mixed, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == SR
    mixed = mixed.T.copy()
    rng = np.random.default_rng([seed, 13])
    own = {ch: sorted((s["start"], s["end"]) for s in result["segments"] if s["channel"] == ch) for ch in (0, 1)}
    scale = 10 ** (result["conditions"]["output_scale_db"] / 20)
    gains = (10 ** (c.gain_db_ch0 / 20), 10 ** (c.gain_db_ch1 / 20))
    rir = make_stress.room_impulse_response(c.rt60_s, np.random.default_rng([seed, 1])) if c.reverb else None
    delay = int(round(c.leak_delay_ms * SR / 1000))
    duration = mixed.shape[1] / SR
    truth, placed = [], []
    for k in range(LAUGHS_PER_CALL):
        name, clip = clips[int(rng.integers(len(clips)))]
        speed = rng.uniform(0.9, 1.1)
        clip = soxr.resample(clip, SR, SR / speed).astype(np.float32)
        a, b = audible_span(clip)
        ch = int(rng.integers(2))
        rel_db = rng.uniform(-12, 0)
        speech = np.concatenate([mixed[ch, int(s * SR): int(e * SR)] for s, e in own[ch]]) if own[ch] else clip
        level = _level_db(speech / (gains[ch] * scale)) if own[ch] else -20.0  # the clean speech level
        clip = clip * 10 ** ((level + rel_db - _level_db(clip[int(a * SR): int(b * SR)])) / 20)
        for _ in range(200):  # a place where this channel is silent (its own speech 0.3 s away)
            t0 = rng.uniform(0.5, duration - len(clip) / SR - 0.5)
            s, e = t0 + a, t0 + b
            if all(e + 0.3 <= os or s - 0.3 >= oe for os, oe in own[ch]) and \
                    all(e + 0.5 <= ps or s - 0.5 >= pe for ps, pe, _ in placed):
                break
        else:
            continue
        i0 = int(round(t0 * SR))
        seg = clip[: mixed.shape[1] - i0]
        mixed[ch, i0: i0 + len(seg)] += seg * gains[ch] * scale
        leak = seg if rir is None else scipy.signal.fftconvolve(seg, rir)[: len(seg)].astype(np.float32)
        j0 = i0 + delay
        leak = leak[: max(0, mixed.shape[1] - j0)]
        mixed[1 - ch, j0: j0 + len(leak)] += leak * 10 ** (c.leak_db / 20) * gains[1 - ch] * scale
        placed.append((s, e, ch))
        truth.append(dict(recording_id=c.recording_id, type="laughter", channel=ch, start=round(s, 3),
                          end=round(e, 3), clip=name, speed=round(speed, 3), rel_db=round(rel_db, 1)))
    peak = float(np.abs(mixed).max())
    if peak > 0.99:
        mixed *= 0.99 / peak
    sf.write(path, mixed.T, SR, subtype="PCM_16")
    result["laughs"] = truth
    return [result]


def mix_set(seeds: list[int], out: Path, tts_cache: Path | None = None) -> pd.DataFrame:
    out.mkdir(parents=True, exist_ok=True)
    make_stress._CACHE_DIR = tts_cache or out / "tts_cache"  # espeak results by text, voice and rate
    make_stress._CACHE_DIR.mkdir(parents=True, exist_ok=True)
    clips = laugh_clips()
    results = []
    for seed in seeds:
        results += mix_call(seed, out, clips)
    make_stress.write_tables(results, out)
    truth = pd.DataFrame([t for r in results for t in r["laughs"]])
    truth.to_csv(out / "truth" / "laughs.csv", index=False)
    return truth


def _events(out: Path) -> pd.DataFrame:
    ev = pd.read_parquet(out / "tables" / "events.parquet")
    return ev


def _prf(truth: pd.DataFrame, hyp: pd.DataFrame) -> dict:
    """Laughter P / R / F1 with the collar on both boundaries."""
    tp = fp = fn = 0
    for rid in sorted(set(truth.recording_id) | set(hyp.recording_id)):
        t, h = truth[truth.recording_id == rid], hyp[hyp.recording_id == rid]
        for ch in (0, 1):
            m = match_intervals([(r.start, r.end) for r in t[t.channel == ch].itertuples()],
                                [(r.start, r.end) for r in h[h.channel == ch].itertuples()], COLLAR)
            tp, fp, fn = tp + m.tp, fp + m.fp, fn + m.fn
    p = tp / (tp + fp) if tp + fp else 0.0
    rc = tp / (tp + fn) if tp + fn else 0.0
    return dict(tp=tp, fp=fp, fn=fn, precision=p, recall=rc, f1=2 * p * rc / (p + rc) if p + rc else 0.0)


def score(truth: pd.DataFrame, events: pd.DataFrame, hours: float) -> dict:
    """P / R / F1 of laughter (collar), true positives per source, right-channel share (with how many
    laughs some event overlaps at all), false alarms per hour per type."""
    hyp = events[events.type == "laughter"]
    rep: dict = {}
    right = attributed = 0
    found_by_clip: dict[str, list[int]] = {}
    for r in truth.itertuples():
        h = hyp[hyp.recording_id == r.recording_id]
        over = h[(h.start < r.end) & (h.end > r.start)]
        found_by_clip.setdefault(r.clip, [0, 0])[1] += 1
        if len(over):
            attributed += 1
            right += int(set(over.channel) == {r.channel})
            found_by_clip[r.clip][0] += 1
    rep["laughter"] = _prf(truth, hyp)
    rep["laughter_tp_by_source"] = {src: _prf(truth, hyp[hyp.source == src])["tp"] for src in sorted(set(hyp.source))}
    rep["found_by_clip"] = {k: f"{a} of {n}" for k, (a, n) in sorted(found_by_clip.items())}  # any overlap
    rep["right_channel"] = dict(share=right / attributed if attributed else float("nan"), laughs_detected=attributed,
                                laughs=len(truth))
    for kind in ("breath", "cough", "sigh"):
        rep[kind] = dict(events=int((events.type == kind).sum()), per_hour=float((events.type == kind).sum() / hours))
    leaks = events[(events.type == "crosstalk") & (events.source == "nonverbal")]
    rep["suppressed_leaks"] = int(len(leaks))
    return rep


def run_mixed(seeds: list[int], work: Path, overrides: dict | None = None, rerender: bool = False,
              keep: bool = False) -> dict:
    """Mix (unless already mixed for these seeds), run, score. `keep`: reuse the run folder's cache
    (a changed `nonverbal` setting re-runs only that stage and those after it)."""
    data, out = work / "data", work / "run"
    marker = data / "seeds.json"
    if rerender or not marker.exists() or json.loads(marker.read_text()) != seeds:
        shutil.rmtree(data, ignore_errors=True)
        t = time.time()
        mix_set(seeds, data, work.parent / "tts_cache")
        marker.write_text(json.dumps(seeds))
        print(f"mixed {len(seeds)} calls in {time.time() - t:.0f} s -> {data}")
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    settings = dict(BENCH_SETTINGS, **(overrides or {}))
    run(data / "audio", out, load_workflow(None, settings), executor="local")
    truth = pd.read_csv(data / "truth" / "laughs.csv")
    hours = pd.read_parquet(data / "truth" / "conditions.parquet").duration_s.sum() / 3600
    return score(truth, _events(out), hours)


def rescore(work: Path) -> dict:
    data, out = work / "data", work / "run"
    truth = pd.read_csv(data / "truth" / "laughs.csv")
    hours = pd.read_parquet(data / "truth" / "conditions.parquet").duration_s.sum() / 3600
    return score(truth, _events(out), hours)


def false_alarms(work: Path, overrides: dict | None = None) -> dict:
    """Non-verbal events per hour on laughter-free real speech (read in place from realdata)."""
    out = work / "run_fa"
    shutil.rmtree(out, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    rows, seconds = [], 0.0
    for rel, rid in FALSE_ALARM_SET:
        path = REALDATA / rel
        info = sf.info(path)
        seconds += info.duration
        for ch in range(info.channels):
            rows.append(dict(path=str(path), recording_id=rid, channel=ch, source_channel=ch, speaker_id=f"{rid}_s{ch}"))
    manifest = work / "fa_manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    run(manifest, out, load_workflow(None, dict(BENCH_SETTINGS, **(overrides or {}))), executor="local")
    ev = _events(out)
    hours = seconds / 3600
    per = {k: int((ev.type == k).sum()) for k in ("laughter", "breath", "cough", "sigh")}
    hits = ev[ev.type.isin(["laughter", "breath", "cough", "sigh"])][["recording_id", "type", "channel", "start", "end", "confidence"]]
    return dict(seconds=round(seconds, 1), events=per, per_hour={k: v / hours for k, v in per.items()},
                hits=hits.to_dict("records"))


def time_share(work: Path) -> dict:
    """The non-verbal stage's share (model load + processing) of a whole run of the bundled samples'
    workflow (ASR on, local executor: stages one after another, so shares add up) on data_samples."""
    out = work / "run_samples"
    shutil.rmtree(out, ignore_errors=True)
    timings: dict[str, float] = {}
    from duplexcorpus.stages import STAGES
    from duplexcorpus.stages.base import Stage

    inside: set[int] = set()

    def timer(fn):
        def timed(self, *args):
            if id(self) in inside:  # a subclass calling its base: counted once, by the outer call
                return fn(self, *args)
            inside.add(id(self))
            t = time.perf_counter()
            try:
                return fn(self, *args)
            finally:
                inside.discard(id(self))
                timings[self.name] = timings.get(self.name, 0.0) + time.perf_counter() - t
        return timed
    # every class that defines its own process_batch (batched model stages do), the base for the rest
    patched = [(cls, name, cls.__dict__[name]) for cls in (Stage, *STAGES)
               for name in ("process_batch", "ensure_setup") if name in cls.__dict__]
    for cls, name, fn in patched:
        setattr(cls, name, timer(fn))
    try:
        t = time.perf_counter()
        run(ROOT / "data_samples" / "audio", out, load_workflow(ROOT / "workflows" / "samples.yaml"), executor="local")
        total = time.perf_counter() - t
    finally:
        for cls, name, fn in patched:
            setattr(cls, name, fn)
    return dict(total_s=round(total, 1), stages_s={k: round(v, 2) for k, v in timings.items()},
                nonverbal_share=timings.get("nonverbal", 0.0) / total)


def _print(title: str, rep: dict) -> None:
    print(f"== {title}")
    print(json.dumps(rep, indent=1, default=float))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--choose", action="store_true")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--false-alarms", action="store_true")
    ap.add_argument("--time-share", action="store_true")
    ap.add_argument("--seeds", default=None)
    ap.add_argument("--work", default="/tmp/dxc-nonverbal")
    ap.add_argument("--set", action="append", default=[], help="section.key=value override (YAML value)")
    ap.add_argument("--rerender", action="store_true")
    ap.add_argument("--keep", action="store_true", help="reuse the run folder's cache (only changed stages re-run)")
    args = ap.parse_args(argv)
    import yaml
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    work = Path(args.work)
    if args.choose or args.report:
        seeds = make_stress.parse_seeds(args.seeds) if args.seeds else list(
            make_stress.CHOOSE_SEEDS if args.choose else make_stress.REPORT_SEEDS)
        if args.report:
            assert not set(seeds) & set(make_stress.CHOOSE_SEEDS), "report seeds must not overlap the choose seeds"
        sub = work / ("choose" if args.choose else "report")
        _print(f"mixed real laughter, seeds {seeds[0]}-{seeds[-1]} ({len(seeds)} calls)", run_mixed(seeds, sub, overrides, args.rerender, args.keep))
    if args.false_alarms:
        _print("laughter-free real speech", false_alarms(work, overrides))
    if args.time_share:
        _print("stage time share, data_samples (samples.yaml, ASR on, local executor)", time_share(work))


if __name__ == "__main__":
    main()
