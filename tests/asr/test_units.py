"""Contract units on hand-made aligner words: one Han character, one Latin word or one number per
row, punctuation beside the word, full-width forms normalised, English clips untouched. No model."""
from __future__ import annotations

import numpy as np

from duplexcorpus.asr.plan import ClipPlan
from duplexcorpus.asr.timing import HOP_S, RATE, recording_words
from duplexcorpus.asr.units import contract_units, pieces
from duplexcorpus.records import Word


def w(word: str, start: float | None, end: float | None, score: float = 0.9) -> dict:
    return {"word": word, "start": start, "end": end, "score": score}


def rows(words: list[dict]) -> list[tuple]:
    return [(x["word"], x["language"], x["punct"], x["split"]) for x in words]


def test_a_two_character_token_becomes_two_rows_dividing_its_span():
    out = contract_units([w("时间", 1.0, 1.4)], "zh")
    assert rows(out) == [("时", "zh", None, True), ("间", "zh", None, True)]
    assert [(x["start"], x["end"]) for x in out] == [(1.0, 1.2), (1.2, 1.4)]
    assert all(x["score"] == 0.9 for x in out)


def test_a_single_character_token_keeps_its_own_time_and_is_not_flagged():
    out = contract_units([w("想", 0.0, 0.2), w("听", 0.2, 0.4)], "zh")
    assert rows(out) == [("想", "zh", None, False), ("听", "zh", None, False)]
    assert [(x["start"], x["end"]) for x in out] == [(0.0, 0.2), (0.2, 0.4)]


def test_punctuation_leaves_the_word_for_its_punct():
    out = contract_units([w("呃。", 0.0, 0.3), w("首先,", 0.3, 0.7), w("好", 0.7, 0.9)], "zh")
    assert rows(out) == [("呃", "zh", "。", False), ("首", "zh", None, True), ("先", "zh", ",", True),
                         ("好", "zh", None, False)]


def test_a_punctuation_token_of_its_own_joins_the_previous_word_and_a_leading_one_is_dropped():
    out = contract_units([w("“", 0.0, 0.0), w("好", 0.0, 0.2), w("！", 0.2, 0.2)], "zh")
    assert rows(out) == [("好", "zh", "!", False)]


def test_english_inside_mandarin_stays_english_one_row_per_word():
    out = contract_units([w("想", 0.0, 0.2), w("听", 0.2, 0.4), w("Let", 0.4, 0.6), w("It", 0.6, 0.7),
                          w("Go", 0.7, 0.9)], "zh")
    assert rows(out) == [("想", "zh", None, False), ("听", "zh", None, False), ("Let", "en", None, False),
                         ("It", "en", None, False), ("Go", "en", None, False)]


def test_without_the_text_lower_case_words_are_not_glued():
    out = contract_units([w("he", 0.0, 0.1), w("must", 0.1, 0.3), w("be", 0.3, 0.4), w("他", 0.4, 0.6)], "zh")
    assert [x["word"] for x in out] == ["he", "must", "be", "他"]


def test_a_latin_word_cut_into_tokens_is_joined_again_with_the_text():
    out = contract_units([w("D", 0.0, 0.1), w("esp", 0.1, 0.2), w("ac", 0.2, 0.3), w("ito", 0.3, 0.5),
                          w("好", 0.5, 0.7)], "zh", text="Despacito好")
    assert rows(out) == [("Despacito", "en", None, False), ("好", "zh", None, False)]
    assert (out[0]["start"], out[0]["end"]) == (0.0, 0.5)


def test_the_clip_text_tells_which_latin_pieces_are_words():
    words = [w("my", 0.0, 0.2), w("heart", 0.2, 0.4), w("D", 0.4, 0.5), w("esp", 0.5, 0.6), w("爱", 0.6, 0.8)]
    out = contract_units(words, "zh", text="想听my heart Desp爱")
    assert [x["word"] for x in out] == ["my", "heart", "Desp", "爱"]


def test_latin_and_han_in_one_token_split_by_script():
    out = contract_units([w("hold不住", 0.0, 0.9)], "zh")
    assert rows(out) == [("hold", "en", None, True), ("不", "zh", None, True), ("住", "zh", None, True)]
    assert out[-1]["end"] == 0.9


def test_full_width_number_is_one_row_then_the_character():
    out = contract_units([w("２０２３年", 0.0, 1.0)], "zh")
    assert rows(out) == [("2023", "zh", None, True), ("年", "zh", None, True)]
    # four digits are four syllables, the character one
    assert abs(out[0]["end"] - 0.8) < 1e-9


def test_full_width_latin_is_normalised():
    out = contract_units([w("ＡＢＣ，", 0.0, 0.5)], "zh")
    assert rows(out) == [("ABC", "en", ",", False)]


def test_decimal_and_percent_stay_one_number():
    assert [p[0] for p in pieces("3.5%的", "zh")] == ["3.5%", "的"]
    assert [p[0] for p in pieces("MP3", "zh")] == ["MP3"]


def test_unplaced_words_stay_unplaced_for_the_timing_to_interpolate():
    out = contract_units([w("时间", None, None)], "zh")
    assert [(x["word"], x["start"], x["end"]) for x in out] == [("时", None, None), ("间", None, None)]


def test_english_clip_words_are_left_as_they_are():
    words = [w("Saturday?", 0.0, 0.5), w("Yeah.", 0.6, 0.9), w("-hmm.", 1.0, 1.2)]
    out = contract_units(words, "en")
    assert [x["word"] for x in out] == ["Saturday?", "Yeah.", "-hmm."]
    assert all(x["language"] == "en" and x["punct"] is None and not x["split"] for x in out)


def test_han_in_an_english_clip_is_split_too():
    out = contract_units([w("OK", 0.0, 0.2), w("你好", 0.2, 0.6)], "en")
    assert rows(out) == [("OK", "en", None, False), ("你", "zh", None, True), ("好", "zh", None, True)]


def test_recording_words_gives_characters_with_punct_and_flags_divided_ones():
    plan = ClipPlan(0, 1, 10.0, 11.0, [(10.0, 11.0)], "zh", None, None, "asr")
    audio = np.full(RATE, 0.1, np.float32)  # loud everywhere: the times stay where they are
    words = [w("好", 0.0, 0.2), w("时间。", 0.2, 0.6), w("Go", 0.6, 0.8)]
    out = recording_words(plan, audio, -80.0, "zh", words, "asr", pad=0.0, gap=0.3, snap_floor_db=6.0,
                          min_word=0.02)
    assert [(x["word"], x["language"], x.get("punct"), x["interpolated"]) for x in out] == [
        ("好", "zh", None, False), ("时", "zh", None, True), ("间", "zh", "。", True), ("Go", "en", None, False)]
    assert all(x["end"] > x["start"] >= 10.0 - HOP_S for x in out)
    assert all(x["start"] >= y["end"] - 1e-9 for y, x in zip(out, out[1:]))
    assert Word.from_dict(dict(out[2], score=0.9)).punct == "。"


def test_english_recording_words_carry_no_punct_key():
    plan = ClipPlan(0, 0, 0.0, 1.0, [(0.0, 1.0)], "en", None, None, "asr")
    out = recording_words(plan, np.full(RATE, 0.1, np.float32), -80.0, "en", [w("Hi.", 0.1, 0.4)], "asr",
                          pad=0.0, gap=0.3, snap_floor_db=6.0, min_word=0.02)
    assert set(out[0]) == {"channel", "language", "source", "word", "start", "end", "score", "interpolated"}
    assert out[0]["word"] == "Hi."
