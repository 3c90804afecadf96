"""The hallucination gates on hand-made decoder results: what is dropped, why, and what stays."""
from __future__ import annotations

from duplexcorpus.asr.gates import Drop, Thresholds, gate, loop_cut, loop_ipu, no_speech
from duplexcorpus.config import AsrConfig

TH = Thresholds(no_speech=0.6, logprob=-1.0, weak_clip=1.5)


def words(text: str) -> list[dict]:
    return [{"word": t, "start": 0.1 * i, "end": 0.1 * i + 0.08, "score": 0.9} for i, t in enumerate(text.split())]


def test_thresholds_come_from_the_asr_section():
    cfg = AsrConfig(no_speech_threshold=0.5, logprob_threshold=-0.7, weak_clip=2.0)
    assert Thresholds.of(cfg) == Thresholds(0.5, -0.7, 2.0)


def test_no_speech_needs_both_a_high_probability_and_a_low_logprob():
    assert no_speech(0.9, -1.5, TH)
    assert not no_speech(0.9, -0.5, TH)  # confident text: kept
    assert not no_speech(0.4, -1.5, TH)


def test_an_empty_text_keeps_nothing_and_drops_nothing():
    assert gate("  ", [], "en", 0.1, -0.2, 3.0, TH) == ([], None)


def test_a_clip_without_speech_is_dropped_whole():
    ws = words("so the thing is")
    assert gate("so the thing is", ws, "en", 0.9, -1.5, 3.0, TH) == ([], Drop("no_speech", ws))


def test_a_known_phrase_is_dropped():
    ws = words("Thank you for watching.")
    assert gate("Thank you for watching.", ws, "en", 0.1, -0.3, 3.0, TH) == (
        [], Drop("hallucination_phrase", ws, {"phrase": "thank you for watching"}))
    zh = [{"word": c, "start": 0.0, "end": 0.1, "score": 0.5} for c in "谢谢观看"]
    assert gate("谢谢观看。", zh, "zh", 0.1, -0.3, 3.0, TH) == ([], Drop("hallucination_phrase", zh, {"phrase": "谢谢观看"}))


def test_a_short_phrase_is_dropped_only_on_weak_evidence():
    ws = words("Thank you.")
    assert gate("Thank you.", ws, "en", 0.1, -0.3, 3.0, TH) == (ws, None)  # 3 s of speech, confident
    weak = Drop("hallucination_phrase", ws, {"phrase": "thank you"})
    assert gate("Thank you.", ws, "en", 0.1, -0.3, 1.0, TH) == ([], weak)  # little speech
    assert gate("Thank you.", ws, "en", 0.1, -1.2, 3.0, TH) == ([], weak)  # low log-probability


def test_a_repetition_loop_is_cut_after_its_first_occurrence():
    ws = words("I said go go go go go home")
    kept, drop = gate("I said go go go go go home", ws, "en", 0.1, -0.3, 5.0, TH)
    assert [w["word"] for w in kept] == ["I", "said", "go"]
    assert drop == Drop("repetition_loop", ws[3:], {"ngram": "go"})
    assert [w["word"] for w in drop.words] == ["go", "go", "go", "go", "home"]


def test_loop_cut_finds_ngrams_and_compares_normalised_words():
    assert loop_cut(words("Yes, no. yes no YES no yes, no! ok")) == (2, "yes no")
    assert loop_cut(words("one two one two one two")) is None  # three times is not a loop
    assert loop_cut([]) is None


def test_ordinary_speech_passes_untouched():
    ws = words("so I called them yesterday")
    assert gate("so I called them yesterday", ws, "en", 0.2, -0.4, 2.0, TH) == (ws, None)


# ------------------------------------------------------------------------ re-decoding (retry policy)
from duplexcorpus.asr.gates import (  # noqa: E402
    COMPRESSION_RATIO, FIRST, TEMPERATURES, Attempt, best_attempt, compression_ratio, failure, max_tokens,
    next_attempt, no_words_reason)


def test_compression_ratio_is_whispers():
    assert compression_ratio("") == 0.0
    assert compression_ratio("so I called them yesterday") < COMPRESSION_RATIO
    assert compression_ratio("路上" * 40) > COMPRESSION_RATIO


def test_failure_follows_whispers_fallback_rules_and_our_loop():
    ok = "so I called them yesterday"
    assert failure(ok, words(ok), 0.1, -0.4, TH, True) is None
    assert failure("go go go go go", words("go go go go go"), 0.1, -0.2, TH, True) == "repetition_loop"
    looped = "，".join(["路上"] * 3 + ["我们走吧"] * 1) + "路上" * 60  # one "word": no loop in words, but compresses
    assert failure(looped, [{"word": looped, "start": 0, "end": 1, "score": 0.5}], 0.1, -0.2, TH, True) == "compression_ratio"
    assert failure(ok, words(ok), 0.1, -1.3, TH, True) == "low_logprob"
    # no speech (both conditions) wins over the low log-probability: retried only where the VAD is sure
    assert failure(ok, words(ok), 0.9, -1.3, TH, True) == "no_speech"
    assert failure(ok, words(ok), 0.9, -1.3, TH, False) is None
    assert failure("  ", [], 0.9, -1.3, TH, True) == "empty"
    assert failure("  ", [], 0.9, -1.3, TH, False) is None


def test_next_attempt_cuts_a_failing_clip_into_ipus_then_raises_the_temperature():
    seen, a = [], FIRST
    while a is not None:
        seen.append(a)
        a = next_attempt(a, "repetition_loop", spans=3)
    assert seen == [FIRST, Attempt("ipu", 0.0)] + [Attempt("ipu", t) for t in TEMPERATURES]
    # a clip of one IPU has no smaller pieces: it climbs the temperatures
    assert next_attempt(FIRST, "compression_ratio", spans=1) == Attempt("clip", 0.2)
    assert next_attempt(Attempt("clip", 1.0), "repetition_loop", spans=1) is None
    # accepted: nothing more
    assert next_attempt(FIRST, None, spans=3) is None


def test_a_low_logprob_gets_one_sampled_retry_then_is_kept():
    assert next_attempt(FIRST, "low_logprob", spans=3) == Attempt("clip", 0.2)  # not cut into IPUs
    assert next_attempt(Attempt("clip", 0.2), "low_logprob", spans=3) is None
    assert next_attempt(Attempt("ipu", 0.2), "low_logprob", spans=1) is None
    assert next_attempt(Attempt("ipu", 0.0), "low_logprob", spans=1) is None  # a piece of a failed clip
    # a loop that sampling brought is still cut into IPUs
    assert next_attempt(Attempt("clip", 0.2), "repetition_loop", spans=3) == Attempt("ipu", 0.0)


def test_a_retry_has_a_token_budget_by_its_length():
    assert max_tokens(2.0) == 48 and max_tokens(60.0) == 448


def test_best_attempt_prefers_text_that_only_misses_the_logprob_bar():
    assert best_attempt(["repetition_loop", "low_logprob", "low_logprob"], [-0.2, -1.4, -1.1]) == 2
    assert best_attempt(["repetition_loop", "compression_ratio"], [-0.5, -0.3]) == 1
    assert best_attempt(["repetition_loop", "repetition_loop"], [-0.3, -0.3]) == 0  # ties: the earlier


def test_no_words_reason_names_the_retries():
    assert no_words_reason(None, False) == no_words_reason(None, True) == "no_speech"
    assert no_words_reason("hallucination_phrase", False) == "hallucination_phrase"
    assert no_words_reason("repetition_loop", True) == "gated_after_retries:repetition_loop"


def test_a_text_that_reads_the_prompt_back_is_retried_then_dropped():
    prompt = "以下是普通话的对话。"
    echo = "我以下是普通话的对话。"
    zh = [{"word": c, "start": 0.0, "end": 0.1, "score": 0.5} for c in "我以下是普通话的对话"]
    assert failure(echo, zh, 0.1, -0.3, TH, True, prompt) == "prompt_echo"
    assert gate(echo, zh, "zh", 0.1, -0.3, 3.0, TH, prompt) == ([], Drop("prompt_echo", zh))
    # a listener token inside the filler prompt is no echo: only the whole prompt is
    assert failure("Yeah.", words("Yeah."), 0.1, -0.3, TH, True, "Mm-hmm. Uh-huh. Yeah. Okay.") is None
    assert gate("以下", zh[:2], "zh", 0.1, -0.3, 3.0, TH, prompt) == (zh[:2], None)


def test_a_loop_is_placed_in_the_ipu_where_it_begins():
    def w(word, s):
        return dict(word=word, start=s, end=s + 0.2)

    spans = [(0.15, 2.0), (2.6, 4.0), (4.6, 8.0)]  # a packed clip's IPUs, clip time
    said = [w("we", 0.2), w("met", 0.6), w("on", 2.7), w("tuesday", 3.0)]
    assert loop_ipu(said + [w("road", 4.7 + 0.25 * k) for k in range(8)], spans) == 2
    # the loop's first occurrence is what counts: "on road road ..." begins in the second IPU
    assert loop_ipu(said[:2] + [w("on", 2.7)] + [w("road", 3.0 + 0.25 * k) for k in range(8)], spans) == 1
    assert loop_ipu([w("road", 0.2 + 0.25 * k) for k in range(8)], spans) == 0
    assert loop_ipu(said, spans) is None


def test_a_rest_of_a_looped_clip_is_a_packed_clip_again():
    assert next_attempt(Attempt("rest", 0.0), "repetition_loop", spans=3) == Attempt("ipu", 0.0)
    assert next_attempt(Attempt("rest", 0.0), "compression_ratio", spans=1) == Attempt("rest", 0.2)


def test_mandarin_loops_are_found_over_characters_and_reduplication_is_speech():
    def chars(text):
        return [{"word": ch, "start": 0.1 * i, "end": 0.1 * i + 0.08, "score": 0.9} for i, ch in enumerate(text)]

    # a seven-character phrase looping: found, cut after its first occurrence
    looped = chars("我们明天去公园吧" + "我爱北京天安门" * 5)
    assert loop_cut(looped) == (8 + 7, " ".join("我爱北京天安门"))
    # a character four times is a loop, as it was over Whisper's tokens; three times is speech
    assert loop_cut(chars("对对对，好好好")) is None
    assert loop_cut(chars("我先停灭灭灭灭"))[0] == 4
    assert loop_cut(chars("嗯" * 40))[0] == 1
