"""Annotators type text, not word times. Their transcripts get word times here, before the merge
writes them:

- a region the annotator left as it was (same channel, edges within `KEEP_EDGE` s, same text as
  the automatic segment) keeps the ASR stage's word times: they were measured already;
- every other region is aligned with the aligner the ASR stage uses for given transcripts (Whisper
  cross-attention, or the CTC aligner where configured), on the channel's leak-cancelled track, its
  words kept inside the region. The regions of one channel in one window share a clip (a window is
  at most 30 s, one Whisper clip), so a window costs one encoder pass per channel.

Words that cannot be placed are spread between their placed neighbours and flagged `interpolated`,
as in the ASR stage. Without an aligner (asr disabled, or review.realign false) the merge's even
spread stays, flagged `interpolated`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from duplexcorpus.audio import probe
from duplexcorpus.config import Workflow
from duplexcorpus.storage import stage_outputs
from duplexcorpus.text import is_cjk, join_text, normalise, units

KEEP_EDGE = 0.05  # s


def language_of(text: str, languages: tuple[str, ...]) -> str | None:
    lang = "zh" if any(is_cjk(ch) for ch in text) else "en"
    return lang if lang in languages else None


@dataclass
class _Automatic:
    """One recording's automatic segments (per channel) and words (per segment), as plain lists:
    a pull looks up every human region here, thousands of times."""

    segments: dict[int, list[tuple[float, float, str]]]
    words: dict[str, list[dict]]

    @classmethod
    def of(cls, segs: pd.DataFrame, words: pd.DataFrame) -> "_Automatic":
        by_channel: dict[int, list[tuple[float, float, str]]] = {}
        for s in segs.itertuples():
            by_channel.setdefault(int(s.channel), []).append((float(s.start), float(s.end), s.segment_id))
        by_segment: dict[str, list[dict]] = {}
        for w in words.sort_values("start").to_dict("records"):
            by_segment.setdefault(w["segment_id"], []).append(w)
        return cls(by_channel, by_segment)

    def kept_words(self, seg: dict, window: list[float]) -> list[dict] | None:
        """The words of the automatic segment the annotator did not change (as the task showed it:
        cut at the window's edges, with the words whose midpoint is inside), else None."""
        w0, w1 = window
        for start, end, segment_id in self.segments.get(seg["channel"], []):
            if abs(max(start, w0) - seg["start"]) > KEEP_EDGE or abs(min(end, w1) - seg["end"]) > KEEP_EDGE:
                continue
            shown = [w for w in self.words.get(segment_id, []) if w0 <= (w["start"] + w["end"]) / 2 < w1]
            if shown and units(join_text([w["word"] for w in shown])) == units(seg["attributes"].get("text", "")):
                lo, hi = seg["start"], seg["end"]  # the annotator's edges win: times clamped into them
                return [dict(channel=int(w["channel"]), language=w["language"], source="human", word=w["word"],
                             start=min(max(float(w["start"]), lo), hi), end=max(min(float(w["end"]), hi), lo),
                             score=1.0, interpolated=bool(w["interpolated"])) for w in shown]
        return None


def _clip_groups(segs: list[dict], pad: float) -> list[list[dict]]:
    """Consecutive regions of one channel that fit one Whisper clip together (30 s with padding)."""
    groups: list[list[dict]] = []
    for seg in sorted(segs, key=lambda s: s["start"]):
        if groups and seg["end"] + pad - (groups[-1][0]["start"] - pad) <= 30.0:
            groups[-1].append(seg)
        else:
            groups.append([seg])
    return groups


def realign_windows(out: Path, workflow: Workflow, merged: dict[str, list[dict]]) -> dict:
    """Time the human words of the merged windows (recording -> windows, as merge.human_items makes
    them) in place. Returns counts for the pull report."""
    report = {"human_words_kept": 0, "human_words_aligned": 0, "human_words_interpolated": 0}
    if not workflow.review.realign or not workflow.asr.enabled:
        return report
    segs_t = pd.read_parquet(out / "tables" / "segments.parquet")
    words_t = pd.read_parquet(out / "tables" / "words.parquet")
    segs_t, words_t = segs_t[segs_t.recording_id.isin(merged)], words_t[words_t.recording_id.isin(merged)]
    segs_by_rec = dict(tuple(segs_t[segs_t.source != "human"].groupby("recording_id")))
    words_by_rec = dict(tuple(words_t[words_t.source != "human"].groupby("recording_id")))
    outputs = stage_outputs(out)
    languages = tuple(workflow.asr.languages)
    timed: dict[int, list[dict]] = {}  # id(segment) -> its words
    kept_ids: set[int] = set()
    requests, groups = [], []
    for rid, windows in merged.items():
        automatic = _Automatic.of(segs_by_rec.get(rid, segs_t.iloc[:0]), words_by_rec.get(rid, words_t.iloc[:0]))
        track = None
        for w in windows:
            to_align: dict[tuple[int, str], list[dict]] = {}
            for seg in w["segments"]:
                text = seg["attributes"].get("text", "").strip()
                lang = language_of(text, languages)
                if not units(text) or lang is None:
                    continue
                kept = automatic.kept_words(seg, w["window"])
                if kept:
                    timed[id(seg)] = kept
                    kept_ids.add(id(seg))
                else:
                    to_align.setdefault((seg["channel"], lang), []).append(seg)
            for (channel, lang), segs in sorted(to_align.items(), key=lambda kv: kv[0]):
                if track is None:
                    path = str(outputs[rid]["decrosstalk"] / "analysis.flac")
                    track = (path, probe(path).duration)
                for group in _clip_groups(segs, workflow.asr.pad):
                    groups.append(group)
                    requests.append(_request(track, channel, group, lang))
    if requests:
        from duplexcorpus.asr.aligner import TextAligner

        aligner = TextAligner.load(workflow.asr)
        for group, words in zip(groups, aligner.align(requests)):
            timed.update(_split_by_segment(group, words, workflow.asr.min_word))
    for windows in merged.values():
        for w in windows:
            new_words, changed = [], set()
            for seg in w["segments"]:
                if id(seg) not in timed:
                    continue
                changed.add((seg["channel"], seg["start"]))
                for x in timed[id(seg)]:
                    x.update(segment_start=seg["start"], score=1.0)  # the text is the annotator's
                    report["human_words_interpolated" if x["interpolated"] else
                           "human_words_kept" if id(seg) in kept_ids else "human_words_aligned"] += 1
                new_words += timed[id(seg)]
            keep = [x for x in w["words"] if (x["channel"], x.get("segment_start")) not in changed]
            w["words"] = sorted(keep + new_words, key=lambda x: (x["channel"], x["start"]))
    return report


def _request(track: tuple[str, float], channel: int, group: list[dict], language: str):
    from duplexcorpus.asr.aligner import TextToAlign

    text = join_text([s["attributes"]["text"].strip() for s in group])
    return TextToAlign(track[0], track[1], channel, tuple((s["start"], s["end"]) for s in group), text, language)


def _split_by_segment(group: list[dict], words: list[dict], min_word: float) -> dict[int, list[dict]]:
    """Words of a shared clip back to their regions, by text: the k-th region owns the words that
    spell its text (characters counted without spaces or punctuation). Cross-attention drifts
    across the silence between regions, so a word placed outside its own region loses its times
    and is interpolated inside the region, as the ASR stage does with unplaced words."""
    from duplexcorpus.asr.timing import clamp_to_spans, interpolate

    def length(text: str) -> int:
        return len(normalise(text).replace(" ", ""))

    bounds = np.cumsum([length(seg["attributes"]["text"]) for seg in group])
    owned: list[list[dict]] = [[] for _ in group]
    consumed = 0
    for w in words:
        k = min(int(np.searchsorted(bounds, consumed, side="right")), len(group) - 1)
        owned[k].append(dict(w))
        consumed += length(w["word"])
    out = {}
    for seg, mine in zip(group, owned):
        span = [(seg["start"], seg["end"])]
        for w in mine:
            if not seg["start"] - 1e-3 <= (w["start"] + w["end"]) / 2 <= seg["end"] + 1e-3:
                w.update(start=None, end=None)
        out[id(seg)] = clamp_to_spans(interpolate(mine, span), span, min_word) if mine else []
    return out
