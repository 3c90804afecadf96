"""The picture of one recording: who speaks when, and what happened between them.

One row per (channel, speaker): its IPUs, with its backchannels and interruptions drawn over them,
crosstalk the IPU stage suppressed on that channel under them, and any other event (laughter, noise,
filler, ...) as ticks; one row for overlaps; one for the windows review picked as risky. Each row
and kind is ONE matplotlib collection (`broken_barh`, one `scatter` per tick kind), whatever the
number of IPUs, so a corpus of a thousand recordings draws a thousand small pictures in about a
minute: the artists, not the data, cost the time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.patches import Patch

from duplexcorpus.report.plots import new_figure, save

SPEAKER_COLOURS = ("#1f77b4", "#2ca02c", "#8c564b", "#17becf", "#7f7f7f", "#bcbd22")
OVER = {"backchannel": "#ff7f0e", "interruption": "#d62728"}  # drawn over the listener's IPUs
CROSSTALK = "#bbbbbb"
OVERLAP = "#9467bd"
RISKY = "#e377c2"
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


def _spans(frame: pd.DataFrame) -> list[tuple[float, float]]:
    return list(zip(frame.start.to_numpy(float), (frame.end - frame.start).to_numpy(float)))


def draw_recording(duration: float, channels: dict[int, str], segments: pd.DataFrame, events: pd.DataFrame,
                   risky: list[tuple[float, float]], path: Path, width: float = 11.0) -> Path:
    rows = rows_of(channels, segments)
    n = len(rows) + 2  # + overlap, + risky windows
    fig = new_figure(width, 0.9 + 0.42 * n)
    ax = fig.add_subplot()
    y = {row: n - 1 - i for i, row in enumerate(rows)}  # speakers on top, in order
    channel_row = {}
    for row in rows:
        channel_row.setdefault(row.channel, row)
    for i, row in enumerate(rows):
        base = y[row]
        mine = segments[(segments.channel == row.channel) & (segments.speaker_id == row.speaker_id)]
        ax.broken_barh(_spans(mine), (base - 0.35, 0.7), color=SPEAKER_COLOURS[i % len(SPEAKER_COLOURS)])
        ev = events[(events.channel == row.channel)
                    & ((events.speaker_id == row.speaker_id) | events.speaker_id.isna())]
        for kind, colour in OVER.items():
            sel = ev[ev.type == kind]
            if len(sel):
                ax.broken_barh(_spans(sel), (base - 0.2, 0.4), color=colour)
        if channel_row[row.channel] == row:
            sel = events[(events.type == "crosstalk") & (events.channel == row.channel)]
            if len(sel):
                ax.broken_barh(_spans(sel), (base - 0.48, 0.13), color=CROSSTALK)
    other = events[~events.type.isin(DRAWN | NOT_DRAWN)]
    for k, (kind, sel) in enumerate(other.groupby("type")):
        ys = [y.get(channel_row.get(int(c)) if pd.notna(c) else None, 1) + 0.45 for c in sel.channel]
        ax.scatter((sel.start + sel.end) / 2, ys, marker="v", s=22, color=f"C{(k + 4) % 10}", label=kind, zorder=3)
    overlaps = events[events.type == "overlap"]
    ax.broken_barh(_spans(overlaps), (1 - 0.3, 0.6), color=OVERLAP)
    if risky:
        ax.broken_barh([(s, e - s) for s, e in risky], (0 - 0.3, 0.6), color=RISKY, alpha=0.6)
    ax.set_yticks([y[r] for r in rows] + [1, 0], [r.label for r in rows] + ["overlap", "risky windows"], fontsize=8)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlim(0, max(duration, 1e-3))
    ax.set_xlabel("time (s)", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="#eeeeee")
    ax.set_axisbelow(True)
    handles = [Patch(color=OVER["backchannel"], label="backchannel"), Patch(color=OVER["interruption"], label="interruption"),
               Patch(color=CROSSTALK, label="crosstalk suppressed"), Patch(color=OVERLAP, label="overlap"),
               Patch(color=RISKY, alpha=0.6, label="risky window")]
    handles += [h for h in ax.get_legend_handles_labels()[0]]
    ax.legend(handles=handles, fontsize=7, ncol=len(handles), loc="lower left", bbox_to_anchor=(0, 1.0),
              frameon=False, handlelength=1.2, columnspacing=1.0)
    fig.tight_layout(pad=0.4)
    return save(fig, path)


def legend_kinds(events: pd.DataFrame) -> list[str]:
    """Event types that a recording's picture draws as ticks (not one of the fixed kinds)."""
    return sorted(set(events.type) - DRAWN - NOT_DRAWN)

