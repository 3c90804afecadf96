"""Non-verbal events in review: an uncertain laugh routes its window, and the task is pre-annotated
with the Laughter label (on the speaker's region it covers, or a region of its own)."""
from __future__ import annotations

import json
import shutil

from duplexcorpus.config import load_workflow
from duplexcorpus.contract import to_table, write_table
from duplexcorpus.review.tasks import build_tasks, risky_windows
from duplexcorpus.runfolder import RunFolder


def test_an_uncertain_laugh_is_routed_and_pre_annotated(sample_run, tmp_path, monkeypatch):
    # this copy is served from tmp_path (a Label Studio fixture of another test may have set the root)
    monkeypatch.setenv("DUPLEXCORPUS_LS_DOCUMENT_ROOT", str(tmp_path))
    out = tmp_path / "out"
    shutil.copytree(sample_run.out, out)
    run = RunFolder(out)
    segs = run.frame("segments")
    rid = "en_chat_crosstalk"
    ch1 = segs[(segs.recording_id == rid) & (segs.channel == 1)].sort_values("start")
    # a laugh in the silence after channel 1's last IPU (no region of its own yet), marked uncertain
    start = float(ch1.end.max()) + 0.3
    assert start + 0.8 < float(run.frame("recordings").set_index("recording_id").loc[rid, "duration"])
    rows = run.table("events").to_pylist() + [dict(recording_id=rid, event_id=f"{rid}_laughter_0", type="laughter", channel=1,
                                             speaker_id=run.speakers(rid)[1], start=start, end=start + 0.8,
                                             confidence=0.32, source="yamnet",
                                             attributes=json.dumps({"score": 0.32, "uncertain": True, "speech_laugh": False}))]
    for r in rows:
        r["attributes"] = r["attributes"] if isinstance(r["attributes"], str) else json.dumps(r["attributes"])
    write_table(out / "tables" / "events.parquet", "events", to_table("events", rows))
    wf = load_workflow(None, {"review.w_nonverbal_uncertain": 1.0})  # the riskiest: its window comes first
    windows = risky_windows(out, wf)
    mine = [w for w in windows if w.recording_id == rid and w.start <= start and start + 0.8 <= w.end]
    assert mine and "nonverbal_uncertain" in mine[0].reasons
    task = build_tasks(out, wf, mine[:1])[0]
    regions = [r for r in task["predictions"][0]["result"] if r["type"] == "labels"]
    laughs = [r for r in regions if "Laughter" in r["value"]["labels"]]
    assert len(laughs) == 1 and laughs[0]["value"]["labels"] == ["Speech_B", "Laughter"]
    assert abs(laughs[0]["value"]["start"] - (start - mine[0].start)) < 1e-3
