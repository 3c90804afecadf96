"""Words: timings against the exact espeak word truth, listener tokens, no text from silence or
noise, user transcripts aligned instead of recognised, the model hash check."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from duplexcorpus.config import load_workflow
from duplexcorpus.evaluate import align_units, score_words
from tests.conftest import ROOT, SAMPLES


@pytest.fixture(scope="module")
def word_scores(sample_run):
    return score_words(sample_run.out / "tables", SAMPLES / "truth")


def test_every_word_has_a_time_and_a_score(sample_run):
    words = pd.read_parquet(sample_run.out / "tables" / "words.parquet")
    assert len(words) > 600
    assert words.start.notna().all() and words.end.notna().all() and (words.end >= words.start).all()
    assert words.score.between(0, 1).all()
    assert set(words.language) == {"en", "zh"}
    assert words.segment_id.notna().all()


def test_word_timing_error_against_truth(word_scores):
    assert word_scores["matched_units"] > 500
    assert word_scores["start_median_ms"] <= 50, word_scores
    assert word_scores["end_median_ms"] <= 50, word_scores
    assert word_scores["timed_share"] == 1.0


def test_recognition_and_listener_tokens(word_scores):
    # synthetic espeak speech; these bars catch regressions, they do not measure real-speech WER
    assert word_scores["wer_en"] < 0.25, word_scores
    assert word_scores["backchannel_recall"] >= 0.8, word_scores


def test_segments_carry_text_and_backchannels_their_words(sample_run):
    segs = pd.read_parquet(sample_run.out / "tables" / "segments.parquet")
    attrs = segs.attributes.map(json.loads)
    assert (attrs.map(lambda a: bool(a.get("text")))).mean() > 0.95
    events = pd.read_parquet(sample_run.out / "tables" / "events.parquet")
    bc = events[events.type == "backchannel"].attributes.map(json.loads)
    assert len(bc) >= 10 and bc.map(lambda a: "text" in a).all()
    assert bc.map(lambda a: a["lexical"]).mean() >= 0.8


def test_shards_hold_words_and_text_frames(sample_run):
    import webdataset as wds

    tars = sorted(str(p) for p in (sample_run.out / "shards").glob("*.tar"))
    n = 0
    for sample in wds.WebDataset(tars, shardshuffle=False).decode():
        meta, text = sample["json"], sample["text.npy"]
        assert text.shape[0] == meta["num_channels"] and tuple(text.shape) == tuple(meta["text_frames"]["shape"])
        if meta["words"]:
            # frame value k > 0 names words[k-1], on that word's channel
            marked = np.unique(text[text > 0])
            assert len(marked) and marked.max() <= len(meta["words"])
            assert all(meta["words"][k - 1]["channel"] in np.flatnonzero((text == k).any(axis=1)) for k in marked)
            assert all(0 <= w["start"] <= w["end"] <= meta["window"]["end"] - meta["window"]["start"] + 1e-6
                       for w in meta["words"])
            n += 1
    assert n >= 7


def _noise_and_transcript_corpus(tmp_path):
    """A call whose second channel is only noise (then digital silence), and a sample call with a
    user transcript (the script's text, times jittered by 0.2 s as delivered corpora are)."""
    src = tmp_path / "in"
    src.mkdir()
    speech, sr = sf.read(SAMPLES / "audio" / "en_support_clean.flac", dtype="float32")
    rng = np.random.default_rng(0)
    n = 12 * sr
    noise = (rng.standard_normal(n) * 10 ** (-40 / 20)).astype(np.float32)
    noise[8 * sr:] = 0.0
    sf.write(src / "noise_call.flac", np.stack([speech[:n, 0], noise], axis=1), sr)
    sf.write(src / "given_text.flac", speech, sr)
    timeline = next(t for t in json.loads((SAMPLES / "truth" / "timeline.json").read_text())
                    if t["recording_id"] == "en_support_clean")
    utts = [{"channel": u["channel"], "start": round(u["start"] + rng.uniform(-0.2, 0.2), 2),
             "end": round(u["end"] + rng.uniform(-0.2, 0.2), 2), "text": u["written"]} for u in timeline["utterances"]]
    (tmp_path / "transcripts").mkdir()
    (tmp_path / "transcripts" / "given_text.json").write_text(json.dumps(utts))
    return src, utts


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    from duplexcorpus.runner import run

    tmp = tmp_path_factory.mktemp("asr")
    src, utts = _noise_and_transcript_corpus(tmp)
    wf = load_workflow(ROOT / "workflows" / "samples.yaml", {"asr.transcripts": str(tmp / "transcripts"),
                                                             "split.pinned": {}})
    out = tmp / "out"
    run(src, out, wf, executor="local")
    return out, utts


def test_noise_only_channel_yields_no_words(small_run):
    out, _ = small_run
    words = pd.read_parquet(out / "tables" / "words.parquet")
    noisy = words[words.recording_id == "noise_call"]
    assert len(noisy[noisy.channel == 0]) > 10  # the speech channel is transcribed
    assert len(noisy[noisy.channel == 1]) == 0, noisy[noisy.channel == 1]


def test_given_transcript_is_aligned_not_recognised(small_run):
    out, utts = small_run
    words = pd.read_parquet(out / "tables" / "words.parquet")
    given = words[words.recording_id == "given_text"]
    assert (given.source == "transcript").all()
    for ch in (0, 1):
        expected = " ".join(u["text"] for u in sorted(utts, key=lambda u: u["start"]) if u["channel"] == ch).split()
        assert given[given.channel == ch].sort_values("start").word.tolist() == expected
    # timings: compare with the truth of the recording the audio came from
    truth = pd.read_parquet(SAMPLES / "truth" / "words.parquet")
    truth = truth[truth.recording_id == "en_support_clean"]
    errs = []
    for ch in (0, 1):
        t = truth[truth.channel == ch].sort_values("start").reset_index()
        g = given[given.channel == ch].sort_values("start").reset_index()
        # the script's text includes words of an utterance that was cut off: align, don't zip
        for i, j in align_units(t.word.str.lower().tolist(), g.word.str.lower().tolist()):
            if not t.joined[i]:
                errs.append(abs(t.start[i] - g.start[j]))
    assert len(errs) > 80
    assert np.median(errs) <= 0.05
    # and the ASR-vs-given comparison is reported as a quality signal
    check = next(out.glob("cache/asr/given_text/*/transcript_check.json"))
    summary = json.loads(check.read_text())["summary"]
    assert summary["units"] == sum(len(u["text"].split()) for u in utts) and summary["rate"] < 0.3


def test_embedded_model_hash_is_verified(tmp_path, monkeypatch):
    from duplexcorpus.whisper import ModelError, embedded_whisper_dir

    monkeypatch.setenv("DUPLEXCORPUS_MODEL_CACHE", str(tmp_path))
    folder = embedded_whisper_dir()
    assert (folder / "model.bin").stat().st_size == 145_217_532
    with open(folder / "config.json", "a") as handle:
        handle.write(" ")
    with pytest.raises(ModelError, match="sha256"):
        embedded_whisper_dir()
