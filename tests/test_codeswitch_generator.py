"""bench/stress/make_codeswitch.py: seeded code-switched scripts, word truth with the language of every
word inside its utterance; then one generated sentence through the pipeline's ASR (slow): its English
title comes back as Latin rows with language en, where the truth says it was spoken."""
from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("make_codeswitch", ROOT / "bench" / "stress" / "make_codeswitch.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_codeswitch"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_sentences_put_the_english_where_the_frame_says(gen):
    opening, inside, closing = (gen.sentence(*f, "Let It Go") for f in (
        ("{}是我最喜欢的歌", "{} shi4 wo3 zui4 xi3 huan1 de5 ge1"),
        ("你听过{}这首歌吗", "ni3 ting1 guo4 {} zhe4 shou3 ge1 ma5"),
        ("我想听{}", "wo3 xiang3 ting1 {}")))
    assert [s.language for s in opening] == ["en", "zh"] and opening[0].written == ("Let", "It", "Go")
    assert [s.language for s in inside] == ["zh", "en", "zh"] and inside[2].written == tuple("这首歌吗")
    assert [s.language for s in closing] == ["zh", "en"] and closing[0].spoken == "wo3 xiang3 ting1"
    assert gen.written(inside) == "你听过Let It Go这首歌吗"


def test_draws_are_seeded_and_wide(gen):
    a, b = gen.draw_conditions(100), gen.draw_conditions(101)
    assert a == gen.draw_conditions(100) and a != b
    draws = [gen.draw_conditions(s) for s in range(100, 140)]
    spans = [sp for c in draws for step in c.script for sp in step[4]]
    english = {sp.spoken for sp in spans if sp.language == "en"}
    assert len(english) >= 25  # many different English words and titles
    assert {v.rate for c in draws for v in (c.voice_a, c.voice_b)} <= set(range(130, 176))
    assert len({v.mandarin for c in draws for v in (c.voice_a, c.voice_b)}) >= 8
    plain = sum(len(step[4]) == 1 and step[1] != "bc" for c in draws for step in c.script)
    assert 0.15 < plain / sum(step[1] != "bc" for c in draws for step in c.script) < 0.5  # Mandarin-only lines


def test_a_rendered_call_has_its_words_in_order_with_their_language(gen, tmp_path):
    import pandas as pd
    import soundfile as sf

    gen.render_set([100], tmp_path, jobs=1)
    words = pd.read_parquet(tmp_path / "truth" / "words.parquet")
    utts = pd.read_parquet(tmp_path / "truth" / "utterances.parquet")
    audio, sr = sf.read(tmp_path / "audio" / "cs_0100.flac")
    assert sr == 16_000 and audio.shape[1] == 2
    en = words[words.language == "en"]
    assert len(en) and en.word.str.fullmatch(r"[A-Za-z']+").all()
    assert words[words.language == "zh"].word.str.fullmatch(r"[\u4e00-\u9fff]").all()  # one character a row
    for u in utts.itertuples():
        mine = words[(words.utterance == u.utterance)].sort_values("index")
        assert (mine.channel == u.channel).all()
        assert mine.start.min() >= u.start - 1e-3 and mine.end.max() <= u.end + 1e-3
        assert np.all(np.diff(mine.start.to_numpy()) > 0)  # spoken in the written order
        assert "".join(mine.word) == u.text.replace(" ", "")
        assert u.code_switched == (mine.language == "en").any()
        # the channel holds the utterance's speech, the other only its faint leak where its own
        # speaker is quiet
        quiet = np.ones(len(audio), bool)
        for o in utts[utts.channel != u.channel].itertuples():
            quiet[int(o.start * sr): int(o.end * sr)] = False
        span = np.zeros(len(audio), bool)
        span[int(u.start * sr): int(u.end * sr)] = True
        if (span & quiet).sum() > 0.2 * sr:
            own, other = (np.sqrt(np.mean(audio[span & quiet, c] ** 2)) for c in (u.channel, 1 - u.channel))
            assert own > 5 * other


@pytest.mark.slow  # Whisper through the whole pipeline
def test_an_english_word_inside_generated_mandarin_comes_back_english(gen, tmp_path):
    import pandas as pd
    import soundfile as sf

    from duplexcorpus.config import load_workflow
    from duplexcorpus.runner import run

    gen._CACHE_DIR = None
    spans = gen.sentence("我想听{}", "wo3 xiang3 ting1 {}", "Let It Go")
    audio, times = gen.synthesise_spans(spans, gen.Voice("cmn-latn-pinyin", "en-us", 140, 0.08))
    lead = 0.5
    inp = tmp_path / "in"
    inp.mkdir()
    sf.write(inp / "cs.wav", np.concatenate([np.zeros(int(lead * 16_000), np.float32), audio,
                                             np.zeros(8_000, np.float32)]), 16_000)
    (inp / "metadata.csv").write_text("recording_id,channel,speaker_id,language\ncs,0,a,zh\n")
    run(inp, tmp_path / "out", load_workflow(None, {"diarization.enabled": False, "nonverbal.enabled": False}),
        executor="local")
    words = pd.read_parquet(tmp_path / "out" / "tables" / "words.parquet")
    english = words[words.language == "en"]
    assert {"let", "it", "go"} <= set(english.word.str.lower()), words.word.tolist()
    truth = [(w, lead + a, lead + b) for w, (a, b, _) in zip([w for s in spans for w in s.written], times)]
    en_start, en_end = truth[3][1], truth[-1][2]  # "Let" .. "Go"
    mid = (english.start + english.end) / 2
    assert ((mid > en_start - 0.2) & (mid < en_end + 0.2)).all(), english  # where the English was spoken
    assert words[words.language == "zh"].word.str.fullmatch(r"[\u4e00-\u9fff]").sum() >= 2  # the Mandarin stays
