"""push -> annotate (through the API, as an annotator's submission) -> pull, on a real Label Studio."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from duplexcorpus.review.labelstudio import LabelStudioBridge, ReviewError
from duplexcorpus.review.push import pull, push
from duplexcorpus.review.routing import plain_reasons


def _annotate(bridge, task, edit=None, verdict="fixed"):
    result = [dict(r, value=dict(r["value"])) for r in task["predictions"][0]["result"]]
    if edit:
        edit(result)
    result.append({"from_name": "verdict", "to_name": "audio", "type": "choices", "value": {"choices": [verdict]}})
    return bridge.client.annotations.create(id=task["id"], result=result)


def _outside(frame, windows):
    mid = (frame.start + frame.end) / 2
    keep = pd.Series(True, index=frame.index)
    for rid, (a, b) in windows:
        keep &= ~((frame.recording_id == rid) & (mid >= a) & (mid < b))
    return frame[keep].reset_index(drop=True)


def test_push_is_idempotent_and_keeps_annotated_tasks(run_copy):
    bridge = LabelStudioBridge()
    first = push(run_copy, bridge)
    assert first["created"] == first["tasks"] > 0
    second = push(run_copy, bridge)
    assert second["created"] == 0 and second["unchanged"] == first["tasks"]
    tasks = bridge.tasks(first["project_id"])
    assert len(tasks) == first["tasks"]  # no duplicates
    # Label Studio's score is a confidence: 1 - risk, so uncertainty sampling serves the riskiest first
    assert all(t["predictions"][0]["score"] == pytest.approx(1 - t["data"]["risk"]) for t in tasks)
    # annotators read why a window was sent in words; the codes stay in the data for machines
    assert all(t["data"]["reasons"] == plain_reasons(t["data"]["reason_codes"]) for t in tasks)
    assert any(t["data"]["reason_codes"] for t in tasks) and not any("_" in t["data"]["reasons"] for t in tasks)
    _annotate(bridge, tasks[0], verdict="accept")
    third = push(run_copy, bridge)
    assert third["annotated_kept"] == 1 and third["created"] == 0
    assert bridge.tasks(first["project_id"])[0]["total_annotations"] == 1
    # a task deleted by hand is detected and reported
    bridge.client.tasks.delete(id=tasks[-1]["id"])
    fourth = push(run_copy, bridge)
    assert fourth["deleted_by_hand"] == [tasks[-1]["data"]["task_key"]]
    # a labeling config edited by hand is reported (and left as the project owner made it)
    config = bridge.client.projects.get(id=first["project_id"]).label_config
    bridge.client.projects.update(id=first["project_id"], label_config=config.replace("Laughter", "Laugh"))
    assert push(run_copy, bridge)["config_changed_by_hand"] is True


def test_round_trip_loses_nothing_and_changes_nothing_outside(run_copy):
    bridge = LabelStudioBridge()
    report = push(run_copy, bridge)
    tasks = sorted(bridge.tasks(report["project_id"]), key=lambda t: t["data"]["task_key"])
    assert len(tasks) >= 3
    before = {t: pd.read_parquet(run_copy / "tables" / f"{t}.parquet") for t in ("segments", "words", "events")}

    def fix(result):  # move a boundary and correct a transcript, as an annotator would
        label = next(r for r in result if r["from_name"] == "label" and r["value"]["labels"][0].startswith("Speech"))
        label["value"]["end"] = round(label["value"]["end"] + 0.1, 3)
        text = next(r for r in result if r["from_name"] == "transcript" and r["id"] == label["id"])
        text["value"]["end"] = label["value"]["end"]
        text["value"]["text"] = ["corrected by a human"]

    def break_it(result):  # outside the window, unknown label, event without speaker
        result.append({"id": "bad1", "from_name": "label", "to_name": "audio", "type": "labels",
                       "value": {"start": 1.0, "end": 999.0, "channel": 0, "labels": ["Speech_A"]}})
        result.append({"id": "bad2", "from_name": "label", "to_name": "audio", "type": "labels",
                       "value": {"start": 0.1, "end": 0.5, "channel": 0, "labels": ["Giggle"]}})
        result.append({"id": "bad3", "from_name": "label", "to_name": "audio", "type": "labels",
                       "value": {"start": 0.1, "end": 0.5, "channel": 0, "labels": ["Backchannel"]}})

    _annotate(bridge, tasks[0], fix)
    _annotate(bridge, tasks[1], verdict="accept")
    _annotate(bridge, tasks[2], break_it)
    submitted = {}
    for t in tasks[:2]:
        ann = bridge.client.tasks.get(id=t["id"]).annotations[0]
        ann = ann if isinstance(ann, dict) else ann.dict()
        submitted[t["data"]["task_key"]] = [r for r in ann["result"] if r["from_name"] == "label"
                                            and any(x.startswith("Speech") for x in r["value"]["labels"])]
    out = pull(run_copy, bridge)
    assert out["windows_merged"] == 2 and out["rejected_annotations"] == 1 and out.get("resharded")

    rejected = json.loads((run_copy / "review" / "rejected.json").read_text())
    reasons = " ".join(rejected[0]["reasons"])
    assert "outside the window" in reasons and "Giggle" in reasons and "needs a speaker" in reasons
    assert rejected[0]["task_key"] == tasks[2]["data"]["task_key"]

    after = {t: pd.read_parquet(run_copy / "tables" / f"{t}.parquet") for t in ("segments", "words", "events")}
    human = after["segments"][after["segments"].source == "human"]
    assert len(human) == sum(len(v) for v in submitted.values())  # every submitted region is there
    assert "corrected by a human" in human.attributes.str.cat()
    assert (after["words"][after["words"].source == "human"].word == "corrected").any()
    # nothing outside the reviewed windows changed
    windows = [(t["data"]["recording_id"], (t["data"]["window_start"], t["data"]["window_end"])) for t in tasks[:2]]
    for name in ("segments", "words"):
        a, b = _outside(before[name], windows), _outside(after[name], windows)
        drop = [c for c in ("segment_id", "word_id", "attributes") if c in a]
        pd.testing.assert_frame_equal(a.drop(columns=drop), b.drop(columns=drop))
    import os

    token = os.environ["DUPLEXCORPUS_LS_TOKEN"]
    for path in (run_copy / "review").rglob("*"):  # the token is in no output
        if path.is_file() and path.suffix in (".json", ".parquet"):
            assert token.encode() not in path.read_bytes(), path
    audit = pd.read_parquet(run_copy / "review" / "audit.parquet")
    assert set(audit.action) == {"added", "removed"} and set(audit.task_key) == set(submitted)
    # the change reached the shards
    import webdataset as wds

    texts = [w["word"] for s in wds.WebDataset(sorted(str(p) for p in (run_copy / "shards").glob("*.tar")),
                                                shardshuffle=False).decode()
             for w in s["json"]["words"] if w.get("source") == "human"]
    assert "corrected" in texts


def test_two_annotators_who_disagree_are_flagged_not_merged(run_copy):
    bridge = LabelStudioBridge()
    report = push(run_copy, bridge)
    task = sorted(bridge.tasks(report["project_id"]), key=lambda t: t["data"]["task_key"])[0]

    def other_text(result):
        for r in result:
            if r["from_name"] == "transcript":
                r["value"]["text"] = ["something else entirely different"]

    _annotate(bridge, task)
    _annotate(bridge, task, other_text)
    out = pull(run_copy, bridge, reshard=False)
    assert out["disagreements"] == 1 and out["windows_merged"] == 0
    flagged = json.loads((run_copy / "review" / "disagreements.json").read_text())[0]
    assert flagged["agreement"][0]["cer_mean"] > 0.15


def test_server_down_is_a_clear_error_without_the_token(run_copy):
    bridge = LabelStudioBridge("http://127.0.0.1:9", "secret-token-value")
    with pytest.raises(ReviewError) as err:
        push(run_copy, bridge)
    assert "127.0.0.1:9" in str(err.value) and "secret-token-value" not in str(err.value)
    assert not (run_copy / "review" / "state.json").exists()  # no partial state
