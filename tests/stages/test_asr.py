"""The ASR stage: how it plans a recording's clips and records what the gates drop (fast, no
model), then end to end with Whisper (slow): timings against the exact espeak word truth, listener
tokens, no text from silence or noise, user transcripts aligned instead of recognised. Its pieces
are tested on their own in tests/asr/."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from duplexcorpus.asr.engine import Decoded
from duplexcorpus.asr.plan import ClipPlan
from duplexcorpus.config import load_workflow
from duplexcorpus.evaluate import align_units, score_words
from duplexcorpus.records import Segment
from duplexcorpus.stages.asr import AsrStage, ItemState
from duplexcorpus.stages.base import Rejected
from duplexcorpus.transcripts import Utterance
from tests.conftest import ROOT, SAMPLES


# ------------------------------------------------------------------------ the stage itself (fast)
@pytest.fixture()
def stage(monkeypatch):
    stage = AsrStage(load_workflow(ROOT / "workflows" / "samples.yaml"))
    monkeypatch.setattr(stage, "language_of", lambda st, channel: "en")
    return stage


def _state(segments: list[tuple[int, float, float]], utterances=()) -> ItemState:
    return ItemState(None, Path("."), [Segment("r", ch, f"s{ch}", a, b, 1.0) for ch, a, b in segments],
                     list(utterances))


def test_plan_packs_each_channel_and_keeps_listener_tokens_apart(stage):
    plans = stage.plan(2, _state([(0, 1.0, 3.0), (1, 2.0, 2.5), (0, 4.0, 6.0)]))
    pad = stage.cfg.pad
    assert [(p.item, p.channel, p.spans, p.prompt, p.packed, p.role) for p in plans] == [
        (2, 0, [(1.0, 3.0), (4.0, 6.0)], stage.prompt("en", False), True, "asr"),
        (2, 1, [(2.0, 2.5)], stage.prompt("en", True), True, "asr")]
    assert (plans[0].start, plans[0].end) == (1.0 - pad, 6.0 + pad)


def test_plan_aligns_given_utterances_and_recognises_them_to_compare(stage):
    st = _state([(0, 1.0, 2.0), (0, 2.5, 3.0)], [Utterance(0, 1.2, 2.9, "hello there")])
    transcript, compare = stage.plan(0, st)
    assert (transcript.role, transcript.text, transcript.prompt, transcript.utterance) == ("transcript", "hello there", None, 0)
    assert (compare.role, compare.text, compare.prompt, compare.utterance) == ("compare", None, stage.prompt("en", False), 0)
    # the IPUs that reach into the utterance, cut to it with `pad` of slack
    assert transcript.spans == compare.spans == [(1.2 - stage.cfg.pad, 2.0), (2.5, 3.0)] and not transcript.packed


def test_plan_rejects_an_utterance_longer_than_a_whisper_clip(stage):
    st = _state([(0, 1.0, 40.0)], [Utterance(0, 1.0, 40.0, "a very long turn")])
    with pytest.raises(Rejected, match="split it under 30 s") as err:
        stage.plan(0, st)
    assert err.value.reason_code == "bad_transcript"


def test_gate_records_each_drop_with_its_reason(stage):
    st = _state([])
    plan = ClipPlan(0, 1, 4.85, 6.15, [(5.0, 6.0)], "en", None, packed=True)
    words = [{"word": "Thank", "start": 0.2, "end": 0.4, "score": 0.3}, {"word": "you.", "start": 0.4, "end": 0.6, "score": 0.3}]
    assert stage.gate(st, plan, Decoded("Thank you.", "en", 1.0, -0.31234, 0.1), "Thank you.", words) == []
    assert st.dropped == [{"channel": 1, "start": 4.85, "end": 6.15, "reason": "hallucination_phrase",
                           "text": "Thank you.", "no_speech_prob": 0.1, "avg_logprob": -0.312, "phrase": "thank you"}]
    assert list(st.dropped[0]) == ["channel", "start", "end", "reason", "text", "no_speech_prob", "avg_logprob", "phrase"]
    loop = [{"word": w, "start": 0.1 * i, "end": 0.1 * i + 0.05, "score": 0.9} for i, w in enumerate("no no no no no".split())]
    kept = stage.gate(st, plan, Decoded("no no no no no", "en", 1.0, -0.2, 0.0), "no no no no no", loop)
    assert kept == loop[:1]
    assert st.dropped[-1]["reason"] == "repetition_loop" and st.dropped[-1]["text"] == "no no no no"
    assert st.dropped[-1]["ngram"] == "no"


def test_segment_text_keeps_the_punctuation_written_after_each_unit(stage, tmp_path):
    st = ItemState(None, tmp_path, [Segment("r", 0, "s0", 0.0, 2.0, 1.0)])
    unit = dict(channel=0, score=0.9, language="zh", source="asr", interpolated=False)
    st.words = [dict(unit, word="你", start=0.1, end=0.3), dict(unit, word="好", start=0.3, end=0.5, punct="，"),
                dict(unit, word="Apple", start=0.6, end=0.9, language="en"),
                dict(unit, word="Pay", start=0.9, end=1.2, language="en", punct="。")]
    stage.write(st)
    text = json.loads((tmp_path / AsrStage.SEGMENTS.file).read_text())[0]["attributes"]["text"]
    assert text.startswith("你好，") and text.endswith("Pay。") and "Apple" in text
    words = json.loads((tmp_path / AsrStage.WORDS.file).read_text())
    assert [w["word"] for w in words] == ["你", "好", "Apple", "Pay"]  # punctuation never inside a word


# ------------------------------------------------------------------------ end to end (slow)


@pytest.fixture(scope="module")
def word_scores(sample_run):
    return score_words(sample_run.out / "tables", SAMPLES / "truth")


@pytest.mark.slow
def test_every_word_has_a_time_and_a_score(sample_run):
    words = pd.read_parquet(sample_run.out / "tables" / "words.parquet")
    assert len(words) > 600
    assert words.start.notna().all() and words.end.notna().all() and (words.end >= words.start).all()
    assert words.score.between(0, 1).all()
    assert set(words.language) == {"en", "zh"}
    assert words.segment_id.notna().all()


@pytest.mark.slow
def test_word_timing_error_against_truth(word_scores):
    assert word_scores["matched_units"] > 500
    assert word_scores["start_median_ms"] <= 50, word_scores
    assert word_scores["end_median_ms"] <= 50, word_scores
    assert word_scores["timed_share"] == 1.0


@pytest.mark.slow
def test_recognition_and_listener_tokens(word_scores):
    # synthetic espeak speech; these bars catch regressions, they do not measure real-speech WER
    assert word_scores["wer_en"] < 0.25, word_scores
    assert word_scores["backchannel_recall"] >= 0.8, word_scores


@pytest.mark.slow
def test_segments_carry_text_and_backchannels_their_words(sample_run):
    segs = pd.read_parquet(sample_run.out / "tables" / "segments.parquet")
    attrs = segs.attributes.map(json.loads)
    assert (attrs.map(lambda a: bool(a.get("text")))).mean() > 0.95
    events = pd.read_parquet(sample_run.out / "tables" / "events.parquet")
    bc = events[events.type == "backchannel"].attributes.map(json.loads)
    assert len(bc) >= 10 and bc.map(lambda a: "text" in a).all()
    assert bc.map(lambda a: a["lexical"]).mean() >= 0.8


@pytest.mark.slow
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


@pytest.mark.slow
def test_noise_only_channel_yields_no_words(small_run):
    out, _ = small_run
    words = pd.read_parquet(out / "tables" / "words.parquet")
    noisy = words[words.recording_id == "noise_call"]
    assert len(noisy[noisy.channel == 0]) > 10  # the speech channel is transcribed
    assert len(noisy[noisy.channel == 1]) == 0, noisy[noisy.channel == 1]


@pytest.mark.slow
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



# ------------------------------------------------------------------------ re-decoding (slow)
@pytest.fixture(scope="module", params=["whole", "second_half"])
def looped_run(request, tmp_path_factory):
    """20 s of a sample call whose first decoded clip is made to loop ("road road road ..."), as
    Whisper does on real calls: the stage must decode it again and keep real words. `whole`: the
    loop is all the clip says; `second_half`: Whisper's real words until half way, then the loop."""
    from duplexcorpus.asr.engine import WhisperEngine, WordTiming
    from duplexcorpus.runner import run

    tmp = tmp_path_factory.mktemp("loop")
    (tmp / "in").mkdir()
    speech, sr = sf.read(SAMPLES / "audio" / "en_support_clean.flac", dtype="float32")
    sf.write(tmp / "in" / "looped.flac", speech[: 20 * sr], sr)
    original = WhisperEngine.run
    looped: list[float] = []

    def run_looping_once(self, clips, temperature=0.0, best_of=5, seed=0, max_length=None):
        out = original(self, clips, temperature, best_of, seed, max_length)
        if not looped and temperature == 0.0:
            i = max(range(len(clips)), key=lambda k: len(clips[k].audio))
            dur = len(clips[i].audio) / 16_000
            looped.append(dur)
            n, begin = 40, (0.0 if request.param == "whole" else dur / 2)
            real = [w for w in out[i].words if w.end <= begin]
            loop = [WordTiming("road", begin + (dur - begin) * k / n, begin + (dur - begin) * (k + 1) / n, 0.9)
                    for k in range(n)]
            out[i] = Decoded(" ".join([w.word for w in real] + ["road"] * n), out[i].language, 1.0, -0.2, 0.01,
                             real + loop)
        return out

    mp = pytest.MonkeyPatch()
    mp.setattr(WhisperEngine, "run", run_looping_once)
    try:
        out = tmp / "out"
        run(tmp / "in", out, load_workflow(ROOT / "workflows" / "samples.yaml", {"split.pinned": {}}), executor="local")
    finally:
        mp.undo()
    assert looped
    return request.param, out


@pytest.mark.slow
def test_a_looping_clip_is_decoded_again_and_every_ipu_keeps_words(looped_run):
    where, looped_run = looped_run
    asr = next(looped_run.glob("cache/asr/looped/*"))
    clips = json.loads((asr / "clips.json").read_text())
    failed = [c for c in clips if c.get("failed")]
    assert [c["failed"] for c in failed] == ["repetition_loop"]
    retries = failed[0]["retries"]
    # the IPU the loop begins in is decoded alone, the IPUs after it as one packed clip again (one
    # encoder pass), beam search first, each retry listed
    first = [r for r in retries if r["temperature"] == 0.0]
    assert sorted(r["scope"] for r in first) == ["ipu", "rest"], retries
    alone = next(r for r in first if r["scope"] == "ipu")
    rest = next(r for r in first if r["scope"] == "rest")
    assert alone["end"] < rest["start"] + 0.3 and rest["end"] == failed[0]["end"]
    if where == "whole":
        assert "kept_before_loop" not in failed[0] and alone["start"] == failed[0]["start"]
    else:  # the IPUs before the loop keep the words Whisper wrote for them
        kept = failed[0]["kept_before_loop"]
        assert len(kept) == 1 and failed[0]["start"] < kept[0][1] <= (failed[0]["start"] + failed[0]["end"]) / 2
        assert alone["start"] > kept[0][1] - 0.3
    # nothing is dropped
    assert all("road road road" not in r["text"] for r in retries)
    assert json.loads((asr / "dropped.json").read_text()) == []
    segs = json.loads((asr / "segments.json").read_text())
    assert segs and all(s["attributes"]["words"] > 0 for s in segs), [s["attributes"] for s in segs]
    assert not any("no_words_reason" in s["attributes"] for s in segs)
    stats = json.loads((looped_run / "stats.json").read_text())
    assert stats["asr"]["ipus_with_words"] == 1.0 and stats["asr"]["speech_seconds_with_words"] == 1.0
    words = pd.read_parquet(looped_run / "tables" / "words.parquet")
    assert "road" not in set(words.word.str.lower())
