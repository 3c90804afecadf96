"""Score a run's tables against reference tables (data_samples/truth or a user's references).

IPUs are matched per (recording, channel), events per (recording, type[, channel]) with a collar on
both boundaries; interruptions are scored separately as successful / attempted.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipeline.metrics import MatchScore, grouped_match

CHANNEL_EVENTS = ("pause", "backchannel", "interruption_successful", "interruption_attempted")
EVENT_TYPES = ("pause", "gap", "overlap", "backchannel", "interruption_successful", "interruption_attempted")


def _event_type(row) -> str:
    if row.type == "interruption":
        return "interruption_successful" if json.loads(row.attributes).get("successful") else "interruption_attempted"
    return row.type


def _group_events(frame: pd.DataFrame) -> dict:
    out: dict = {}
    for row in frame.itertuples():
        t = _event_type(row)
        ch = int(row.channel) if t in CHANNEL_EVENTS and not pd.isna(row.channel) else None
        out.setdefault((row.recording_id, t, ch), []).append((row.start, row.end))
    return out


def _group_segments(frame: pd.DataFrame) -> dict:
    out: dict = {}
    for row in frame.itertuples():
        out.setdefault((row.recording_id, int(row.channel)), []).append((row.start, row.end))
    return out


def score_run(run_tables: str | Path, truth: str | Path, collar: float = 0.2,
              recordings: list[str] | None = None) -> dict[str, dict]:
    """Per metric: f1/precision/recall/boundary error; `ipu:<recording>` rows break IPUs down."""
    run_tables, truth = Path(run_tables), Path(truth)
    hyp_seg = pd.read_parquet(run_tables / "segments.parquet")
    ref_seg = pd.read_parquet(truth / "segments.parquet")
    hyp_ev = pd.read_parquet(run_tables / "events.parquet")
    ref_ev = pd.read_parquet(truth / "events.parquet")
    rids = sorted(set(ref_seg.recording_id) & set(pd.read_parquet(run_tables / "recordings.parquet").recording_id))
    if recordings:
        rids = [r for r in rids if r in recordings]
    pick = lambda f: f[f.recording_id.isin(rids)]  # noqa: E731
    hs, rs = _group_segments(pick(hyp_seg)), _group_segments(pick(ref_seg))
    report: dict[str, dict] = {"ipu": grouped_match(rs, hs, collar).summary()}
    for rid in rids:
        report[f"ipu:{rid}"] = grouped_match({k: v for k, v in rs.items() if k[0] == rid},
                                             {k: v for k, v in hs.items() if k[0] == rid}, collar).summary()
    he, re_ = _group_events(pick(hyp_ev)), _group_events(pick(ref_ev))
    for t in EVENT_TYPES:
        report[t] = grouped_match({k: v for k, v in re_.items() if k[1] == t},
                                  {k: v for k, v in he.items() if k[1] == t}, collar).summary()
    interruptions = MatchScore()
    for t in ("interruption_successful", "interruption_attempted"):
        interruptions = interruptions + grouped_match({k: v for k, v in re_.items() if k[1] == t},
                                                      {k: v for k, v in he.items() if k[1] == t}, collar)
    report["interruption"] = interruptions.summary()
    return report
