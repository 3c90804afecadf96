"""Hallucination gates: what of a recognised clip has no speech behind it. Pure decisions; the
stage records each drop (`dropped.json`) with its reason.

- `no_speech`: Whisper's own rule, `no_speech_prob` above its threshold and the mean log-probability
  below its threshold: the whole clip goes;
- `hallucination_phrase`: the whole text is a known phrase Whisper makes up from silence or noise
  ("thank you for watching", "谢谢观看"); the short ones ("thank you", "you", "谢谢") only on weak
  evidence (a clip with little speech, or a low mean log-probability);
- `repetition_loop`: a loop is cut after its first occurrence;
- `prompt_echo`: the text repeats the whole decoder prompt ("以下是普通话的对话。"): Whisper read
  the prompt back, not the audio.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from duplexcorpus.text import hallucination_phrase, is_cjk, repetition_loop, units


@dataclass(frozen=True)
class Drop:
    reason: str  # no_speech | hallucination_phrase | repetition_loop | prompt_echo
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


def _loop(tokens: list[str]) -> tuple[int, int] | None:
    """A repetition loop in a clip's word tokens. Mandarin rows are single characters, so a looping
    phrase of a few words spans up to 8 of them. A character four times is a loop as it was when rows
    were Whisper's tokens: the generator's "Let It Go" came back 我先停灭灭灭灭 from a sampled
    retry, which only this rule tells from a listener's 对对对对 (that is cut to 对 and retried)."""
    han = sum(1 for t in tokens if len(t) == 1 and is_cjk(t)) * 2 > len(tokens)
    return repetition_loop(tokens, max_ngram=8) if han else repetition_loop(tokens)


def loop_cut(words: list[dict]) -> tuple[int, str] | None:
    """Where a repetition loop starts repeating (words from there go) and its n-gram, else None."""
    tokens = [units(w["word"])[0] if units(w["word"]) else w["word"] for w in words]
    loop = _loop(tokens)
    if loop is None:
        return None
    start, n = loop
    return start + n, " ".join(tokens[start:start + n])


def loop_ipu(words: list[dict], clip_spans: list[tuple[float, float]]) -> int | None:
    """The IPU (index into a packed clip's `clip_spans`, clip time, in order) in which a repetition
    loop begins (its first occurrence), None: no loop. Whisper decoded the IPUs before it before it
    fell into the loop, so their words stand; the IPU it begins in is decoded alone, and the IPUs
    after it were never decoded properly: they are packed again as a clip of their own
    (`Attempt("rest")`), one encoder pass instead of one per IPU."""
    tokens = [units(w["word"])[0] if units(w["word"]) else w["word"] for w in words]
    loop = _loop(tokens)
    if loop is None:
        return None
    begins = words[loop[0]]["start"]
    ipu = 0
    while ipu < len(clip_spans) and clip_spans[ipu][1] <= begins:
        ipu += 1
    return ipu


def _plain(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def prompt_echo(text: str, prompt: str | None) -> bool:
    """Does the text hold the whole prompt (letters and digits only, case folded)?"""
    core = _plain(prompt or "")
    return len(core) >= 4 and core in _plain(text)


def gate(text: str, words: list[dict], language: str, no_speech_prob: float, avg_logprob: float,
         speech: float, th: Thresholds, prompt: str | None = None) -> tuple[list[dict], Drop | None]:
    """The words of a recognised clip that stay, and what was dropped (None: nothing). `speech`: the
    seconds of IPU audio in the clip; `prompt`: the decoder prompt it was decoded with. An empty text
    keeps nothing and drops nothing."""
    if not text.strip():
        return [], None
    if no_speech(no_speech_prob, avg_logprob, th):
        return [], Drop("no_speech", words)
    if prompt_echo(text, prompt):
        return [], Drop("prompt_echo", words)
    weak = speech < th.weak_clip or avg_logprob < th.logprob
    phrase = hallucination_phrase(text, language, weak)
    if phrase is not None:
        return [], Drop("hallucination_phrase", words, {"phrase": phrase})
    cut = loop_cut(words)
    if cut is not None:
        keep, ngram = cut
        return words[:keep], Drop("repetition_loop", words[keep:], {"ngram": ngram})
    return words, None


# ------------------------------------------------------------------------------------ re-decoding
# A clip that fails is decoded again before anything is dropped, the way Whisper's own transcribe
# falls back (openai-whisper `transcribe`, faster-whisper `generate_with_fallback`): sampling at
# rising temperatures, accepting the first result whose compression ratio is at most 2.4 and whose
# mean log-probability is at least -1.0; then, for a packed clip, each IPU on its own. Only when
# every attempt fails does the gate drop words, and the drop lists every attempt.
TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)  # Whisper's schedule after the beam-search pass (t=0)
COMPRESSION_RATIO = 2.4  # Whisper's compression_ratio_threshold
VAD_SURE = 0.9  # an IPU's VAD confidence from which "no speech" is doubted (and re-decoded)
# why a decode is retried; `no_speech` and `empty` only where the VAD is sure of the speech
RETRY_REASONS = ("repetition_loop", "prompt_echo", "compression_ratio", "low_logprob", "no_speech", "empty")
# no_speech_prob comes from the first decoder step, before any sampling: a temperature cannot change
# it, so these go straight to smaller pieces
NO_TEMPERATURE = ("no_speech", "empty")


@dataclass(frozen=True)
class Attempt:
    # clip: the packed clip as planned | rest: the IPUs of a clip from where its decode looped, packed
    # again | ipu: one IPU of a clip on its own
    scope: str
    temperature: float  # 0: beam search; > 0: sampling, best of BEST_OF


BEST_OF = 5  # samples per temperature (Whisper's best_of)
PACKED = ("clip", "rest")  # scopes that hold several IPUs laid end to end
FIRST = Attempt("clip", 0.0)


def compression_ratio(text: str) -> float:
    """Whisper's compression ratio: bytes of the text over bytes of its zlib compression."""
    import zlib

    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def failure(text: str, words: list[dict], no_speech_prob: float, avg_logprob: float, th: Thresholds,
            vad_sure: bool, prompt: str | None = None) -> str | None:
    """Why a decode is not good enough to keep as it is (one of `RETRY_REASONS`), None: accept it.
    Whisper's rules (no speech wins over a low log-probability: silence is not retried), plus our
    repetition loop; "no speech" and an empty text count as failures only where the VAD is sure there
    is speech (`vad_sure`), else the gate drops them as today."""
    if not text.strip():
        return "empty" if vad_sure else None
    if no_speech(no_speech_prob, avg_logprob, th):
        return "no_speech" if vad_sure else None
    if loop_cut(words) is not None:
        return "repetition_loop"
    if prompt_echo(text, prompt):
        return "prompt_echo"
    if compression_ratio(text) > COMPRESSION_RATIO:
        return "compression_ratio"
    if avg_logprob < th.logprob:
        return "low_logprob"
    return None


LOGPROB_STEPS = 1  # a result that only misses the log-probability bar gets this many sampled retries


def next_attempt(previous: Attempt, reason: str | None, spans: int,
                 temperatures: tuple[float, ...] = TEMPERATURES) -> Attempt | None:
    """What to try after `previous` failed for `reason` on a unit of `spans` IPUs (None: accept, or
    give up). A packed clip that loops, compresses too well, echoes its prompt or says nothing where
    the VAD is sure is cut into one clip per IPU first (beam search again): such a failure sits in one
    IPU and the other IPUs decode well alone, at a fraction of a sampled decode of the whole clip.
    A single IPU (or a clip of one) then climbs Whisper's temperatures one step at a time. A result
    that only misses the log-probability bar (text, not a hallucination) gets `LOGPROB_STEPS`
    sampled retries as a planned clip, none as a piece of one, and is otherwise kept as it is. `no_speech` and `empty` do not depend on the
    temperature (no_speech_prob comes before any sampling): only smaller pieces can change them."""
    if reason is None:
        return None
    if previous.scope in PACKED and spans > 1 and reason != "low_logprob":
        return Attempt("ipu", 0.0)
    if reason in NO_TEMPERATURE:
        return None
    if reason == "low_logprob" and previous.scope == "ipu":
        return None  # a piece cut from a failed clip: its text is kept (sampling never beat it on the samples)
    steps = temperatures[:LOGPROB_STEPS] if reason == "low_logprob" else temperatures
    later = [t for t in steps if t > previous.temperature]
    return Attempt(previous.scope, later[0]) if later else None


def max_tokens(seconds: float) -> int:
    """A retry's token budget for `seconds` of clip audio: fast speech is under 12 tokens a second
    (Mandarin: a token or two per character), so a loop stops long before Whisper's 448."""
    return int(min(448, 24 + 12 * seconds))


HARD = ("repetition_loop", "prompt_echo", "compression_ratio", "no_speech", "empty")


def best_attempt(failures: list[str | None], logprobs: list[float]) -> int:
    """When every attempt failed: the one to keep (the gate then cuts what it must). As Whisper
    does, a result that only misses the log-probability bar is text, not a hallucination: those come
    first, then the highest mean log-probability; ties go to the earlier attempt."""
    return max(range(len(failures)), key=lambda i: (failures[i] not in HARD, logprobs[i], -i))


def no_words_reason(drop_reason: str | None, retried: bool) -> str:
    """The `no_words_reason` of an IPU whose clip ended without words for it."""
    if drop_reason is None:
        return "no_speech"  # Whisper said nothing here
    return f"gated_after_retries:{drop_reason}" if retried else drop_reason
