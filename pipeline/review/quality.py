"""Is an automatic segment right? Scored against reference segments (data_samples truth), to
measure how well the routing risk ranks the wrong ones first (AUROC)."""
from __future__ import annotations

import json

import pandas as pd

from pipeline.text import error_rate


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
