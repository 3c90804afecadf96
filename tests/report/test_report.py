"""The HTML report: what it says matches the tables, and every page works in a real headless
Chromium over file:// (no console errors, every picture decoded, every link and the audio found)."""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest

from duplexcorpus.report import write_report
from duplexcorpus.report.collect import load_corpus
from duplexcorpus.report.pages import risky_windows

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def browse_report(index: Path, audio_pages: int = 2) -> dict:
    """Open every page of the report in Chromium; return what was wrong with each (empty lists: fine)."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("no chromium (apt-get install -y chromium)")
    pages = sorted(index.parent.rglob("*.html"))
    problems: dict[str, list[str]] = {}
    audio_checked = 0
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context()
        requests: list[str] = []
        context.on("request", lambda r: requests.append(r.url))
        for path in pages:
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            # a media element that has read the metadata it was asked for aborts the rest: not an error
            page.on("requestfailed", lambda r: None if (r.resource_type == "media" and r.failure == "net::ERR_ABORTED")
                    else errors.append(f"failed ({r.failure}): {r.url}"))
            page.goto(path.as_uri(), wait_until="load")
            broken_images = page.evaluate(
                "() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
            links = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
            dead = []
            for href in links:
                url = urlparse(href)
                if url.scheme != "file":
                    dead.append(f"not local: {href}")
                elif not Path(unquote(url.path)).exists():
                    dead.append(f"missing: {href}")
                elif url.fragment and url.path.endswith(".html"):
                    target = Path(unquote(url.path)).read_text(encoding="utf-8")
                    if f'id="{url.fragment}"' not in target:
                        dead.append(f"no anchor: {href}")
            audio = []
            if page.locator("audio").count() and audio_checked < audio_pages:
                audio_checked += 1
                duration = page.evaluate("""() => new Promise(ok => { const a = document.querySelector('audio');
                    a.addEventListener('loadedmetadata', () => ok(a.duration)); a.addEventListener('error', () => ok(-1));
                    a.preload = 'metadata'; a.load(); setTimeout(() => ok(-2), 20000); })""")
                if not duration or duration <= 0:
                    audio.append(f"audio did not load ({duration}): {page.locator('audio').get_attribute('src')}")
            problems[str(path.relative_to(index.parent))] = errors + broken_images + dead + audio
            page.close()
        browser.close()
    off_disk = [u for u in requests if not u.startswith(("file://", "data:"))]
    problems["(network)"] = off_disk
    return problems


@pytest.mark.slow  # a browser: not the fast lane
def test_report_opens_in_chromium_with_everything_working(synthetic_run, tmp_path):
    out = tmp_path / "corpus"
    shutil.copytree(synthetic_run, out)
    index = write_report(out)
    problems = browse_report(index)
    assert {k: v for k, v in problems.items() if v} == {}
    recs = pd.read_parquet(out / "tables" / "recordings.parquet")
    pages = sorted((out / "report" / "recordings").glob("*.html"))
    assert len(pages) == len(recs)  # a page per recording, each checked above
    assert len(list((out / "report" / "img" / "rec").glob("*.png"))) == len(recs)


def test_report_says_what_the_tables_say(synthetic_run, tmp_path):
    out = tmp_path / "corpus"
    shutil.copytree(synthetic_run, out)
    write_report(out)
    corpus = load_corpus(out)
    html = (out / "report" / "index.html").read_text()
    for split, sec in corpus.recordings.groupby("split").duration.sum().items():
        assert re.search(rf"<td>{split}</td><td class=\"num\">{sec / 3600:.3f}</td>", html)
    for code in corpus.quarantine.reason_code:
        assert f"<code>{code}</code>" in html
    # the review page lists exactly the windows review push would send, riskiest first
    review = (out / "report" / "review.html").read_text()
    windows = risky_windows(corpus)
    assert windows and f"{len(windows)} windows" in review
    scores = [float(x) for x in re.findall(r'<td class="num">(\d\.\d\d)</td><td>', review)]
    assert scores == sorted(scores, reverse=True) and len(scores) == min(len(windows), 200)
    # a recording page: its words, its laughter (a non-verbal event) in the key, its risky windows
    rid = corpus.events[corpus.events.type == "laughter"].recording_id.iloc[0]
    page = (out / "report" / "recordings" / f"{rid}.html").read_text()
    assert "laughter" in page
    first = corpus.words[corpus.words.recording_id == rid].sort_values("start").iloc[0]
    assert f">{first.word}</span>" in page
    for w in [w for w in windows if w.recording_id == rid]:
        assert f"{w.start:.1f}–{w.end:.1f} s" in page
    # words page: per-language counts and the hallucination drops by reason
    words = (out / "report" / "words.html").read_text()
    for lang, n in corpus.words.language.value_counts().items():
        assert f"<td>{lang}</td><td class=\"num\">{n}</td>" in words
    for reason, n in corpus.dropped.reason.value_counts().items():
        assert f"<code>{reason}</code></td><td class=\"num\">{n}</td>" in words


def test_recording_pages_can_be_limited(synthetic_run, tmp_path):
    out = tmp_path / "corpus"
    shutil.copytree(synthetic_run, out)
    write_report(out, recording_pages=3)
    assert len(list((out / "report" / "recordings").glob("*.html"))) == 3
    listing = (out / "report" / "recordings.html").read_text()
    assert listing.count('href="recordings/') == 3 and "first 3 recordings" in listing


@pytest.mark.slow  # a browser: not the fast lane
def test_a_corpus_where_every_input_was_quarantined(tmp_path):
    """Bad input never crashes a run: nor does a report of nothing but quarantine."""
    from tests.report.conftest import _bench

    out = _bench().synthesize(tmp_path / "empty", recordings=0)
    index = write_report(out)
    html = index.read_text()
    assert "<b>0</b> recordings" in html and "<code>truncated</code>" in html
    assert "configs" not in (out / "README.md").read_text().split("---")[1]
    assert {k: v for k, v in browse_report(index).items() if v} == {}


def test_report_on_the_sample_run(sample_run, tmp_path):
    """The real run on data_samples: built in under 30 s (the issue's bar), and every page works."""
    out = tmp_path / "samples"
    shutil.copytree(sample_run.out, out)
    t0 = time.perf_counter()
    index = write_report(out)
    seconds = time.perf_counter() - t0
    assert seconds < 30, seconds
    problems = browse_report(index, audio_pages=8)
    assert {k: v for k, v in problems.items() if v} == {}
    assert (out / "README.md").exists()
