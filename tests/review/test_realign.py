"""Annotators type text, not times: their words are aligned to the audio. Against the exact word
truth of data_samples, aligned human words land far closer than words spread evenly over the
region; a region the annotator left unchanged keeps the ASR stage's measured times."""
from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from duplexcorpus.config import load_workflow
from duplexcorpus.review.quality import human_word_errors, truth_windows
from duplexcorpus.review.realign import realign_windows
from duplexcorpus.text import join_text, units
from tests.conftest import ROOT, SAMPLES

TRUTH = pd.read_parquet(SAMPLES / "truth" / "words.parquet")


@pytest.fixture(scope="module")
def workflow():
    return load_workflow(ROOT / "workflows" / "samples.yaml")


def test_human_words_are_aligned_to_the_audio(sample_run, workflow):
    recs = pd.read_parquet(sample_run.out / "tables" / "recordings.parquet")
    english = recs[recs.recording_id.isin(TRUTH[TRUTH.language == "en"].recording_id)]
    merged = truth_windows(TRUTH, english, window=20.0)
    even = copy.deepcopy(merged)
    report = realign_windows(sample_run.out, workflow, merged)

    total = sum(len(w["words"]) for ws in merged.values() for w in ws)
    assert total > 200
    assert report["human_words_aligned"] + report["human_words_kept"] >= 0.95 * total
    for ws in merged.values():
        for w in ws:
            for seg in w["segments"]:
                mine = [x for x in w["words"] if x["channel"] == seg["channel"] and x["segment_start"] == seg["start"]]
                assert units(join_text([x["word"] for x in mine])) == units(seg["attributes"]["text"])
                assert all(seg["start"] - 1e-3 <= x["start"] <= x["end"] <= seg["end"] + 1e-3 for x in mine)
                assert all(x["source"] == "human" for x in mine)

    even_start, even_end = human_word_errors(even, TRUTH)
    start, end = human_word_errors(merged, TRUTH)
    assert len(start) >= 0.9 * len(even_start)
    assert np.median(start) <= 0.05 and np.median(end) <= 0.06
    assert np.median(start) < 0.5 * np.median(even_start) and np.median(end) < 0.5 * np.median(even_end)


def test_an_unchanged_region_keeps_the_asr_times(sample_run, workflow):
    out = sample_run.out
    segs = pd.read_parquet(out / "tables" / "segments.parquet")
    words = pd.read_parquet(out / "tables" / "words.parquet")
    seg = next(s for s in segs.itertuples() if len(words[words.segment_id == s.segment_id]) >= 3)
    auto = words[words.segment_id == seg.segment_id].sort_values("start")
    text = json.loads(seg.attributes)["text"]
    human_seg = dict(recording_id=seg.recording_id, channel=int(seg.channel), start=float(seg.start), end=float(seg.end),
                     attributes={"text": text})
    spread = [dict(channel=int(seg.channel), word=u, start=float(seg.start), end=float(seg.end), source="human",
                   interpolated=True, segment_start=float(seg.start)) for u in units(text)]
    merged = {seg.recording_id: [{"window": [float(seg.start) - 1, float(seg.end) + 1], "segments": [human_seg],
                                  "words": spread, "events": []}]}
    report = realign_windows(out, workflow, merged)
    assert report["human_words_kept"] == len(auto) and report["human_words_aligned"] == 0
    got = merged[seg.recording_id][0]["words"]
    assert [(x["word"], x["start"], x["end"]) for x in got] == list(zip(auto.word, auto.start, auto.end))
