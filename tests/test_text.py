"""Text rules: units, error rates, lexicons, hallucination phrases, repetition loops."""
from duplexcorpus.text import (error_rate, hallucination_phrase, is_backchannel_text, is_filler, normalise,
                           repetition_loop, units)


def test_units_are_words_in_english_and_characters_in_mandarin():
    assert units("Hello, World!") == ["hello", "world"]
    assert units("你這個週末") == ["你", "这", "个", "周", "末"]  # traditional -> simplified
    assert units("我们用 Python 写") == ["我", "们", "用", "python", "写"]
    assert units("Mm-hmm. Uh-huh, mhm") == ["mm", "hmm", "uh", "huh", "mm", "hmm"]


def test_error_rate_counts_edits_per_reference_unit():
    r = error_rate("the cat sat on the mat", "the cat sat on mat")
    assert r["errors"] == 1 and r["units"] == 6 and abs(r["rate"] - 1 / 6) < 1e-9
    assert error_rate("广州市房地产", "广州市房地产")["rate"] == 0.0
    assert error_rate("广州市房地产", "广州房地产业")["errors"] == 2
    assert error_rate("", "hallucinated words")["rate"] == 1.0


def test_listener_tokens_and_fillers_in_both_languages():
    assert is_backchannel_text("Mm-hmm.") and is_backchannel_text("yeah yeah") and is_backchannel_text("嗯")
    assert is_backchannel_text("对对") and is_backchannel_text("是的")
    assert not is_backchannel_text("I really think so") and not is_backchannel_text("我们早上出发")
    assert is_filler("um") and is_filler("呃") and not is_filler("house")
    assert normalise("Okay!") == "okay"


def test_known_hallucination_phrases_and_weak_evidence():
    assert hallucination_phrase("Thanks for watching!", "en", weak=False) == "thanks for watching"
    assert hallucination_phrase("请不吝点赞 订阅 转发 打赏支持明镜与点点栏目", "zh", weak=False)
    assert hallucination_phrase("Thank you.", "en", weak=True) == "thank you"
    assert hallucination_phrase("Thank you.", "en", weak=False) is None  # real speech says it too
    assert hallucination_phrase("thank you for calling", "en", weak=True) is None


def test_repetition_loops_are_found_by_ngram():
    assert repetition_loop("a b c d".split()) is None
    assert repetition_loop("so so so so so".split()) == (0, 1)
    assert repetition_loop("i said you know you know you know you know".split()) == (2, 2)
    assert repetition_loop("yeah yeah".split()) is None


def test_mandarin_cer_units_follow_the_dev_set_scoring():
    from duplexcorpus.text import cer_units, mandarin_cer, spell_digits_zh

    assert spell_digits_zh("２０23年") == "二零二三年"
    assert cer_units("想聽歌曲《Let It Go》，好嗎？") == ["想", "听", "歌", "曲", "let", "it", "go", "好", "吗"]
    assert cer_units("打开hold不住的爱") == ["打", "开", "hold", "不", "住", "的", "爱"]
    assert cer_units("OK") == ["ok"]  # no canonical spelling swap
    r = mandarin_cer("想听歌曲Let It Go", "想听歌曲来特诶特购")
    assert (r["units"], r["errors"]) == (7, 5)


def test_join_words_puts_punctuation_back():
    from duplexcorpus.records import Word
    from duplexcorpus.text import join_words

    words = [dict(word="你", punct=None), dict(word="好", punct="。"), dict(word="Let"), dict(word="Go", punct=",")]
    assert join_words(words) == "你好。 Let Go,"
    assert join_words([Word(0, "对", 0.0, 0.1, 0.9, punct="。")]) == "对。"
