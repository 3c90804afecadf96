"""Is an automatic segment right? Scored against reference segments (data_samples truth), to
measure how well the routing risk ranks the wrong ones first (AUROC)."""
from __future__ import annotations

import json

import pandas as pd

from duplexcorpus.text import error_rate


def label_segments(run_segments: pd.DataFrame, truth_segments: pd.DataFrame, collar: float = 0.2,
                   max_unit_error: float = 0.2) -> pd.DataFrame:
    """`wrong` = no reference IPU on its channel within `collar` at both ends, or its text's
    unit error rate against that IPU's text above `max_unit_error`."""
    rows = []
    for seg in run_segments.itertuples():
        ref = truth_segments[(truth_segments.recording_id == seg.recording_id) & (truth_segments.channel == seg.channel)]
        match = ref[((ref.start - seg.start).abs() <= collar) & ((ref.end - seg.end).abs() <= collar)]
        attrs = json.loads(seg.attributes)
        if match.empty:
            wrong, why = True, "boundaries"
        else:
            ref_text = json.loads(match.iloc[0].attributes).get("text", "")
            er = error_rate(ref_text, attrs.get("text", ""))["rate"]
            wrong, why = er > max_unit_error, f"unit error {er:.2f}"
        rows.append(dict(segment_id=seg.segment_id, recording_id=seg.recording_id, risk=attrs.get("risk", 0.0),
                         wrong=wrong, why=why))
    return pd.DataFrame(rows)


def auroc(labels: pd.DataFrame) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels.wrong.astype(int), labels.risk))


def truth_windows(truth_words: pd.DataFrame, recordings: pd.DataFrame, window: float = 30.0) -> dict[str, list[dict]]:
    """What a perfect annotator would submit for the first `window` s of each recording: one speech
    region per truth utterance (its exact span, its words as text), as merge.human_items turns it into
    human segments and evenly spread words. For measuring how human words are timed."""
    from duplexcorpus.review.merge import Parsed, Region, human_items
    from duplexcorpus.review.labeling import speaker_label

    merged = {}
    for rec in recordings.itertuples():
        words = truth_words[truth_words.recording_id == rec.recording_id]
        end = min(float(rec.duration), window)
        regions = []
        for _, utt in words.groupby(["channel", "utterance"]):
            if utt.end.max() <= end:
                text = ("" if utt.language.iloc[0] == "zh" else " ").join(utt.sort_values("index").word)
                regions.append(Region(float(utt.start.min()), float(utt.end.max()),
                                      [speaker_label(int(utt.channel.iloc[0]))], text))
        if regions:
            parsed = Parsed(0, "truth", "", "fixed", regions)
            data = {"recording_id": rec.recording_id, "window_start": 0.0, "window_end": end,
                    "task_key": f"truth:{rec.recording_id}"}
            channels = json.loads(rec.channels) if isinstance(rec.channels, str) else list(rec.channels)
            merged[rec.recording_id] = [human_items(parsed, data, {c["channel"]: c["speaker_id"] for c in channels})]
    return merged


def human_word_errors(merged: dict[str, list[dict]], truth_words: pd.DataFrame) -> tuple[list[float], list[float]]:
    """|start| and |end| errors (s) of the human words in merged windows against the word truth."""
    from duplexcorpus.evaluate import unit_timing_errors

    starts, ends = [], []
    for rid, windows in merged.items():
        for w in windows:
            hyp = pd.DataFrame(w["words"])
            for ch in sorted(set(hyp.channel)):
                ref = truth_words[(truth_words.recording_id == rid) & (truth_words.channel == ch)
                                  & (truth_words.end <= w["window"][1])]
                s_err, e_err = unit_timing_errors(ref, hyp[hyp.channel == ch])
                starts += s_err
                ends += e_err
    return starts, ends

