"""The whisperx.align path for a user-supplied wav2vec2/CTC aligner (`duplexcorpus.asr.ctc`).

No aligner weights can be had offline, so this uses a STAND-IN: a tiny randomly initialised
Wav2Vec2ForCTC saved as a local folder. It exercises the real whisperx code path (loading from a
local folder, CTC alignment, words it cannot place) but says nothing about alignment accuracy.
The aligner alone needs no Whisper; the pipeline run through it does (slow).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from duplexcorpus.asr.ctc import CtcAligner, one_sentence_splitter
from duplexcorpus.config import AsrConfig, load_workflow
from duplexcorpus.stages.base import Rejected
from tests.conftest import ROOT, SAMPLES


@pytest.fixture(scope="module")
def stand_in_aligner(tmp_path_factory):
    import torch
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC,
                              Wav2Vec2Processor)

    folder = tmp_path_factory.mktemp("stand_in_wav2vec2_en")
    chars = list("abcdefghijklmnopqrstuvwxyz'")  # no digits: "4492" cannot be placed
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                         return_attention_mask=False)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    torch.manual_seed(0)
    config = Wav2Vec2Config(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=2, pad_token_id=0)
    Wav2Vec2ForCTC(config).save_pretrained(folder)
    return folder


def test_ctc_aligner_returns_the_words_of_the_text_in_order(stand_in_aligner):
    audio, sr = sf.read(SAMPLES / "audio" / "en_support_clean.flac", dtype="float32")
    clip = audio[: 3 * sr, 0].copy()
    aligner = CtcAligner({"en": str(stand_in_aligner)}, "cpu")
    words = aligner.words("en", clip, "sure it says A C 4492")
    assert [w["word"] for w in words] == ["sure", "it", "says", "A", "C", "4492"]
    placed = [w for w in words if w["start"] is not None]  # (a random model: where, says nothing)
    assert len(placed) >= 5 and all(0.0 <= w["start"] <= w["end"] <= 3.0 for w in placed)
    assert all(a["end"] <= b["start"] for a, b in zip(placed, placed[1:]))
    assert all(type(w["score"]) is float for w in words)


def test_ctc_aligner_only_where_configured(stand_in_aligner, tmp_path):
    aligner = CtcAligner.from_config(AsrConfig(aligner_en=str(stand_in_aligner)), "cpu")
    assert aligner.folders == {"en": str(stand_in_aligner), "zh": None}
    clip = np.zeros(16_000, np.float32)
    assert aligner.words("zh", clip, "你好") is None  # no zh aligner: cross-attention is used
    assert aligner.words("en", clip, "  ") is None  # nothing to align
    missing = CtcAligner({"en": str(tmp_path / "nowhere")}, "cpu")
    with pytest.raises(Rejected) as err:
        missing.words("en", clip, "hello")
    assert err.value.reason_code == "aligner_missing" and "asr.aligner_en" in err.value.reason


def test_one_sentence_splitter_is_put_back():
    import whisperx.alignment

    original = whisperx.alignment.nltk_load
    with one_sentence_splitter():
        splitter = whisperx.alignment.nltk_load("tokenizers/punkt")
        assert splitter.span_tokenize("One. Two! Three?") == [(0, 16)]
    assert whisperx.alignment.nltk_load is original


@pytest.mark.slow
def test_ctc_aligner_path_times_every_word(stand_in_aligner, tmp_path):
    from duplexcorpus.runner import run

    src = tmp_path / "in"
    src.mkdir()
    audio, sr = sf.read(SAMPLES / "audio" / "en_support_clean.flac", dtype="float32")
    sf.write(src / "call.flac", audio[: 26 * sr], sr)  # includes "sure it says A C four four nine two"
    wf = load_workflow(ROOT / "workflows" / "samples.yaml", {"asr.aligner_en": str(stand_in_aligner),
                                                             "asr.language": "en", "split.pinned": {}})
    run(src, tmp_path / "out", wf, executor="local")
    words = pd.read_parquet(tmp_path / "out" / "tables" / "words.parquet")
    assert len(words) > 20
    assert words.start.notna().all() and (words.end >= words.start).all()  # no word without a time
    segs = pd.read_parquet(tmp_path / "out" / "tables" / "segments.parquet")
    for w in words.itertuples():  # every word inside its IPU
        seg = segs[segs.segment_id == w.segment_id].iloc[0]
        assert seg.start - 1e-3 <= w.start and w.end <= seg.end + 1e-3
    assert np.isfinite(words.score).all()
