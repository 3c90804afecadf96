"""English inside Mandarin: which runs of characters are heard again, and when English replaces them
(hand-made rows); then the real Whisper on a real code-switched clip (slow)."""
from __future__ import annotations

import pytest

from duplexcorpus.asr.codeswitch import covered_rows, english_words, suspect_runs


def row(word, start, end, score, channel=0, language="zh"):
    return dict(word=word, start=start, end=end, score=score, channel=channel, language=language)


def test_low_probability_runs_inside_one_ipu_are_suspect():
    words = [row("想", 0.0, 0.2, 0.9), row("听", 0.2, 0.4, 0.8), row("来", 0.5, 0.7, 0.2),
             row("特", 0.7, 0.9, 0.6),  # one confident character inside the run is bridged
             row("购", 0.9, 1.2, 0.1), row("歌", 1.3, 1.5, 0.95)]
    (run,) = suspect_runs(words, [(0, 0.0, 1.6)])
    assert run.rows == (2, 3, 4) and run.channel == 0
    assert run.start == pytest.approx(0.3) and run.end == pytest.approx(1.4)  # context, inside the IPU


def test_short_runs_english_rows_and_runs_across_ipus_are_not_suspect():
    words = [row("位", 1.0, 1.2, 0.3),  # one short character: not a word of English
             row("ok", 2.0, 2.5, 0.1, language="en"),
             row("来", 3.0, 3.2, 0.2), row("的", 3.5, 3.8, 0.2)]  # two IPUs
    assert suspect_runs(words, [(0, 0.9, 1.3), (0, 1.9, 2.6), (0, 2.9, 3.3), (0, 3.4, 3.9)]) == []
    other_channel = [row("来", 0.0, 0.4, 0.2, channel=1)]
    assert suspect_runs(other_channel, [(0, 0.0, 1.0)]) == []  # no IPU of its channel there


def test_confident_english_replaces_a_run_without_its_unsure_edges():
    heard = [row("I", 0.0, 0.3, 0.1, language=None), row("can't", 0.3, 0.8, 0.67, language=None),
             row("let", 0.8, 0.9, 0.84, language=None), row("it", 0.9, 1.0, 0.97, language=None),
             row("go.", 1.0, 1.3, 0.98, language=None)]
    kept = english_words("en", "I can't let it go.", heard, min_english=0.6, edge_floor=0.3)
    assert [w["word"] for w in kept] == ["can't", "let", "it", "go."]


def test_english_replaces_the_rows_it_covers_in_time_not_the_whole_run():
    # zh_mixed_dev "打开Let It Go": the run held 打开 too, its English edge word was dropped as unsure,
    # and 够 (even odds, outside the run) is the title's last syllable heard a second time
    words = [row("打", 0.30, 0.50, 0.3), row("开", 0.50, 0.74, 0.4), row("来", 0.74, 0.90, 0.2),
             row("看", 0.90, 1.00, 0.2), row("就", 1.00, 1.10, 0.3), row("够", 1.10, 1.67, 0.52),
             row("好", 1.80, 2.00, 0.9),  # a character after the title: untouched
             row("看", 0.90, 1.00, 0.2, channel=1)]  # the other channel: untouched
    english = [row("let", 0.74, 0.92, 0.83, language="en"), row("it", 0.92, 1.10, 0.91, language="en"),
               row("go", 1.10, 1.30, 0.93, language="en")]
    assert covered_rows(words, 0, english) == {2, 3, 4, 5}
    assert covered_rows(words, 0, []) == set()


def test_mandarin_identified_translations_and_hallucinations_keep_the_mandarin():
    translation = [row(w, 0.0, 0.2, p, language=None) for w, p in [("Let's", 0.34), ("do", 0.16), ("a", 0.5)]]
    assert english_words("en", "Let's do a", translation, 0.6, 0.3) is None  # unsure: a translation
    sure = [row("go", 0.0, 0.2, 0.9, language=None)]
    assert english_words("zh", "go", sure, 0.6, 0.3) is None  # identified as Mandarin
    assert english_words("en", "来go", sure, 0.6, 0.3) is None  # Han characters in it
    thanks = [row("Thank", 0.0, 0.2, 0.9, language=None), row("you.", 0.2, 0.4, 0.99, language=None)]
    assert english_words("en", "Thank you.", thanks, 0.6, 0.3) is None


@pytest.mark.slow  # Whisper through the whole pipeline, on real clips of ../shared/realdata
def test_an_english_title_inside_mandarin_comes_back_english(tmp_path):
    import json

    import pandas as pd

    from duplexcorpus.config import load_workflow
    from duplexcorpus.runner import run
    from tests.conftest import realdata

    dev = realdata("zh_mixed_dev")
    inp = tmp_path / "in"
    inp.mkdir()
    clips = {"cs": "aishellsample-BAC009S0252W0038", "read": "aishell1-BAC009S0150W0193"}  # "打开Let It Go"
    for rid, name in clips.items():
        (inp / f"{rid}.wav").symlink_to(dev / f"{name}.wav")
    (inp / "metadata.csv").write_text("recording_id,channel,speaker_id,language\ncs,0,a,zh\nread,0,b,zh\n")
    run(inp, tmp_path / "out", load_workflow(None), executor="local")
    words = pd.read_parquet(tmp_path / "out" / "tables" / "words.parquet")
    english = words[(words.recording_id == "cs") & (words.language == "en")]
    assert {"let", "it", "go"} <= set(english.word.str.lower()), words[words.recording_id == "cs"].word.tolist()
    assert not english.word.str.contains(r"[.,!?]").any()  # punctuation apart, in `punct`
    # the title is written once: no Mandarin row left under the English words (the same sound twice)
    cs = words[words.recording_id == "cs"]
    mandarin = cs[cs.language == "zh"].to_dict("records")
    assert not covered_rows(mandarin, 0, english.to_dict("records")), cs.word.tolist()
    assert (words[words.recording_id == "read"].language == "zh").all()  # plain Mandarin stays Mandarin
    tried = [c for p in (tmp_path / "out" / "cache" / "asr").glob("cs/*/clips.json")
             for c in json.loads(p.read_text()) if c["role"] == "codeswitch"]
    assert any(c["accepted"] for c in tried)


def test_a_looping_or_overcompressed_english_decode_keeps_the_mandarin():
    def ws(text, score=0.9):
        return [{"word": t, "start": 0.2 * i, "end": 0.2 * i + 0.15, "score": score} for i, t in enumerate(text.split())]

    # on the generator's calls the pass once replaced 今天天气真不错 with a loop written in Latin letters
    assert english_words("en", "go go go go go go", ws("go go go go go go"), 0.6, 0.3) is None
    one_word = "Kintyantiyantiyantiyantiyantiyantiyantiyantiyant"
    assert english_words("en", one_word, ws(one_word), 0.6, 0.3) is None
    assert english_words("en", "let it go", ws("let it go"), 0.6, 0.3) is not None
