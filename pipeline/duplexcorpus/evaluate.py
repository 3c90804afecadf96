"""Score a run's tables against reference tables (data_samples/truth or a user's references).

IPUs are matched per (recording, channel), events per (recording, type[, channel]) with a collar on
both boundaries; interruptions are scored separately as successful / attempted.

A reference channel that names no speaker (`speaker_id` "mix" or empty: data_samples' mono mix) says
only where speech is. There the run's segments are merged into stretches of speech before matching
(a diarized run splits an IPU where the speaker changes, and speech under another's piece is a segment
of its own: neither is an error such a reference can see), and a recording whose every channel is
like that has its events left out of the event scores (it has no per-speaker events to match).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from duplexcorpus.metrics import MatchScore, grouped_match

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


SPEAKERLESS = ("mix", "")


def speakerless_channels(ref_seg: pd.DataFrame) -> set[tuple[str, int]]:
    """(recording, channel) whose reference segments name no speaker."""
    names = ref_seg.speaker_id.fillna("").astype(str)
    out = set()
    for (rid, ch), g in names.groupby([ref_seg.recording_id, ref_seg.channel.astype(int)]):
        if g.isin(SPEAKERLESS).all():
            out.add((rid, int(ch)))
    return out


def speech_stretches(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping or touching spans merged."""
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + 1e-6:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


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
    speakerless = speakerless_channels(pick(ref_seg))
    hs = {k: speech_stretches(v) if k in speakerless else v for k, v in hs.items()}
    ref_channels = pick(ref_seg).groupby("recording_id").channel.apply(lambda c: {int(x) for x in c})
    no_events = {rid for rid, chans in ref_channels.items() if all((rid, c) in speakerless for c in chans)}
    report: dict[str, dict] = {"ipu": grouped_match(rs, hs, collar).summary()}
    for rid in rids:
        report[f"ipu:{rid}"] = grouped_match({k: v for k, v in rs.items() if k[0] == rid},
                                             {k: v for k, v in hs.items() if k[0] == rid}, collar).summary()
    he, re_ = _group_events(pick(hyp_ev)), _group_events(pick(ref_ev))
    he = {k: v for k, v in he.items() if k[0] not in no_events}
    for t in EVENT_TYPES:
        report[t] = grouped_match({k: v for k, v in re_.items() if k[1] == t},
                                  {k: v for k, v in he.items() if k[1] == t}, collar).summary()
    interruptions = MatchScore()
    for t in ("interruption_successful", "interruption_attempted"):
        interruptions = interruptions + grouped_match({k: v for k, v in re_.items() if k[1] == t},
                                                      {k: v for k, v in he.items() if k[1] == t}, collar)
    report["interruption"] = interruptions.summary()
    return report


def score_table(report: dict[str, dict], by_recording: bool = False, lowest: int = 3) -> list[str]:
    """`score_run`'s report as console lines: a header, a row per metric, then the recordings with
    the lowest IPU F1 in one line (every recording, a row each, with `by_recording`)."""
    columns = (("f1", "F1", "{:.3f}"), ("precision", "precision", "{:.3f}"), ("recall", "recall", "{:.3f}"),
               ("tp", "tp", "{}"), ("fp", "fp", "{}"), ("fn", "fn", "{}"),
               ("median_boundary_error_ms", "boundary ms", "{:.1f}"))

    def row(name: str, scores: dict) -> str:
        cells = [fmt.format(scores[key]) if scores.get(key) is not None else "-" for key, _, fmt in columns]
        return f"{name:<26}" + "".join(f"{cell:>{max(len(title), 6) + 2}}" for cell, (_, title, _) in zip(cells, columns))

    per_recording = {name.split(":", 1)[1]: scores for name, scores in report.items() if name.startswith("ipu:")}
    lines = [f"{'metric':<26}" + "".join(f"{title:>{max(len(title), 6) + 2}}" for _, title, _ in columns)]
    lines += [row(name, scores) for name, scores in report.items() if not name.startswith("ipu:")]
    if by_recording:
        lines += [row(f"ipu {rid}", scores) for rid, scores in per_recording.items()]
    elif per_recording:
        worst = sorted(per_recording.items(), key=lambda kv: (kv[1].get("f1", 0.0), kv[0]))[:lowest]
        lines.append(f"ipu F1 per recording, lowest {len(worst)} of {len(per_recording)}: "
                     + ", ".join(f"{rid} {scores.get('f1', 0.0):.3f}" for rid, scores in worst)
                     + " (--by-recording for all)")
    return lines


# ------------------------------------------------------------------------------------------ words
def align_units(ref: list[str], hyp: list[str]) -> list[tuple[int, int]]:
    """Index pairs of equal units on a minimum-edit alignment (rapidfuzz Levenshtein opcodes)."""
    from rapidfuzz.distance import Levenshtein

    pairs = []
    for tag, i1, i2, j1, j2 in Levenshtein.opcodes(ref, hyp):
        if tag == "equal":
            pairs += list(zip(range(i1, i2), range(j1, j2)))
    return pairs


def _unit_rows(frame: pd.DataFrame) -> list[tuple[str, float, float, dict]]:
    """Explode word rows into units (a hyphenated or multi-unit word splits its span evenly)."""
    from duplexcorpus.text import units

    out = []
    for row in frame.itertuples():
        toks = units(row.word)
        for k, tok in enumerate(toks):
            step = (row.end - row.start) / len(toks)
            out.append((tok, row.start + k * step, row.start + (k + 1) * step, row._asdict()))
    return out


def unit_timing_errors(ref: pd.DataFrame, hyp: pd.DataFrame) -> tuple[list[float], list[float]]:
    """|start| and |end| differences (s) of the units a minimum-edit alignment pairs between truth
    and hypothesis words of one channel (truth words espeak spoke as one are left out)."""
    r = _unit_rows(ref.sort_values("start"))
    h = _unit_rows(hyp.sort_values("start"))
    return _pair_errors(r, h, align_units([u[0] for u in r], [u[0] for u in h]))


def _pair_errors(r: list, h: list, pairs: list[tuple[int, int]]) -> tuple[list[float], list[float]]:
    timed = [(i, j) for i, j in pairs if not r[i][3]["joined"]]
    return [abs(h[j][1] - r[i][1]) for i, j in timed], [abs(h[j][2] - r[i][2]) for i, j in timed]


def score_words(run_tables: str | Path, truth: str | Path, recordings: list[str] | None = None) -> dict:
    """Word/character error rate, timing error of correctly recognised units (truth words espeak
    spoke as one are left out of timing), share of words with times, listener-token recall."""
    from duplexcorpus.text import error_rate

    hyp = pd.read_parquet(Path(run_tables) / "words.parquet")
    ref = pd.read_parquet(Path(truth) / "words.parquet")
    rids = sorted(set(ref.recording_id) & set(pd.read_parquet(Path(run_tables) / "recordings.parquet").recording_id))
    if recordings:
        rids = [r for r in rids if r in recordings]
    starts, ends, per_rec = [], [], {}
    bc_total = bc_found = 0
    errors = {"en": [0, 0], "zh": [0, 0]}
    for rid in rids:
        rec_err = [0, 0]
        for ch in sorted(set(ref[ref.recording_id == rid].channel)):
            r = _unit_rows(ref[(ref.recording_id == rid) & (ref.channel == ch)].sort_values("start"))
            h = _unit_rows(hyp[(hyp.recording_id == rid) & (hyp.channel == ch)].sort_values("start"))
            er = error_rate([u[0] for u in r], [u[0] for u in h])
            lang = r[0][3]["language"] if r else "en"
            errors[lang][0] += er["errors"]
            errors[lang][1] += er["units"]
            rec_err[0] += er["errors"]
            rec_err[1] += er["units"]
            pairs = align_units([u[0] for u in r], [u[0] for u in h])
            matched = dict(pairs)
            s_err, e_err = _pair_errors(r, h, pairs)
            starts += s_err
            ends += e_err
            # listener tokens: the truth's backchannel utterances, unit by unit
            for i, u in enumerate(r):
                if u[3]["kind"] in ("bc", "bc_pause"):
                    bc_total += 1
                    bc_found += i in matched
        per_rec[rid] = rec_err[0] / max(rec_err[1], 1)
    pct = lambda xs, q: float(np.percentile(xs, q)) * 1000 if xs else float("nan")  # noqa: E731
    return {
        "wer_en": errors["en"][0] / max(errors["en"][1], 1), "cer_zh": errors["zh"][0] / max(errors["zh"][1], 1),
        "matched_units": len(starts), "start_median_ms": pct(starts, 50), "end_median_ms": pct(ends, 50),
        "start_p90_ms": pct(starts, 90), "end_p90_ms": pct(ends, 90),
        "timed_share": float(((hyp.start.notna()) & (hyp.end.notna()) & (hyp.end >= hyp.start)).mean()) if len(hyp) else 1.0,
        "interpolated_share": float(hyp.interpolated.mean()) if len(hyp) else 0.0,
        "backchannel_recall": bc_found / max(bc_total, 1), "backchannel_units": bc_total,
        "error_rate_by_recording": per_rec,
    }


# ------------------------------------------------------------------- per-speaker channels vs an RTTM
def channel_attribution(ipus: dict[int, list[tuple[float, float]]], turns: dict[int, list[tuple[float, float]]],
                        duration: float, min_turn: float = 0.3, frame_s: float = 0.01) -> dict:
    """Close-talk channels (one speaker each) against that speaker's reference turns (an RTTM).

    `ipus` / `turns`: channel -> (start, end) list; `turns[c]` are the turns of the speaker whose
    microphone channel c is. An IPU on channel c is *attributed right* when c's speaker talks for at
    least half of it (the rest is the other speakers' leak or noise); a human turn of at least
    `min_turn` seconds is *recalled* when its channel's IPUs cover at least half of it. Frame rates on
    `frame_s` frames, per channel, as DER components (both over the reference speech time): miss =
    reference speech outside the channel's IPUs, false alarm = IPU time outside the reference.
    """
    n = int(np.ceil(duration / frame_s))
    centres = (np.arange(n) + 0.5) * frame_s

    def mask(spans):
        m = np.zeros(n, bool)
        for s, e in spans:
            m |= (centres >= s) & (centres < e)
        return m

    def covered(span, m):
        sel = (centres >= span[0]) & (centres < span[1])
        return float(m[sel].mean()) if sel.any() else 0.0

    right = total = found = long_turns = 0
    per_channel = {}
    for c in sorted(set(ipus) | set(turns)):
        ref, hyp = mask(turns.get(c, [])), mask(ipus.get(c, []))
        for span in ipus.get(c, []):
            total += 1
            right += covered(span, ref) >= 0.5
        for span in turns.get(c, []):
            if span[1] - span[0] >= min_turn:
                long_turns += 1
                found += covered(span, hyp) >= 0.5
        speech = max(int(ref.sum()), 1)
        per_channel[c] = {"miss": float((ref & ~hyp).sum() / speech), "false_alarm": float((hyp & ~ref).sum() / speech),
                          "ipus": len(ipus.get(c, [])), "turns": len(turns.get(c, []))}
    return {"precision": right / total if total else 1.0, "ipus": total, "ipus_right": right,
            "turn_recall": found / long_turns if long_turns else 1.0, "turns": long_turns, "turns_found": found,
            "channels": per_channel}
