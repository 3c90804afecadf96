"""Review: does the routing risk rank wrong automatic labels first (AUROC on data_samples), and how
long do push and pull of 1,000 tasks take against a local Label Studio.

    .venv/bin/python bench/bench_review.py            # needs .venv-ls (make .venv-ls/.ready)

AUROC: each automatic segment of the sample run is `wrong` when no truth IPU matches it within
200 ms at both ends or its text's unit error rate against the truth is above 0.2; the score is the
segment's routing risk. Human words: a perfect annotator's regions and text (the truth), word times
spread evenly vs aligned, against the exact word truth. Timing: 1,000 windows tiled over the sample recordings (10 s each), pushed
with predictions; every task then gets an annotation through the API; pull = export + validate +
merge (the re-shard that follows is timed separately).
"""
from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from duplexcorpus.config import load_workflow  # noqa: E402
from duplexcorpus.review.quality import auroc, label_segments  # noqa: E402
from duplexcorpus.runner import run  # noqa: E402


def human_word_timing(out: Path, wf) -> None:
    """A perfect annotator's regions and text for the first 30 s of each English sample: word times
    spread evenly over each region (no aligner) vs aligned by realign_windows, against the truth."""
    import copy

    import numpy as np

    from duplexcorpus.review.quality import human_word_errors, truth_windows
    from duplexcorpus.review.realign import realign_windows

    truth = pd.read_parquet(ROOT / "data_samples" / "truth" / "words.parquet")
    recs = pd.read_parquet(out / "tables" / "recordings.parquet")
    merged = truth_windows(truth, recs[recs.recording_id.isin(truth[truth.language == "en"].recording_id)])
    even = copy.deepcopy(merged)
    t0 = time.perf_counter()
    report = realign_windows(out, wf, merged)
    seconds = time.perf_counter() - t0
    regions = sum(len(w["segments"]) for ws in merged.values() for w in ws)
    for name, m in (("spread evenly", even), ("aligned", merged)):
        starts, ends = human_word_errors(m, truth)
        print(f"human words {name:13s}: start/end error median {np.median(starts) * 1000:.0f}/{np.median(ends) * 1000:.0f} ms, "
              f"p90 {np.percentile(starts, 90) * 1000:.0f}/{np.percentile(ends, 90) * 1000:.0f} ms ({len(starts)} words)")
    print(f"re-alignment of {regions} regions: {seconds:.1f} s including the model load ({report})")


def main() -> None:
    import os

    from duplexcorpus.review.labeling import labeling_config
    from duplexcorpus.review.labelstudio import LabelStudioBridge
    from duplexcorpus.review.merge import merge_export
    from duplexcorpus.review.realign import realign_windows
    from duplexcorpus.review.routing import Window
    from duplexcorpus.review.server import start, wait_ready
    from duplexcorpus.review.tasks import build_tasks

    base = Path(tempfile.mkdtemp(prefix="dxc-bench-review-"))
    (base / "root").mkdir()
    out = base / "root" / "out"
    wf = load_workflow(ROOT / "workflows" / "samples.yaml")
    run(ROOT / "data_samples" / "audio", out, wf, executor="local")
    labels = label_segments(pd.read_parquet(out / "tables" / "segments.parquet"),
                            pd.read_parquet(ROOT / "data_samples" / "truth" / "segments.parquet"))
    print(f"routing AUROC on data_samples: {auroc(labels):.3f} ({int(labels.wrong.sum())} wrong of {len(labels)} segments)")
    by_reason = {}
    import json

    segs = pd.read_parquet(out / "tables" / "segments.parquet")
    reasons = segs.attributes.map(lambda a: json.loads(a).get("risk_reasons", {}))
    from sklearn.metrics import roc_auc_score

    for name in sorted({k for r in reasons for k in r}):
        v = reasons.map(lambda r: r.get(name, 0.0))
        if v.nunique() > 1:
            by_reason[name] = round(roc_auc_score(labels.wrong.astype(int), v), 3)
    print("AUROC of each reason alone:", by_reason)

    human_word_timing(out, wf)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    creds = {"DUPLEXCORPUS_LS_USER": "bench@example.com", "DUPLEXCORPUS_LS_PASSWORD": "bench-password-1",
             "DUPLEXCORPUS_LS_TOKEN": "feedfacefeedfacefeedfacefeedfacefeedface"}
    proc = start(port, base / "data", base / "root", creds)
    url = f"http://127.0.0.1:{port}"
    os.environ["DUPLEXCORPUS_LS_DOCUMENT_ROOT"] = str(base / "root")
    try:
        wait_ready(url, timeout=300)
        bridge = LabelStudioBridge(url, creds["DUPLEXCORPUS_LS_TOKEN"])
        recs = pd.read_parquet(out / "tables" / "recordings.parquet")
        windows = []
        k = 0
        while len(windows) < 1000:
            for r in recs.itertuples():
                start_s = (k * 0.037) % max(0.1, r.duration - 10.0)
                windows.append(Window(r.recording_id, round(start_s, 3), round(start_s + 10.0, 3), 0.5, ("bench",), ()))
                if len(windows) == 1000:
                    break
            k += 1
        tasks = build_tasks(out, wf, windows)
        state = out / "review" / "state.json"
        t0 = time.perf_counter()
        pid, _ = bridge.ensure_project(state, "bench", labeling_config(3), "", (out / "review" / "audio").resolve())
        rep = bridge.push(state, pid, tasks)
        push_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = bridge.push(state, pid, tasks)
        repush_s = time.perf_counter() - t0
        for task in bridge.tasks(pid):  # an annotator accepts every prediction (setup, not timed)
            result = list(task["predictions"][0]["result"]) + [
                {"from_name": "verdict", "to_name": "audio", "type": "choices", "value": {"choices": ["accept"]}}]
            bridge.client.annotations.create(id=task["id"], result=result)
        t0 = time.perf_counter()
        exported = bridge.export(pid)
        merged = merge_export(out, exported, align=lambda m: realign_windows(out, wf, m))
        pull_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        spec = json.loads((out / "run.json").read_text())
        from duplexcorpus.config import workflow_from_dict

        run(spec["input"], out, workflow_from_dict(spec["workflow"]), executor="local")
        reshard_s = time.perf_counter() - t0
        print(f"push 1000 tasks: {push_s:.1f} s (created {rep.created}); re-push: {repush_s:.1f} s (created {again.created})")
        print(f"pull 1000 annotated tasks (export + validate + merge): {pull_s:.1f} s "
              f"({merged['windows_merged']} windows merged, {merged['rejected_annotations']} rejected, "
              f"{merged['human_words_kept']} words kept, {merged['human_words_aligned']} aligned); "
              f"re-shard after it: {reshard_s:.1f} s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
