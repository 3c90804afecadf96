"""What a data team reads about a finished corpus: a static HTML report in OUT/report/ and a Hugging
Face dataset card in OUT/README.md.

    from duplexcorpus.report import write_report
    index = write_report("runs/samples")        # OUT/report/index.html (and OUT/README.md)

Modules: `collect` (tables, stats.json, drops and review state -> one `Corpus` record), `references`
(published turn-taking values and their sources), `plots` (corpus pictures), `timeline` (the picture
of one recording), `pages` (the HTML), `card` (the dataset card). Everything is read through
`RunFolder` and stats.json; no audio is loaded (recording pages link to the run's audio).
"""
from __future__ import annotations

from pathlib import Path

REPORT_DIR = "report"


def write_report(out_dir: str | Path, recording_pages: int | None = None, license: str | None = None) -> Path:
    """Write OUT/report/ (index.html, the other pages, img/, style.css) and the dataset card OUT/README.md.
    `recording_pages`: write pages for only the first N recordings (None: all). Returns index.html."""
    from duplexcorpus.report.card import write_card
    from duplexcorpus.report.collect import load_corpus
    from duplexcorpus.report.pages import ReportWriter

    out = Path(out_dir)
    corpus = load_corpus(out)
    index = ReportWriter(corpus, out / REPORT_DIR, recording_pages).write()
    write_card(corpus, license=license)
    return index
