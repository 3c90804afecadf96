"""Corpus statistics: what the corpus holds, per split and language, and its turn-taking profile."""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from duplexcorpus.records import Event, Segment


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    arr = np.asarray(values)
    return {"count": int(len(arr)), "mean": round(float(arr.mean()), 3), "median": round(float(np.median(arr)), 3),
            "p10": round(float(np.percentile(arr, 10)), 3), "p90": round(float(np.percentile(arr, 90)), 3)}


def asr_coverage(segments: list[Segment]) -> dict | None:
    """Every IPU accounted for: the share of IPUs, and of their speech seconds, that have words, and
    why the others have none (`no_words_reason`, written by the ASR stage). None: ASR did not run.
    A diarized speaker's speech under another's IPU on a shared channel (`attributes.overlapped`) is
    not an IPU of its own here: its audio is inside that IPU, whose clip carries the words heard there
    (counted apart, as `overlapped_segments`)."""
    done = [s for s in segments if "words" in s.attributes and not s.attributes.get("overlapped")]
    if not done:
        return None
    with_words = [s for s in done if s.attributes["words"] > 0]
    speech = sum(s.end - s.start for s in done)
    return {
        "ipus": len(done),
        "overlapped_segments": sum(1 for s in segments if s.attributes.get("overlapped")),
        "ipus_with_words": round(len(with_words) / len(done), 4),
        "speech_seconds_with_words": round(sum(s.end - s.start for s in with_words) / max(speech, 1e-9), 4),
        "ipus_without_words_by_reason": dict(sorted(Counter(
            s.attributes.get("no_words_reason", "unknown") for s in done if s.attributes["words"] == 0).items())),
    }


def corpus_stats(recordings: list[dict], segments: list[Segment], events: list[Event], quarantine: list[dict],
                 words: list[dict] | None = None) -> dict:
    hours = defaultdict(float)
    speakers = defaultdict(set)
    for r in recordings:
        hours[(r["split"], r["language"] or "unknown")] += r["duration"] / 3600
        speakers[r["split"]].update(c["speaker_id"] for c in r["channels"])
    total = sum(r["duration"] for r in recordings)
    speech = sum(s.end - s.start for s in segments)
    by_type = Counter(e.type for e in events)
    overlap = sum(e.end - e.start for e in events if e.type == "overlap")
    minutes = total / 60 or 1.0
    return {
        "recordings": len(recordings),
        "hours": round(total / 3600, 4),
        "hours_by_split_language": {f"{s}/{lang}": round(h, 4) for (s, lang), h in sorted(hours.items())},
        "speakers_by_split": {s: len(v) for s, v in sorted(speakers.items())},
        "speech_ratio": round(speech / max(total, 1e-9), 4),
        "overlap_ratio": round(overlap / max(total, 1e-9), 4),
        "events": dict(sorted(by_type.items())),
        "per_minute": {t: round(n / minutes, 3) for t, n in sorted(by_type.items())},
        "ipu_duration_s": _summary([s.end - s.start for s in segments]),
        "floor_transfer_offset_s": _summary([e.attributes["offset"] for e in events if e.type == "floor_transfer"]),
        "gap_s": _summary([e.end - e.start for e in events if e.type == "gap"]),
        "pause_s": _summary([e.end - e.start for e in events if e.type == "pause"]),
        "interruptions_successful": sum(1 for e in events if e.type == "interruption" and e.attributes.get("successful")),
        "quarantined": dict(sorted(Counter(q["reason_code"] for q in quarantine).items())),
        "words": {
            "count": len(words or []),
            "by_language": dict(sorted(Counter(w["language"] or "unknown" for w in words or []).items())),
            "interpolated": sum(1 for w in words or [] if w["interpolated"]),
            "mean_score": round(float(np.mean([w["score"] for w in words])), 4) if words else None,
            "per_minute_of_speech": round(len(words or []) / max(speech / 60, 1e-9), 2),
        },
        "asr": asr_coverage(segments),
    }
