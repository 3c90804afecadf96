"""Routing: how risky each automatic segment is, and which windows go to annotators.

Each reason has a strength in [0, 1] and a weight (workflow `review`); a segment's risk is the
noisy-OR 1 - prod(1 - w*r). Reasons: low ASR/alignment score, VAD probability near the threshold,
ambiguous crosstalk attribution, overlaps, interruptions, text dropped by the hallucination gates, a
language switch, and a speaking rate implausible for the text. The risk also gives every segment a
WenetSpeech-style confidence bucket (high / medium / low) that trainers can filter on unreviewed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from duplexcorpus.config import ReviewConfig
from duplexcorpus.records import Event, Segment
from duplexcorpus.text import units

# What an annotator reads for each reason code (the task data keeps the codes for machines). One
# sentence each, in plain words: what to listen for, not how the score was computed.
REASON_TEXT = {
    "low_asr": "Whisper was unsure of these words.",
    "vad_borderline": "It is unclear whether someone speaks here: the speech detector was borderline.",
    "crosstalk": "One speaker's voice may be leaking into another speaker's microphone here.",
    "overlap": "Two people speak at the same time here.",
    "interruption": "Someone cuts in while another person is speaking.",
    "dropped_text": "Some text here was removed as a likely recognition error: check whether something was said.",
    "language_switch": "The language changes here.",
    "text_mismatch": "The words do not fit the length of the speech: too few or too many for the time.",
}
SPOT_CHECK = "A spot check: nothing here looked wrong."


def plain_reasons(codes: tuple[str, ...] | list[str]) -> str:
    """The sentences annotators see for a window's reason codes (an unknown code still reads as words)."""
    return " ".join(REASON_TEXT.get(c, c.replace("_", " ").capitalize() + ".") for c in codes) or SPOT_CHECK


# speaking rates outside these (units per second) are implausible for conversational speech
RATE_RANGE = {"en": (0.6, 6.5), "zh": (1.2, 9.0)}


@dataclass
class Risk:
    score: float
    reasons: dict[str, float] = field(default_factory=dict)

    @property
    def bucket(self) -> str:
        return "high" if self.score < 0.2 else ("medium" if self.score < 0.5 else "low")


def _overlaps(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def segment_risk(seg: Segment, events: list[Event], dropped: list[dict], channel_language: str | None,
                 cfg: ReviewConfig, vad_onset: float = 0.5) -> Risk:
    a = seg.attributes
    dur = max(seg.end - seg.start, 1e-3)
    reasons: dict[str, float] = {}
    if a.get("asr_low", a.get("asr_score")) is not None:  # mean score of its two weakest words
        reasons["low_asr"] = max(0.0, 1.0 - float(a.get("asr_low", a.get("asr_score"))))
    reasons["vad_borderline"] = max(0.0, 1.0 - abs(seg.confidence - vad_onset) / 0.25) if seg.confidence < vad_onset + 0.25 else 0.0
    reasons["crosstalk"] = min(1.0, 2.0 * seg.crosstalk_suppressed / dur)
    for kind in ("overlap", "interruption"):
        share = sum(_overlaps(seg.start, seg.end, e.start, e.end) for e in events if e.type == kind
                    and (e.channel in (None, seg.channel) or seg.channel in e.attributes.get("channels", [])))
        reasons[kind] = min(1.0, share / min(dur, 1.0))
    reasons["dropped_text"] = 1.0 if any(d["channel"] == seg.channel and _overlaps(seg.start, seg.end, d["start"], d["end"]) > 0
                                         for d in dropped) else 0.0
    lang = a.get("language")
    reasons["language_switch"] = 1.0 if lang and channel_language and lang not in channel_language.split("+") else 0.0
    text = a.get("text")
    if text is not None:
        n = len(units(text))
        lo, hi = RATE_RANGE.get(lang or "en", RATE_RANGE["en"])
        rate = n / dur
        if n == 0:
            reasons["text_mismatch"] = min(1.0, dur / 1.5)  # speech with no words at all
        elif dur > 0.8 and (rate < lo or rate > hi):
            reasons["text_mismatch"] = min(1.0, abs(rate - (lo if rate < lo else hi)) / lo)
    weights = {"low_asr": cfg.w_low_asr, "vad_borderline": cfg.w_vad_borderline, "crosstalk": cfg.w_crosstalk,
               "overlap": cfg.w_overlap, "interruption": cfg.w_interruption, "dropped_text": cfg.w_dropped_text,
               "language_switch": cfg.w_language_switch, "text_mismatch": cfg.w_text_mismatch}
    keep = 1.0
    for name, strength in reasons.items():
        keep *= 1.0 - weights[name] * min(1.0, max(0.0, strength))
    return Risk(round(1.0 - keep, 4), {k: round(v, 3) for k, v in reasons.items() if v > 0})


@dataclass(frozen=True)
class Window:
    recording_id: str
    start: float
    end: float
    score: float  # the highest risk inside
    reasons: tuple[str, ...]
    segments: tuple[str, ...]  # segment ids that made it risky

    @property
    def key(self) -> str:
        return f"{self.recording_id}__{int(round(self.start * 1000)):09d}_{int(round(self.end * 1000)):09d}"


def choose_windows(risky: list[tuple[str, str, float, float, float, dict]], durations: dict[str, float],
                   cfg: ReviewConfig) -> list[Window]:
    """Task windows around risky segments (recording, segment_id, start, end, risk, reasons), most
    risky first, merged per recording while they fit `window`, until `budget_share` of the audio.
    A window only ever meets windows of its own recording, so those are looked up per recording:
    100 hours of corpus (a third of a million IPUs, thousands of windows) take seconds, not hours."""
    budget = cfg.budget_share * sum(durations.values())
    spent = 0.0
    chosen: list[Window] = []
    mine: dict[str, list[int]] = {}  # recording -> indices into chosen
    for rid, seg_id, s, e, score, reasons in sorted(risky, key=lambda r: -r[4]):
        if score < cfg.threshold:
            break
        here = mine.setdefault(rid, [])
        if any(chosen[i].start <= s and e <= chosen[i].end for i in here):
            continue  # already inside a window
        start, end = max(0.0, s - cfg.context), min(durations[rid], e + cfg.context)
        if end - start > cfg.window:  # a long IPU: the window centred on it, at most `window`
            mid = (s + e) / 2
            start, end = max(0.0, mid - cfg.window / 2), min(durations[rid], mid + cfg.window / 2)
        merged = False
        for i in here:
            w = chosen[i]
            if start < w.end and end > w.start and max(end, w.end) - min(start, w.start) <= cfg.window:
                new = Window(rid, min(start, w.start), max(end, w.end), max(score, w.score),
                             tuple(sorted(set(w.reasons) | set(reasons))), w.segments + (seg_id,))
                if spent + (new.end - new.start) - (w.end - w.start) > budget:
                    break
                spent += (new.end - new.start) - (w.end - w.start)
                chosen[i] = new
                merged = True
                break
        if merged:
            continue
        overlapping = [chosen[i] for i in here if start < chosen[i].end and end > chosen[i].start]
        if overlapping:  # touches a full window: start after it
            start = max(w.end for w in overlapping)
            if end - start < 1.0:
                continue
        if spent + (end - start) > budget:
            continue
        spent += end - start
        here.append(len(chosen))
        chosen.append(Window(rid, round(start, 3), round(end, 3), score, tuple(sorted(reasons)), (seg_id,)))
    return sorted(chosen, key=lambda w: -w.score)
