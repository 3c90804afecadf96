"""The report's HTML pages (jinja2 templates in `templates/`, autoescaped): at a glance, turn-taking,
words, review, the recording list and one page per recording. Pages link to each other and to their
PNGs by relative paths, so `OUT/report/` opens from disk (file://) with no server and no network."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from jinja2 import Environment, PackageLoader, select_autoescape

from duplexcorpus.report import plots, references, timeline
from duplexcorpus.report.collect import (GROUPINGS, Corpus, hours_by, per_minute, per_recording_rates, quarantine_summary,
                                         score_buckets, speaker_balance)
from duplexcorpus.review.routing import Window, choose_windows, plain_reasons
from duplexcorpus.runfolder import RunFolder

LOW_SCORE = 0.5  # words below this are underlined on recording pages
RATE_TYPES = ("backchannel", "interruption", "laughter", "filler", "overlap", "floor_transfer")
TABLES = ("recordings", "segments", "words", "events", "quarantine")


def pipeline_version() -> str:
    try:
        return metadata.version("duplexcorpus")
    except metadata.PackageNotFoundError:
        return "unknown"


def workflow_hash(spec: dict) -> str:
    """sha256 of the run's workflow (run.json) without its execution-only `ray` section, as canonical
    JSON: two corpora with the same hash were made with the same settings."""
    tunable = {k: v for k, v in spec.get("workflow", {}).items() if k != "ray"}
    return hashlib.sha256(json.dumps(tunable, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def schema_versions(out: Path) -> dict[str, str]:
    run = RunFolder(out)
    found = {}
    for name in TABLES:
        meta = pq.read_schema(run.table_path(name)).metadata or {}
        found[name] = meta.get(b"duplexcorpus.schema_version", b"?").decode()
    return found


def page_names(recording_ids) -> dict[str, str]:
    """recording -> its page file name: the id where it is a safe file name, else a slug + short hash."""
    names, used = {}, set()
    for rid in recording_ids:
        slug = re.sub(r"[^A-Za-z0-9_.-]", "_", rid)[:80]
        if slug != rid or slug.lower() in used:
            slug = f"{slug}-{hashlib.sha1(rid.encode()).hexdigest()[:8]}"
        used.add(slug.lower())
        names[rid] = slug
    return names


def words_by_segment(words: pd.DataFrame) -> dict[str, list[dict]]:
    """segment id -> its words in time order, as the recording page shows them (one pass over the table)."""
    out: dict[str, list[dict]] = {}
    ordered = words.sort_values(["segment_id", "start"], kind="stable")
    for sid, word, punct, score, lang in zip(ordered.segment_id, ordered.word, ordered.punct, ordered.score,
                                             ordered.language):
        out.setdefault(sid, []).append({"word": word + (punct if isinstance(punct, str) else ""), "score": float(score),
                                        "low": score < LOW_SCORE, "sep": "" if lang == "zh" else " "})
    return out


@dataclass(frozen=True)
class Context:
    """What every page shows in its frame."""
    corpus_name: str
    pipeline_version: str
    workflow_hash: str
    written: str


def reasons_in_words(reasons) -> str:
    """The sentences annotators read for these reason codes (one mapping: review/routing.py)."""
    return plain_reasons(list(reasons))


def risky_windows(corpus: Corpus) -> list[Window]:
    """The windows `review push` would send (routing.choose_windows on the segments' stored risk)."""
    segs = corpus.segments[corpus.segments.source != "human"]
    risky = list(zip(segs.recording_id, segs.segment_id, segs.start, segs.end, segs.risk, segs.risk_reasons))
    workflow = RunFolder(corpus.out).workflow
    return choose_windows(risky, dict(zip(corpus.recordings.recording_id, corpus.recordings.duration)), workflow.review)


class ReportWriter:
    def __init__(self, corpus: Corpus, dest: Path, recording_pages: int | None = None):
        self.corpus = corpus
        self.dest = dest
        self.img = dest / "img"
        self.limit = recording_pages
        self.env = Environment(loader=PackageLoader("duplexcorpus.report", "templates"),
                               autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
        self.pages = page_names(corpus.recordings.recording_id)
        self.ctx = Context(corpus_name=corpus.out.name, pipeline_version=pipeline_version(),
                           workflow_hash=workflow_hash(corpus.spec),
                           written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
        t0 = time.perf_counter()
        self.windows = risky_windows(corpus)
        self.timings: dict[str, float] = {"risky_windows": round(time.perf_counter() - t0, 3)}

    def _render(self, template: str, path: Path, root: str, **values) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        html = self.env.get_template(template).render(root=root, **self.ctx.__dict__, **values)
        path.write_text(html, encoding="utf-8")
        return path

    # -- pages ------------------------------------------------------------------------------------
    def index(self) -> Path:
        c = self.corpus
        recs = c.recordings
        split_lang: dict[str, dict[str, float]] = {}
        for (split, lang), sec in recs.groupby(["split", "language"]).duration.sum().items():
            split_lang.setdefault(str(split), {})[str(lang)] = sec / 3600
        plots.stacked_hours(split_lang, "hours per split and language", self.img / "hours_split_language.png")
        return self._render("index.html", self.dest / "index.html", "", page="index", title="Corpus at a glance",
                            stats=c.stats, n_speakers=int(c.speakers.speaker_id.nunique()),
                            quarantined=len(c.quarantine), hours={g: hours_by(recs, g) for g in GROUPINGS},
                            balance=speaker_balance(c.speakers), quarantine=quarantine_summary(c.quarantine),
                            spec=c.spec, schema_versions=schema_versions(c.out))

    def turntaking(self) -> Path:
        c = self.corpus
        ev, segs = c.events, c.segments
        fto = ev[ev.type == "floor_transfer"].offset.to_numpy(float)
        fto_refs = references.for_quantity("floor_transfer_offset_s")
        share_refs = references.for_quantity("overlap_share_of_transfers")
        img = self.img
        made = [
            (plots.histogram(segs.duration, np.arange(0, 10.25, 0.25), "IPU duration (s)", "IPU durations",
                             img / "ipu.png"), "IPU durations", "IPUs per channel and speaker; longer ones clipped at 10 s."),
            (plots.histogram(ev[ev.type == "pause"].duration, np.arange(0, 3.05, 0.05), "pause (s)", "pauses",
                             img / "pause.png"), "pauses", "Silence between two IPUs of one speaker; clipped at 3 s."),
            (plots.histogram(ev[ev.type == "gap"].duration, np.arange(0, 3.05, 0.05), "gap (s)", "gaps",
                             img / "gap.png"), "gaps", "Silence between IPUs of different speakers; clipped at 3 s."),
            (plots.histogram(fto, np.arange(-2, 2.05, 0.05), "offset (s): next turn start − previous turn end",
                             "floor-transfer offsets", img / "fto.png", refs=fto_refs), "floor-transfer offsets",
             "Negative: the next speaker started in overlap. Marks: "
             + "; ".join(f"{r.label}: {r.finding}" for r in fto_refs) + "."),
            (plots.histogram(np.where(c.recordings.duration > 0, c.recordings.overlap_s / c.recordings.duration, 0) * 100,
                             np.arange(0, 40.5, 1.0), "overlap (% of the recording)", "overlap ratio per recording",
                             img / "overlap_ratio.png", median=False), "overlap ratio",
             f"Share of each recording with two or more speakers speaking; corpus {100 * c.stats.get('overlap_ratio', 0):.1f} %."),
        ]
        rates = per_recording_rates(c, RATE_TYPES[:4])
        made.append((plots.boxes({t: rates[t].to_numpy() for t in rates.columns}, "events per minute",
                                 "backchannels, interruptions, laughter, fillers per minute (per recording)",
                                 img / "rates.png"), "events per minute",
                     "Per recording; the triangle is the mean. Laughter comes from human review or a non-verbal stage."))
        overlapped = float(np.mean(fto < 0)) if len(fto) else float("nan")
        made.append((plots.bars({"this corpus": overlapped * 100 if len(fto) else 0.0}, "% of floor transfers in overlap",
                                "floor transfers that start in overlap", img / "overlap_share.png",
                                refs=[references.Reference(r.quantity, r.low * 100, r.high * 100, r.label, r.finding, r.source)
                                      for r in share_refs]),
                     "floor transfers in overlap", "; ".join(f"{r.label}: {r.finding}" for r in share_refs) + "."))
        plot_rows = [{"src": f"img/{p.name}", "alt": alt, "caption": cap} for p, alt, cap in made]

        def summ(values) -> str:
            values = np.asarray(values, float)
            values = values[np.isfinite(values)]
            if not len(values):
                return "–"
            return f"median {np.median(values):.3f} s, p10 {np.percentile(values, 10):.3f}, p90 {np.percentile(values, 90):.3f} (n={len(values)})"

        summary = [
            {"name": "IPU duration", "value": summ(segs.duration), "reference": ""},
            {"name": "pause", "value": summ(ev[ev.type == "pause"].duration), "reference": ""},
            {"name": "gap", "value": summ(ev[ev.type == "gap"].duration), "reference": ""},
            {"name": "floor-transfer offset", "value": summ(fto),
             "reference": "; ".join(f"{r.label}" for r in fto_refs)},
            {"name": "floor transfers in overlap", "value": f"{100 * overlapped:.1f} %" if len(fto) else "–",
             "reference": "; ".join(r.label for r in share_refs)},
            {"name": "overlap ratio (time)", "value": f"{100 * c.stats.get('overlap_ratio', 0):.1f} %", "reference": ""},
            {"name": "interruptions that took the floor", "value":
                f"{int(ev[ev.type == 'interruption'].successful.sum())} of {int((ev.type == 'interruption').sum())}",
             "reference": ""},
        ]
        counts = {str(k): int(v) for k, v in ev.type.value_counts().items()}
        return self._render("turntaking.html", self.dest / "turntaking.html", "", page="turntaking",
                            title="Turn-taking", plots=plot_rows, summary=summary, counts=counts,
                            rates=per_minute(c, RATE_TYPES + ("pause", "gap", "crosstalk")),
                            references=references.sources(), definitions=references.DEFINITIONS)

    def words(self) -> Path:
        c = self.corpus
        w = c.words
        by_lang = (w.assign(language=w.language.fillna("unknown")).groupby("language").score
                   .agg(["count", "mean"]).reset_index().rename(columns={"mean": "mean_score"}))
        buckets = score_buckets(w)
        per_lang = {str(k): int(v) for k, v in w.language.fillna("unknown").value_counts().sort_index().items()}
        made = [
            (plots.bars(per_lang, "words (Mandarin: characters)", "words per language", self.img / "words_language.png"),
             "words per language", "English words; Mandarin characters (one row each)."),
            (plots.bars(buckets, "words", "word scores", self.img / "word_scores.png"), "word scores",
             "Whisper word probability or aligner score, in buckets."),
        ]
        drops = []
        if len(c.dropped):
            reasons = c.dropped.groupby("reason")
            made.append((plots.bars({str(k): int(len(g)) for k, g in reasons}, "clips", "hallucination drops by reason",
                                    self.img / "drops.png"), "drops", "What the no-speech / hallucination / loop gates removed."))
            for reason, group in reasons:
                drops.append({"reason": reason, "count": len(group), "examples": [
                    {"recording_id": r["recording_id"], "page": f"{self.pages.get(r['recording_id'], '')}.html",
                     "start": float(r["start"]), "text": (r["text"] or "")[:120]} for r in group.head(5).to_dict("records")]})
        segment_buckets = {str(k): int(v) for k, v in c.segments.bucket.fillna("none").value_counts().items()}
        return self._render("words.html", self.dest / "words.html", "", page="words", title="Words",
                            words_count=len(w), asr=c.stats.get("asr"), interpolated=int(w.interpolated.sum()),
                            plots=[{"src": f"img/{p.name}", "alt": a, "caption": cap} for p, a, cap in made],
                            by_language=by_lang.to_dict("records"), buckets=buckets, segment_buckets=segment_buckets,
                            drops=drops)

    def _window_rows(self) -> list[dict]:
        per_rec: dict[str, int] = {}
        rows = []
        for w in sorted(self.windows, key=lambda w: (w.recording_id, w.start)):
            per_rec[w.recording_id] = per_rec.get(w.recording_id, 0) + 1
            rows.append({"recording_id": w.recording_id, "page": f"{self.pages[w.recording_id]}.html",
                         "index": per_rec[w.recording_id], "start": w.start, "end": w.end, "score": w.score,
                         "why": reasons_in_words(w.reasons), "segments": w.segments})
        return rows

    def review(self, window_rows: list[dict]) -> Path:
        wf = RunFolder(self.corpus.out).workflow
        return self._render("review.html", self.dest / "review.html", "", page="review", title="Review",
                            review=self.corpus.review, windows=sorted(window_rows, key=lambda r: -r["score"]),
                            window_minutes=sum(w["end"] - w["start"] for w in window_rows) / 60,
                            budget_share=wf.review.budget_share)

    def recordings(self, window_rows: list[dict]) -> Path:
        recs = self.corpus.recordings
        windows = pd.Series([w["recording_id"] for w in window_rows], dtype=object).value_counts()
        paged = self._paged()
        rows = []
        for r in recs.to_dict("records"):
            rid = r["recording_id"]
            rows.append({**r, "page": f"{self.pages[rid]}.html" if rid in paged else None, "minutes": r["duration"] / 60,
                         "channels": r["num_channels"], "speech": r["speech_s"] / max(r["duration"], 1e-9),
                         "overlap": r["overlap_s"] / max(r["duration"], 1e-9), "windows": int(windows.get(rid, 0)),
                         "warnings": ", ".join(x.split(":")[0] for x in r["warnings"])})
        return self._render("recordings.html", self.dest / "recordings.html", "", page="recordings", title="Recordings",
                            rows=rows, not_paged=len(paged) < len(recs), paged=len(paged))

    def _paged(self) -> set[str]:
        ids = list(self.corpus.recordings.recording_id)
        return set(ids if self.limit is None else ids[: self.limit])

    def recording_pages(self, window_rows: list[dict]) -> list[Path]:
        c = self.corpus
        paged = [r for r in c.recordings.recording_id if r in self._paged()]
        segs = dict(tuple(c.segments.groupby("recording_id")))
        events = dict(tuple(c.events.groupby("recording_id")))
        drops = dict(tuple(c.dropped.groupby("recording_id"))) if len(c.dropped) else {}
        words = words_by_segment(c.words)
        wins: dict[str, list[dict]] = {}
        for w in window_rows:
            wins.setdefault(w["recording_id"], []).append(w)
        recs = c.recordings.set_index("recording_id")
        meta = {r["speaker_id"]: r for r in c.speakers.to_dict("records")}
        empty_s, empty_e = c.segments.iloc[:0], c.events.iloc[:0]
        painter = timeline.TimelinePainter()
        written = []
        for i, rid in enumerate(paged):
            rec = recs.loc[rid]
            s, e = segs.get(rid, empty_s), events.get(rid, empty_e)
            channel_map = {int(ch["channel"]): str(ch["speaker_id"]) for ch in rec.channels}
            my_windows = wins.get(rid, [])
            slug = self.pages[rid]
            painter.draw(float(rec.duration), channel_map, s, e, [(x["start"], x["end"]) for x in my_windows],
                         self.img / "rec" / f"{slug}.png")
            rows = timeline.rows_of(channel_map, s)
            colour = {(r.channel, r.speaker_id): k % len(timeline.SPEAKER_COLOURS) for k, r in enumerate(rows)}
            seg_rows = sorted(s.to_dict("records"), key=lambda r: r["start"])
            speech: dict[tuple, list[float]] = {}
            for r in seg_rows:
                speech.setdefault((r["channel"], r["speaker_id"]), []).append(r["duration"])
            speakers = [{"channel": r.channel, "speaker_id": r.speaker_id,
                         **{f: meta.get(r.speaker_id, {}).get(f, "unknown") for f in ("gender", "age_group", "accent", "language")},
                         "speech": sum(speech.get((r.channel, r.speaker_id), [])),
                         "ipus": len(speech.get((r.channel, r.speaker_id), []))} for r in rows]
            ipus = [{**r, "words": words.get(r["segment_id"], []), "colour": colour.get((r["channel"], r["speaker_id"]), 0)}
                    for r in seg_rows]
            by_id = {r["segment_id"]: r for r in seg_rows}
            window_view = []
            for x in my_windows:
                made_it = [{**by_id[sid], "reasons": sorted(((reasons_in_words([k]), v) for k, v in by_id[sid]["risk_reasons"].items()),
                                                            key=lambda kv: -kv[1])}
                           for sid in x["segments"] if sid in by_id]
                window_view.append({**x, "segments": made_it})
            audio = c.audio.get(rid)
            written.append(self._render(
                "recording.html", self.dest / "recordings" / f"{slug}.html", "../", page="recording", title=rid,
                rec={"recording_id": rid, **{k: rec[k] for k in ("split", "duration", "num_channels", "language",
                                                                  "scenario", "environment", "device")}},
                slug=slug, audio=f"../../{audio}" if audio else None, audio_name=audio, speakers=speakers,
                key=timeline.colour_key(e), speaker_colours=timeline.SPEAKER_COLOURS,
                warnings=list(rec.warnings), windows=window_view, ipus=ipus, low_score=LOW_SCORE,
                drops=drops[rid].to_dict("records") if rid in drops else [],
                event_counts={str(k): int(v) for k, v in e.type.value_counts().sort_index().items()},
                minutes=max(float(rec.duration) / 60, 1e-9),
                prev=f"{self.pages[paged[i - 1]]}.html" if i > 0 else None,
                next=f"{self.pages[paged[i + 1]]}.html" if i + 1 < len(paged) else None))
        return written

    def write(self) -> Path:
        if self.dest.exists():  # a report is rewritten whole: no page of a recording that is gone stays
            shutil.rmtree(self.dest)
        self.dest.mkdir(parents=True)
        shutil.copyfile(Path(__file__).parent / "templates" / "style.css", self.dest / "style.css")
        window_rows = self._window_rows()
        for name, step in (("index", self.index), ("turntaking", self.turntaking), ("words", self.words),
                           ("review", lambda: self.review(window_rows)), ("recordings", lambda: self.recordings(window_rows)),
                           ("recording_pages", lambda: self.recording_pages(window_rows))):
            t0 = time.perf_counter()
            step()
            self.timings[name] = round(time.perf_counter() - t0, 3)
        return self.dest / "index.html"
