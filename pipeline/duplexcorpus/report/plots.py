"""The corpus-level pictures of the report: histograms, bars and box plots, as PNG files.

matplotlib, not Vega-Lite/Altair: a PNG opens from disk in any browser with no JavaScript and no CDN
(Altair charts need the Vega runtime, which would have to be bundled), it is already in the
environment, and the same code draws the per-recording pictures (`timeline.py`). Figures are made
with the object API on the Agg canvas (no pyplot): nothing global to close, nothing shown.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from duplexcorpus.report.references import Reference

DPI = 96
INK = "#1f3b57"
REF_COLOURS = ("#d62728", "#2ca02c", "#9467bd")


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def _empty(ax, text: str = "no values in this corpus") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def _mark(ax, refs: Iterable[Reference]) -> None:
    for colour, ref in zip(REF_COLOURS, refs):
        if ref.low == ref.high:
            ax.axvline(ref.low, color=colour, linestyle="--", linewidth=1.5, label=ref.label)
        else:
            ax.axvspan(ref.low, ref.high, color=colour, alpha=0.15, label=ref.label)


def histogram(values: Sequence[float], bins: np.ndarray, xlabel: str, title: str, path: Path,
              refs: Iterable[Reference] = (), median: bool = True) -> Path:
    fig = new_figure(6.0, 3.2)
    ax = fig.add_subplot()
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values):
        ax.hist(np.clip(values, bins[0], bins[-1]), bins=bins, color=INK, alpha=0.85)
        if median:
            ax.axvline(float(np.median(values)), color="#ff7f0e", linewidth=1.5,
                       label=f"median {np.median(values):.2f} s (n={len(values)})")
        _mark(ax, refs)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper right", frameon=False)
    else:
        _mark(ax, refs)
        _empty(ax)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def bars(values: dict[str, float], xlabel: str, title: str, path: Path, refs: Iterable[Reference] = ()) -> Path:
    """Horizontal bars, one per key (in the order given)."""
    fig = new_figure(6.0, max(1.6, 0.6 + 0.32 * len(values)))
    ax = fig.add_subplot()
    if values:
        labels = list(values)[::-1]
        ax.barh(labels, [values[k] for k in labels], color=INK, alpha=0.85)
        _mark(ax, refs)
        ax.set_xlabel(xlabel)
        if refs:
            ax.legend(fontsize=7, loc="lower right", frameon=False)
    else:
        _empty(ax)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def stacked_hours(table: dict[str, dict[str, float]], title: str, path: Path) -> Path:
    """Hours per split (bars) stacked by a second key (e.g. language)."""
    fig = new_figure(6.0, max(1.6, 0.8 + 0.4 * len(table)))
    ax = fig.add_subplot()
    keys = sorted({k for row in table.values() for k in row})
    splits = list(table)[::-1]
    left = np.zeros(len(splits))
    cmap = matplotlib.colormaps["tab10"]
    for i, key in enumerate(keys):
        widths = np.array([table[s].get(key, 0.0) for s in splits])
        ax.barh(splits, widths, left=left, label=key, color=cmap(i % 10))
        left += widths
    if not table:
        _empty(ax)
    else:
        ax.set_xlabel("hours")
        ax.legend(fontsize=7, loc="lower right", frameon=False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def boxes(columns: dict[str, np.ndarray], ylabel: str, title: str, path: Path) -> Path:
    """One box per column (values per recording), corpus mean marked."""
    fig = new_figure(6.0, 3.2)
    ax = fig.add_subplot()
    names = [k for k, v in columns.items() if len(v)]
    if names:
        ax.boxplot([columns[k] for k in names], tick_labels=names, showmeans=True, showfliers=True)
        ax.set_ylabel(ylabel)
    else:
        _empty(ax)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)
