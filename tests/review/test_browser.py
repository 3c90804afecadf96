"""An annotator in a real browser: headless Chromium (Playwright) on the real Label Studio opens a
pushed task, sees both channels' waveforms and the pre-annotated regions, changes a region and its
transcript, submits; pull brings the change into the tables and the shards."""
from __future__ import annotations

import io
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from duplexcorpus.review.labelstudio import LabelStudioBridge
from duplexcorpus.review.push import pull, push

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def waveform_bands(png: bytes) -> int:
    """Horizontal bands of grey waveform ink in a screenshot of the audio canvas (the time ruler,
    the top eighth, is left out; coloured region overlays are not ink)."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(float)
    rgb = rgb[rgb.shape[0] // 8:]
    grey_ink = (rgb.mean(axis=2) < 170) & (rgb.max(axis=2) - rgb.min(axis=2) < 40)
    rows = np.flatnonzero(grey_ink.mean(axis=1) > 0.02)
    if not len(rows):
        return 0
    return len(np.split(rows, np.flatnonzero(np.diff(rows) > 12) + 1))


def outliner_numbers(page) -> set[int]:
    """The numbers of the regions the outliner lists. It draws only the rows in view (a virtual
    list: 11 rows on a 1000 px page), so it is scrolled through to the end and back."""
    rows = page.locator(".lsf-tree__node_type_audioregion")
    rows.first.hover()
    seen: set[int] = set()
    unchanged = 0
    while unchanged < 3:
        before = len(seen)
        seen |= {int(text.split()[0]) for text in rows.all_inner_texts()}
        unchanged = unchanged + 1 if len(seen) == before else 0
        page.mouse.wheel(0, 200)
        page.wait_for_timeout(150)
    page.mouse.wheel(0, -100_000)
    return seen


def _label_regions(task: dict) -> list[dict]:
    return [r for r in task["predictions"][0]["result"] if r["from_name"] == "label"]


def test_annotator_edits_a_task_in_the_browser(run_copy, label_studio):
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("no chromium (apt-get install -y chromium)")
    bridge = LabelStudioBridge()
    report = push(run_copy, bridge)
    tasks = {t["id"]: t for t in bridge.tasks(report["project_id"])}
    riskiest = min(t["predictions"][0]["score"] for t in tasks.values())

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.route("**/raw.githubusercontent.com/**", lambda route: route.abort())  # tips, not needed
        page.set_default_timeout(120_000)
        page.goto(label_studio["url"] + "/user/login/")
        page.fill("input[name=email]", label_studio["DUPLEXCORPUS_LS_USER"])
        page.fill("input[name=password]", label_studio["DUPLEXCORPUS_LS_PASSWORD"])
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_load_state("networkidle")
        # "Label All Tasks", as an annotator starts: the label stream serves the next task
        with page.expect_response(lambda r: "id=next_task" in r.url, timeout=240_000) as served:
            page.goto(f"{label_studio['url']}/projects/{report['project_id']}/data?labeling=1")
        task = tasks[served.value.json()["id"]]
        assert task["predictions"][0]["score"] == riskiest  # uncertainty sampling: the riskiest window first
        assert task["data"]["num_channels"] == 2
        label_regions = _label_regions(task)
        # generous waits: the labeling app is large and this machine has two cores
        page.wait_for_selector("text=Verdict for the whole window", timeout=240_000)
        try:
            page.wait_for_function("() => document.querySelectorAll('.lsf-tree__node_type_audioregion').length > 0",
                                   timeout=180_000)
        except Exception:
            page.screenshot(path=str(run_copy.parent / "browser_failure.png"))  # kept for diagnosis
            raise
        # the label stream opens with the instructions (English and Chinese); the annotator closes them
        instructions = page.locator(".lsf-modal-ls", has_text="Labeling Instructions")
        instructions.get_by_text("Reviewing a two-channel conversation window").wait_for()
        assert instructions.get_by_text("双声道对话片段审核说明").count() == 1
        instructions.get_by_role("button", name="Close modal").click()
        instructions.wait_for(state="hidden")
        page.wait_for_timeout(2000)  # the waveform is drawn after decoding
        regions = page.locator(".lsf-tree__node_type_audioregion")
        assert outliner_numbers(page) == set(range(1, len(label_regions) + 1))  # every pre-annotated region is listed
        assert waveform_bands(page.locator("canvas").first.screenshot()) >= 2  # both channels drawn
        assert page.get_by_text(task["data"]["reasons"].split(". ")[0]).count() >= 1  # why it was sent, in words

        # change a speech region: correct its transcript in place (its pencil), add an event label, submit
        regions.filter(has_text="Speech_").first.click()
        predicted = page.locator(".lsf-textarea__region").first
        predicted.wait_for()
        assert page.locator("textarea.is-search").count() == 0  # one transcript per region: no second box
        predicted.locator(".lsf-textarea__actions button").first.click()
        box = page.locator("textarea[name^=transcript]").first
        box.fill("browser edit check")
        box.press("Enter")
        page.locator(".lsf-label", has_text="Laughter").first.click()
        page.locator("label", has_text="fixed").first.click()
        with page.expect_response(lambda r: r.request.method == "POST" and f"/api/tasks/{task['id']}/annotations" in r.url) as saved:
            page.get_by_test_id("bottombar-submit-button").click()
        assert saved.value.ok
        browser.close()

    assert bridge.tasks(report["project_id"]) and any(t["id"] == task["id"] and t["total_annotations"] == 1
                                                      for t in bridge.tasks(report["project_id"]))
    result = pull(run_copy, bridge)
    assert result["windows_merged"] == 1 and result["rejected_annotations"] == 0
    segs = pd.read_parquet(run_copy / "tables" / "segments.parquet")
    human = segs[(segs.source == "human") & segs.attributes.str.contains("browser edit check")]
    assert len(human) == 1
    assert json.loads(human.attributes.iloc[0])["text"] == "browser edit check"  # replaced, not appended
    events = pd.read_parquet(run_copy / "tables" / "events.parquet")
    assert ((events.type == "laughter") & (events.source == "human")).sum() == 1
    import webdataset as wds

    found = False
    for sample in wds.WebDataset(sorted(str(p) for p in (run_copy / "shards").glob("*.tar")), shardshuffle=False).decode():
        if sample["json"]["recording_id"] == task["data"]["recording_id"]:
            found |= any(w["word"] == "browser" and w["source"] == "human" for w in sample["json"]["words"])
    assert found
