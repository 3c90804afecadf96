"""Hallucination gates: what of a recognised clip has no speech behind it. Pure decisions; the
stage records each drop (`dropped.json`) with its reason.

- `no_speech`: Whisper's own rule, `no_speech_prob` above its threshold and the mean log-probability
  below its threshold: the whole clip goes;
- `hallucination_phrase`: the whole text is a known phrase Whisper makes up from silence or noise
  ("thank you for watching", "谢谢观看"); the short ones ("thank you", "you", "谢谢") only on weak
  evidence (a clip with little speech, or a low mean log-probability);
- `repetition_loop`: a loop is cut after its first occurrence.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from duplexcorpus.text import hallucination_phrase, repetition_loop, units


@dataclass(frozen=True)
class Drop:
    reason: str  # no_speech | hallucination_phrase | repetition_loop
    words: list[dict]  # the words that go
    details: dict = field(default_factory=dict)  # phrase=... | ngram=...


@dataclass(frozen=True)
class Thresholds:
    no_speech: float  # asr.no_speech_threshold
    logprob: float  # asr.logprob_threshold
    weak_clip: float  # asr.weak_clip: a clip with less speech (s) is weak evidence

    @classmethod
    def of(cls, cfg) -> Thresholds:
        return cls(cfg.no_speech_threshold, cfg.logprob_threshold, cfg.weak_clip)


def no_speech(no_speech_prob: float, avg_logprob: float, th: Thresholds) -> bool:
    return no_speech_prob > th.no_speech and avg_logprob < th.logprob


def loop_cut(words: list[dict]) -> tuple[int, str] | None:
    """Where a repetition loop starts repeating (words from there go) and its n-gram, else None."""
    tokens = [units(w["word"])[0] if units(w["word"]) else w["word"] for w in words]
    loop = repetition_loop(tokens)
    if loop is None:
        return None
    start, n = loop
    return start + n, " ".join(tokens[start:start + n])


def gate(text: str, words: list[dict], language: str, no_speech_prob: float, avg_logprob: float,
         speech: float, th: Thresholds) -> tuple[list[dict], Drop | None]:
    """The words of a recognised clip that stay, and what was dropped (None: nothing). `speech`: the
    seconds of IPU audio in the clip. An empty text keeps nothing and drops nothing."""
    if not text.strip():
        return [], None
    if no_speech(no_speech_prob, avg_logprob, th):
        return [], Drop("no_speech", words)
    weak = speech < th.weak_clip or avg_logprob < th.logprob
    phrase = hallucination_phrase(text, language, weak)
    if phrase is not None:
        return [], Drop("hallucination_phrase", words, {"phrase": phrase})
    cut = loop_cut(words)
    if cut is not None:
        keep, ngram = cut
        return words[:keep], Drop("repetition_loop", words[keep:], {"ngram": ngram})
    return words, None
