"""The picture of one recording: who speaks when, and what happened between them.

One row per (channel, speaker): its IPUs, with its backchannels and interruptions drawn over them,
crosstalk the IPU stage suppressed on that channel under them, and any other event (laughter, noise,
filler, ...) as ticks; one row for overlaps; one for the windows review picked as risky. Each row
and kind is ONE matplotlib collection (`broken_barh`, one `scatter` per tick kind), whatever the
number of IPUs, and the figure is reused (`TimelinePainter`): the artists and the figure machinery,
not the data, cost the time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from duplexcorpus.report.plots import new_figure, save

SPEAKER_COLOURS = ("#1f77b4", "#2ca02c", "#8c564b", "#17becf", "#7f7f7f", "#bcbd22")
OVER = {"backchannel": "#ff7f0e", "interruption": "#d62728"}  # drawn over the listener's IPUs
CROSSTALK = "#bbbbbb"
OVERLAP = "#9467bd"
RISKY = "#e377c2"
TICK_COLOURS = ("#000000", "#e6550d", "#756bb1", "#31a354", "#3182bd", "#636363")
DRAWN = {"backchannel", "interruption", "crosstalk", "overlap"}
NOT_DRAWN = {"pause", "gap", "turn", "floor_transfer"}  # intervals every conversation is made of; in the tables


@dataclass(frozen=True)
class Row:
    channel: int
    speaker_id: str

    @property
    def label(self) -> str:
        return f"ch{self.channel} {self.speaker_id}"


def rows_of(channels: dict[int, str], segments: pd.DataFrame) -> list[Row]:
    """Channel-map speakers first, then speakers only the diarizer found, in channel order."""
    rows = {(int(c), str(s)) for c, s in zip(segments.channel, segments.speaker_id)}
    for ch, spk in channels.items():
        if not any(c == ch for c, _ in rows):
            rows.add((int(ch), str(spk)))
    return [Row(c, s) for c, s in sorted(rows)]


class TimelinePainter:
    """Draws recording pictures, reusing one figure per number of rows: creating a figure, its axes
    and tick machinery costs more than drawing a few collections, and a thousand recordings have only
    a handful of row counts. The colour key is on the page (HTML), not in the picture: a legend is
    the most expensive thing matplotlib draws here."""

    def __init__(self, width: float = 11.0):
        self.width = width
        self._figures: dict[int, tuple] = {}

    def _axes(self, n: int):
        if n not in self._figures:
            height = 0.7 + 0.42 * n
            fig = new_figure(self.width, height)
            # fixed margins in inches instead of tight_layout, which draws the whole figure once more
            fig.subplots_adjust(left=1.45 / self.width, right=1 - 0.15 / self.width, bottom=0.45 / height,
                                top=1 - 0.1 / height)
            ax = fig.add_subplot()
            ax.set_xlabel("time (s)", fontsize=8)
            ax.tick_params(axis="x", labelsize=8)
            ax.tick_params(axis="y", labelsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(10))
            ax.set_ylim(-0.6, n - 0.4)
            self._figures[n] = (fig, ax)
        fig, ax = self._figures[n]
        for artist in list(ax.collections):
            artist.remove()
        return fig, ax

    def draw(self, duration: float, channels: dict[int, str], segments: pd.DataFrame, events: pd.DataFrame,
             risky: list[tuple[float, float]], path: Path) -> Path:
        rows = rows_of(channels, segments)
        n = len(rows) + 2  # + overlap, + risky windows
        fig, ax = self._axes(n)
        y = {row: n - 1 - i for i, row in enumerate(rows)}  # speakers on top, in order
        channel_row: dict[int, Row] = {}
        for row in rows:
            channel_row.setdefault(row.channel, row)
        # plain arrays: a few boolean masks per row cost microseconds, pandas filters milliseconds
        s_ch, s_spk = segments.channel.to_numpy(), segments.speaker_id.to_numpy(object)
        s_span = np.stack([segments.start.to_numpy(float), (segments.end - segments.start).to_numpy(float)], axis=1)
        e_ch = events.channel.to_numpy(float)  # NaN: an event between speakers
        e_spk, e_type = events.speaker_id.to_numpy(object), events.type.to_numpy(object)
        e_span = np.stack([events.start.to_numpy(float), (events.end - events.start).to_numpy(float)], axis=1)
        for i, row in enumerate(rows):
            base = y[row]
            ax.broken_barh(s_span[(s_ch == row.channel) & (s_spk == row.speaker_id)], (base - 0.35, 0.7),
                           color=SPEAKER_COLOURS[i % len(SPEAKER_COLOURS)])
            on_row = (e_ch == row.channel) & ((e_spk == row.speaker_id) | pd.isna(e_spk))
            for kind, colour in OVER.items():
                sel = on_row & (e_type == kind)
                if sel.any():
                    ax.broken_barh(e_span[sel], (base - 0.2, 0.4), color=colour)
            if channel_row[row.channel] == row:
                sel = (e_ch == row.channel) & (e_type == "crosstalk")
                if sel.any():
                    ax.broken_barh(e_span[sel], (base - 0.5, 0.15), color=CROSSTALK)
        other = ~np.isin(e_type, list(DRAWN | NOT_DRAWN))
        for kind in sorted(set(e_type[other])):
            sel = other & (e_type == kind)
            ys = [y.get(channel_row.get(int(c)) if np.isfinite(c) else None, 1) + 0.42 for c in e_ch[sel]]
            ax.scatter(e_span[sel, 0] + e_span[sel, 1] / 2, ys, marker="v", s=24, color=tick_colour(kind), zorder=3)
        ax.broken_barh(e_span[e_type == "overlap"], (1 - 0.3, 0.6), color=OVERLAP)
        if risky:
            ax.broken_barh([(s, e - s) for s, e in risky], (0 - 0.3, 0.6), color=RISKY, alpha=0.6)
        ax.set_yticks([y[r] for r in rows] + [1, 0], [r.label for r in rows] + ["overlap", "risky windows"])
        ax.set_xlim(0, max(duration, 1e-3))
        return save(fig, path)


def tick_colour(kind: str) -> str:
    """A fixed colour per non-verbal/other event type, the same in the picture and the page's key."""
    import zlib

    return TICK_COLOURS[zlib.crc32(kind.encode()) % len(TICK_COLOURS)]


def colour_key(events: pd.DataFrame) -> list[dict]:
    """The key the page shows beside the picture: the fixed kinds and the tick kinds this recording has."""
    key = [{"label": k, "colour": c, "tick": False} for k, c in
           (("backchannel", OVER["backchannel"]), ("interruption", OVER["interruption"]),
            ("crosstalk suppressed", CROSSTALK), ("overlap", OVERLAP), ("risky window", RISKY))]
    return key + [{"label": k, "colour": tick_colour(k), "tick": True}
                  for k in sorted(set(events.type) - DRAWN - NOT_DRAWN)]
