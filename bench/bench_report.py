"""How long `duplexcorpus report` takes: on a synthetic corpus of N recordings × M minutes (tables,
stats.json, drops; no audio), and optionally on a finished run folder.

    python bench/bench_report.py                       # 1000 recordings × 6 min = 100 h
    python bench/bench_report.py --recordings 50 --minutes 6
    python bench/bench_report.py --run /work/shared-runs/samples   # a real run (copied to /tmp first)

Synthetic conversations: two speakers taking turns (IPU lengths log-normal, median ~1.6 s;
floor-transfer offsets normal around +0.2 s, so about a third start in overlap; pauses inside turns;
listener backchannels), words at ~2.5 per second with Beta-distributed scores, crosstalk and laughter
events, a few hallucination drops per recording. The events come from the real turn-taking rules
(`turntaking.detect_events`) on those IPUs; tables are written through the contract. Also
`synthesize()` for tests (with `audio_seconds`, each recording gets a short real FLAC to link to).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "pipeline"))

from duplexcorpus import contract  # noqa: E402
from duplexcorpus.config import EventsConfig, Workflow, to_dict  # noqa: E402
from duplexcorpus.records import ChannelInfo, Event, Recording, Segment, event_rows, segment_rows  # noqa: E402
from duplexcorpus.stats import corpus_stats  # noqa: E402
from duplexcorpus.turntaking import detect_events  # noqa: E402

VOCAB = ("yeah", "so", "we", "went", "to", "the", "market", "and", "it", "was", "really", "busy", "I", "think",
         "that", "is", "right", "okay", "then", "they", "said", "no", "maybe", "next", "week", "sure")
SPEAKER_META = (("female", "adult", "us"), ("male", "senior", "gb"), ("female", "young_adult", "scottish"),
                ("male", "adult", "us"))
SCENARIOS = ("casual_chat", "customer_service", "meeting")
ENVIRONMENTS = ("quiet_room", "cafe", "street")
DEVICES = ("phone", "headset", "laptop")
DROP_REASONS = ("no_speech", "hallucination_phrase", "repetition_loop")


def _conversation(rng: np.random.Generator, rid: str, seconds: float, speakers: tuple[str, str]) -> list[Segment]:
    segs = []
    t, who = 0.5, 0
    while t < seconds - 2:
        for _ in range(int(rng.integers(1, 4))):  # a turn: 1-3 IPUs with pauses
            dur = float(np.clip(rng.lognormal(np.log(1.6), 0.6), 0.25, 12.0))
            end = min(t + dur, seconds - 0.1)
            segs.append(Segment(rid, who, speakers[who], round(t, 3), round(end, 3), float(rng.uniform(0.6, 1.0))))
            if rng.random() < 0.25 and end - t > 1.5:  # the listener backchannels inside it
                b0 = t + float(rng.uniform(0.3, end - t - 0.6))
                segs.append(Segment(rid, 1 - who, speakers[1 - who], round(b0, 3), round(b0 + float(rng.uniform(0.25, 0.6)), 3), 0.8))
            t = end + float(rng.uniform(0.25, 0.9))
        t += float(rng.normal(0.2, 0.45)) - 0.5  # floor-transfer offset relative to the last end (t includes a pause)
        t = max(t, segs[-1].start + 0.3)
        who = 1 - who
    # merge same-speaker IPUs that the draws made touch (an IPU is maximal)
    out: list[Segment] = []
    for s in sorted(segs, key=lambda s: (s.channel, s.start)):
        if out and out[-1].channel == s.channel and s.start <= out[-1].end + 0.2:
            last = out.pop()
            s = Segment(rid, s.channel, s.speaker_id, last.start, max(last.end, s.end), last.confidence)
        out.append(s)
    return sorted(out, key=lambda s: s.start)


def synthesize(out: Path, recordings: int = 1000, minutes: float = 6.0, seed: int = 0,
               audio_seconds: float | None = None) -> Path:
    """A finished-looking run folder: tables, stats.json, run.json, outputs.json and dropped.json per
    recording; with `audio_seconds`, a real 2-channel FLAC per recording (that long) to link to."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    out = Path(out)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    rec_rows, all_segments, all_events, word_dicts, outputs = [], [], [], [], {}
    seconds = minutes * 60
    for i in range(recordings):
        rid = f"call_{i:05d}"
        split = "train" if i % 10 < 8 else ("valid" if i % 10 == 8 else "test")
        lang = "zh" if i % 5 == 4 else "en"
        speakers = (f"spk_{2 * i:05d}", f"spk_{2 * i + 1:05d}")
        channels = []
        for ch, spk in enumerate(speakers):
            gender, age, accent = SPEAKER_META[(i + ch) % len(SPEAKER_META)]
            channels.append(ChannelInfo(ch, spk, f"{rid}.wav", ch, gender=gender, age_group=age, accent=accent,
                                        language=lang))
        # through the record, so the rows carry every column of the contract
        rec_rows.append(Recording(rid, (f"{rid}.wav",), ("0" * 64,), "0" * 64, "WAV", 8000, 2, seconds, tuple(channels),
                                  lang, SCENARIOS[i % 3], ENVIRONMENTS[i % 3 - 1], DEVICES[(i // 3) % 3],
                                  warnings=("dc_offset: channel 1 offset -38 dBFS",) if i % 17 == 0 else ()
                                  ).row(split))
        segs = _conversation(rng, rid, seconds, speakers)
        events = detect_events(segs, EventsConfig())
        for _ in range(int(rng.poisson(3))):
            s = segs[int(rng.integers(len(segs)))]
            events.append(Event(rid, "crosstalk", 1 - s.channel, s.start, min(s.end, s.start + 0.8), 0.9, "rules",
                                {"from_channel": s.channel}, speakers[1 - s.channel]))
        for _ in range(int(rng.poisson(1.5))):
            t = float(rng.uniform(0, seconds - 1))
            ch = int(rng.integers(2))
            events.append(Event(rid, "laughter", ch, t, t + 0.6, 0.7, "nonverbal", {}, speakers[ch]))
        rows = segment_rows(segs)
        scored = []
        for seg, row in zip(sorted(segs, key=lambda s: (s.recording_id, s.channel, s.start)), rows):
            n = max(1, int((seg.end - seg.start) * 2.5))
            step = (seg.end - seg.start) / n
            scores = rng.beta(5, 1.6, n)
            toks = [VOCAB[int(k)] for k in rng.integers(len(VOCAB), size=n)]
            for k in range(n):
                word_dicts.append(dict(recording_id=rid, word_id=f"{row['segment_id']}_w{k:03d}", segment_id=row["segment_id"],
                                       channel=seg.channel, speaker_id=seg.speaker_id, word=toks[k],
                                       start=round(seg.start + k * step, 3), end=round(seg.start + (k + 0.9) * step, 3),
                                       score=float(scores[k]), language=lang, interpolated=False, source="asr", punct=None))
            risk = float(rng.beta(2, 3))
            reasons = {"low_asr": round(float(1 - np.sort(scores)[:2].mean()), 3)}
            if rng.random() < 0.3:
                reasons["overlap"] = round(float(rng.uniform(0.1, 1)), 3)
            attrs = {"text": " ".join(toks), "words": n, "language": lang, "asr_score": round(float(scores.mean()), 3),
                     "risk": round(risk, 4), "risk_reasons": reasons,
                     "confidence_bucket": "high" if risk < 0.2 else ("medium" if risk < 0.5 else "low")}
            scored.append(Segment(seg.recording_id, seg.channel, seg.speaker_id, seg.start, seg.end, seg.confidence,
                                  attributes=attrs))
        all_segments += scored
        all_events += events
        tracks, asr = out / "cache" / "tracks" / rid / "k0", out / "cache" / "asr" / rid / "k0"
        tracks.mkdir(parents=True, exist_ok=True)
        asr.mkdir(parents=True, exist_ok=True)
        drops = [dict(channel=int(rng.integers(2)), start=float(t), end=float(t) + 1.0, reason=DROP_REASONS[int(rng.integers(3))],
                      text="thank you for watching", no_speech_prob=0.9, avg_logprob=-1.2)
                 for t in rng.uniform(0, seconds - 2, int(rng.poisson(0.5)))]
        (asr / "dropped.json").write_text(json.dumps(drops))
        if audio_seconds:
            sr = 8000
            n = int(audio_seconds * sr)
            tone = 0.1 * np.sin(2 * np.pi * 220 * np.arange(n) / sr)
            sf.write(tracks / "audio.flac", np.stack([tone, 0.5 * tone], axis=1), sr)
        outputs[rid] = {"tracks": f"cache/tracks/{rid}/k0", "asr": f"cache/asr/{rid}/k0"}
    quarantine = [dict(input=f"broken_{k}.wav", recording_id=None, stage="ingest", reason_code=code,
                       reason=f"broken_{k}.wav: synthetic {code}") for k, code in enumerate(("truncated", "empty", "clipped"))]
    for name, rows in (("recordings", rec_rows), ("segments", segment_rows(all_segments)), ("words", word_dicts),
                       ("events", event_rows(all_events)), ("quarantine", quarantine)):
        contract.write_table(out / "tables" / f"{name}.parquet", name, contract.to_table(name, rows))
    (out / "stats.json").write_text(json.dumps(corpus_stats(rec_rows, all_segments, all_events, quarantine, word_dicts)))
    (out / "run.json").write_text(json.dumps({"input": "synthetic", "metadata": None, "workflow": to_dict(Workflow())}))
    (out / "outputs.json").write_text(json.dumps(outputs))
    (out / "shards").mkdir(exist_ok=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recordings", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--run", type=Path, help="time the report on this finished run folder instead (copied first)")
    ap.add_argument("--recording-pages", type=int, default=None)
    ap.add_argument("--corpus", type=Path, help="keep the synthetic corpus here and reuse it when it exists")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dxc-bench-report-"))
    try:
        if args.corpus and (args.corpus / "stats.json").exists():
            out = args.corpus
            what = f"synthetic corpus {args.corpus} (reused)"
        elif args.run:
            out = work / args.run.name
            shutil.copytree(args.run, out, ignore=shutil.ignore_patterns("report"))
            what = f"run folder {args.run}"
        else:
            t0 = time.perf_counter()
            out = synthesize(args.corpus or work / "corpus", args.recordings, args.minutes)
            what = f"synthetic {args.recordings} recordings × {args.minutes:g} min (made in {time.perf_counter() - t0:.1f} s)"
        t0, cpu0 = time.perf_counter(), time.process_time()
        from duplexcorpus.report.card import write_card
        from duplexcorpus.report.collect import load_corpus
        from duplexcorpus.report.pages import ReportWriter

        t_import = time.perf_counter() - t0
        t1 = time.perf_counter()
        corpus = load_corpus(out)
        t_load = time.perf_counter() - t1
        writer = ReportWriter(corpus, out / "report", args.recording_pages)
        writer.write()
        write_card(corpus)
        total, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        recs = corpus.recordings
        size = sum(p.stat().st_size for p in (out / "report").rglob("*") if p.is_file())
        print(f"{what}: {recs.duration.sum() / 3600:.1f} h, {len(corpus.segments)} IPUs, {len(corpus.words)} words, "
              f"{len(corpus.events)} events")
        print(f"report: {total:.1f} s wall, {cpu:.1f} s CPU of this process (imports {t_import:.1f} s, reading tables {t_load:.1f} s, "
              + ", ".join(f"{k} {v:.1f} s" for k, v in writer.timings.items())
              + f"); {size / 1e6:.1f} MB in {sum(1 for _ in (out / 'report').rglob('*.html'))} pages; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
