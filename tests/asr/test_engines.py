"""The sherpa-onnx engines (`asr/sherpa.py`): Paraformer-zh and SenseVoice-Small, each on a STAND-IN
model of the real export's inputs, outputs and metadata with random weights (tests/asr/standin_onnx.py;
no package ships the real weights). They test the runtime and the adapter's code path (loading,
batched decoding, timestamps, Latin pieces, the stage's gates and timing, the contract rows, the cache
key), never accuracy: a stand-in's characters are random."""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr

from duplexcorpus.asr.engine import EMBEDDED_WHISPER, ModelError, engine_identity, load_engine
from duplexcorpus.asr.sherpa import MAX_TOKEN_SECONDS, SherpaEngine, locate, token_words
from duplexcorpus.asr.units import HAN
from duplexcorpus.config import AsrConfig, Workflow
from duplexcorpus.stages.asr import AsrStage
from duplexcorpus.stages.base import WorkItem
from duplexcorpus.storage import file_sha256
from tests.asr.standin_onnx import TOKEN_FRAMES, write_standin_paraformer, write_standin_sensevoice
from tests.conftest import SAMPLES

RATE = 16_000
STANDINS = {"paraformer": write_standin_paraformer, "sensevoice": write_standin_sensevoice}


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    root = tmp_path_factory.mktemp("standins")
    return {kind: write(root / kind) for kind, write in STANDINS.items()}


@pytest.fixture(scope="module")
def scorer():
    """One Whisper engine (the embedded base, the default `asr.score_model`) for every stage here:
    loading it is most of these tests' time on a shared 2-core machine."""
    from duplexcorpus.asr.engine import WhisperEngine

    return WhisperEngine(EMBEDDED_WHISPER)


FIRST_SECONDS = 15.0  # the IPUs of the first 15 s: enough clips, a fraction of the scoring time


def sample_item(folder, recording: str, language: str, seconds: float = FIRST_SECONDS):
    """A data_samples recording as the ASR stage reads it: its 16 kHz analysis track (the
    decrosstalk output) and its IPUs of the first `seconds` (the truth's, standing in for the
    diarize output), with `language` in its metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    audio, sr = sf.read(SAMPLES / "audio" / f"{recording}.flac", dtype="float32", always_2d=True)
    analysis = soxr.resample(audio, sr, RATE).astype(np.float32)
    (folder / "decrosstalk").mkdir()
    sf.write(folder / "decrosstalk" / "analysis.flac", analysis, RATE, subtype="PCM_24")
    truth = pd.read_parquet(SAMPLES / "truth" / "segments.parquet")
    truth = truth[(truth.recording_id == recording) & (truth.end <= seconds)]
    segments = [dict(recording_id=recording, channel=int(s.channel), speaker_id=s.speaker_id, start=float(s.start),
                     end=float(s.end), confidence=1.0) for s in truth.itertuples()]
    (folder / "diarize").mkdir()
    (folder / "diarize" / "segments.json").write_text(json.dumps(segments))
    rec = {"recording_id": recording, "num_channels": analysis.shape[1], "duration": len(analysis) / RATE,
           "channels": [dict(channel=c, speaker_id=f"s{c}", source_path="", source_channel=c, language=language)
                        for c in range(analysis.shape[1])], "source_paths": [], "source_sha256": [], "sha256": f"sha-{recording}", "format": "",
           "sample_rate": RATE, "language": language, "scenario": None, "environment": None, "device": None,
           "warnings": []}
    item = WorkItem(input={"recording_id": recording}, recording=rec,
                    outputs={"decrosstalk": str(folder / "decrosstalk"), "diarize": str(folder / "diarize")})
    return item, analysis, segments


@pytest.fixture(scope="module")
def zh_chat(tmp_path_factory):
    """zh_weekend_chat, its first FIRST_SECONDS (`sample_item`)."""
    return sample_item(tmp_path_factory.mktemp("zh_chat"), "zh_weekend_chat", "zh")


def _workflow(model: str, **asr) -> Workflow:
    return dataclasses.replace(Workflow(), asr=AsrConfig(model=model, device="cpu", language="zh", **asr))


# ------------------------------------------------------------------------------- model folders
def test_a_missing_model_says_what_is_missing(tmp_path):
    with pytest.raises(ModelError, match="not a local folder"):
        locate("paraformer", str(tmp_path / "nowhere"))
    with pytest.raises(ModelError, match="no model.int8.onnx or model.onnx"):
        locate("sensevoice", str(tmp_path))
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(ModelError, match="no tokens.txt"):
        locate("sensevoice", str(tmp_path))
    with pytest.raises(ModelError, match="not a local folder"):
        load_engine(AsrConfig(model=f"paraformer:{tmp_path / 'nowhere'}", device="cpu"))


def test_the_weights_are_pinned_and_keyed(standins, tmp_path):
    folder = standins["paraformer"]
    sha = file_sha256(folder / "model.int8.onnx")
    with pytest.raises(ModelError, match="does not match asr.model_sha256"):
        load_engine(AsrConfig(model=f"paraformer:{folder}", device="cpu", model_sha256="0" * 64))
    cfg = AsrConfig(model=f"paraformer:{folder}")
    assert sha in engine_identity(cfg)
    # the embedded Whisper's keys stay as they were (its hash is pinned in code)
    assert engine_identity(AsrConfig(model=EMBEDDED_WHISPER)) is None
    # another export in the same folder is another cache key
    other = write_standin_paraformer(tmp_path / "other", seed=1)
    assert engine_identity(AsrConfig(model=f"paraformer:{other}")) != engine_identity(cfg)
    assert "missing" in engine_identity(AsrConfig(model=f"sensevoice:{tmp_path / 'nowhere'}"))


def test_a_local_ctranslate2_whisper_folder_is_keyed_by_its_weights():
    from duplexcorpus.asr.engine import embedded_whisper_dir

    folder = embedded_whisper_dir()  # any CTranslate2 Whisper folder: here the embedded one's
    identity = engine_identity(AsrConfig(model=str(folder)))
    assert identity == f"{folder}@sha256:{file_sha256(folder / 'model.bin')}"


# ------------------------------------------------------------------------------ tokens -> words
def test_paraformer_pieces_join_into_words_and_times_come_from_the_next_token():
    words = token_words("paraformer", ["想", "听", "let", "app@@", "le", "pay", "。"],
                        [0.1, 0.3, 0.5, 0.9, 1.1, 1.3, 3.0], clip_seconds=2.0)
    assert [w.word for w in words] == ["想", "听", "let", "apple", "pay。"]
    assert [(w.start, w.end) for w in words[:3]] == [(0.1, 0.3), (0.3, 0.5), (0.5, 0.9)]
    assert words[3].end == pytest.approx(1.3)  # "app@@" + "le": to the token after "le"
    assert words[4].end == pytest.approx(1.3 + MAX_TOKEN_SECONDS)  # a far next token: capped


def test_sensevoice_word_starts_and_untimed_exports():
    words = token_words("sensevoice", [" 想", "听", " let", " it", " app", "le"], [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], 1.2)
    assert [w.word for w in words] == ["想", "听", "let", "it", "apple"]
    assert words[-1].end == pytest.approx(1.2)  # the last token ends at the clip's end at most
    untimed = token_words("paraformer", ["想", "听"], [], 1.0)  # an export without us_cif_peak
    assert [(w.word, w.start, w.end) for w in untimed] == [("想", None, None), ("听", None, None)]


# ------------------------------------------------------------------------- the runtime itself
@pytest.mark.parametrize("kind", sorted(STANDINS))
def test_the_runtime_decodes_a_batch_with_times_inside_each_clip(standins, zh_chat, kind):
    _, analysis, segments = zh_chat
    engine = SherpaEngine(locate(kind, str(standins[kind])), languages=("zh", "en"))
    clips = []
    for s in segments[:4]:
        a, b = int(s["start"] * RATE), int(s["end"] * RATE)
        from duplexcorpus.asr.engine import Clip

        clips.append(Clip(analysis[a:b, s["channel"]].copy(), "zh"))
    decoded = engine.run(clips)
    assert len(decoded) == 4
    for clip, d in zip(clips, decoded):
        seconds = len(clip.audio) / RATE
        # the stand-ins write a token every TOKEN_FRAMES LFR frames (60 ms each); Latin pieces join
        tokens = int(seconds / (0.06 * TOKEN_FRAMES))
        assert 1 <= len(d.words) <= tokens + 1
        starts = [w.start for w in d.words]
        assert starts == sorted(starts) and all(0 <= w.start <= w.end <= seconds + 1e-6 for w in d.words)
        assert d.language == "zh" and d.text
        # the probability is the Whisper scorer's (none: 0.0); no scorer here
        assert all(w.probability == 0.0 for w in d.words)
    # greedy decoding: a "sampled" retry is the same result, handed back without decoding again
    engine.recognizer = None  # any new decode would fail now
    again = engine.run(clips, temperature=0.4)
    assert [(d.text, d.words) for d in again] == [(d.text, d.words) for d in decoded]
    assert all(a.words[0] is not d.words[0] for a, d in zip(again, decoded))  # copies: callers may edit


# --------------------------------------------------------------------- through the ASR stage
@pytest.mark.parametrize("kind", sorted(STANDINS))
def test_the_stage_writes_contract_rows_from_each_engine(standins, zh_chat, scorer, tmp_path, monkeypatch, kind):
    import duplexcorpus.asr.engine as engine

    item, analysis, segments = zh_chat
    made = []
    monkeypatch.setattr(engine, "WhisperEngine", lambda model, *args: made.append(model) or scorer)
    stage = AsrStage(_workflow(f"{kind}:{standins[kind]}"))
    stage.ensure_setup()
    assert isinstance(stage.engine, SherpaEngine) and stage.engine.kind == kind
    assert made == [EMBEDDED_WHISPER] and stage.engine.scorer is scorer  # asr.score_model
    out = tmp_path / "asr"
    out.mkdir()
    assert stage.process_batch([item], [out]) == [None]
    words = json.loads((out / "words.json").read_text())
    clips = json.loads((out / "clips.json").read_text())
    dropped = json.loads((out / "dropped.json").read_text())
    assert words, "the stand-in writes a character every 240 ms of speech"
    duration = len(analysis) / RATE
    for ch in {w["channel"] for w in words}:
        rows = [w for w in words if w["channel"] == ch]
        assert [w["start"] for w in rows] == sorted(w["start"] for w in rows)
        ends = [w["end"] for w in rows]
        assert all(a <= b + 1e-6 for a, b in zip(ends, ends[1:]))
    for w in words:
        # one Han character per row (or one Latin word: the stand-ins' vocabularies hold a few)
        assert re.fullmatch(rf"[{HAN}]", w["word"]) and w["language"] == "zh" or \
            re.fullmatch(r"[A-Za-z]+", w["word"]) and w["language"] == "en", w
        assert 0.0 <= w["start"] < w["end"] <= duration
        inside = [s for s in segments if s["channel"] == w["channel"] and s["start"] - 1e-3 <= w["start"] and w["end"] <= s["end"] + 1e-3]
        assert inside, w
        assert 0.0 <= w["score"] <= 1.0 and w["source"] == "asr"
    # the score is the Whisper scorer's alignment probability of the stand-in's characters
    assert len({w["score"] for w in words}) > 1
    # every decoded clip is listed; what the gates removed says why
    assert clips and all(c["language"] == "zh" for c in clips)
    assert all(d["reason"] in ("no_speech", "hallucination_phrase", "repetition_loop", "prompt_echo") for d in dropped)
    segs = json.loads((out / "segments.json").read_text())
    assert all(("no_words_reason" in s["attributes"]) != (s["attributes"]["words"] > 0) for s in segs)


def test_sensevoice_reads_the_language_from_its_first_token(standins, zh_chat):
    from duplexcorpus.asr.engine import Clip

    _, analysis, segments = zh_chat
    s = segments[0]
    audio = analysis[int(s["start"] * RATE): int(s["end"] * RATE), s["channel"]].copy()
    engine = SherpaEngine(locate("sensevoice", str(standins["sensevoice"])), languages=("zh", "en"))
    auto, forced = engine.run([Clip(audio, None), Clip(audio, "en")])
    assert auto.language == "zh"  # the stand-in writes <|zh|> when asked for auto
    assert forced.language == "en" and set(engine._recognizers) == {"", "en"}  # one recognizer per language


def test_a_given_transcript_is_aligned_by_the_score_model(standins, zh_chat, scorer):
    from duplexcorpus.asr.engine import Clip

    _, analysis, segments = zh_chat
    s = segments[0]
    audio = analysis[int(s["start"] * RATE): int(s["end"] * RATE), s["channel"]].copy()
    engine = SherpaEngine(locate("paraformer", str(standins["paraformer"])), scorer=scorer)
    text = "你这个周末有什么安排"
    aligned, recognised = engine.run([Clip(audio, "zh", text=text), Clip(audio, "zh")])
    assert aligned.text == text and "".join(w.word for w in aligned.words) == text
    assert all(0 <= w.start <= w.end <= len(audio) / RATE + 1e-6 for w in aligned.words)
    # the recognised clip's words are scored by the same Whisper alignment: probabilities in (0, 1]
    assert recognised.words and all(0.0 < w.probability <= 1.0 for w in recognised.words)


# ------------------------------------------------------------------- one engine per language
def test_an_unknown_language_or_a_bad_spec_is_a_config_error():
    from duplexcorpus.config import WorkflowError, load_workflow

    ok = load_workflow(None, {"asr.engines": {"zh": "paraformer:/models/pz", "en": EMBEDDED_WHISPER}})
    assert dict(ok.asr.engines) == {"zh": "paraformer:/models/pz", "en": EMBEDDED_WHISPER}
    bad = {
        "asr.engines": ({"ja": EMBEDDED_WHISPER}, r"language 'ja' is not in asr.languages \['en', 'zh'\]"),
        "asr.engines.zh": ("funasr:/models/pz", r"zh: 'funasr:/models/pz': unknown engine kind 'funasr'"),
        "asr.engines.en": ("paraformer:", r"en: 'paraformer:': paraformer: needs a local folder"),
        "asr.model": ("embedded:whisper-large", r"asr.model: 'embedded:whisper-large': the embedded models are"),
    }
    for key, (value, message) in bad.items():
        with pytest.raises(WorkflowError, match=message):
            load_workflow(None, {key: value})
    with pytest.raises(WorkflowError, match="asr.engines: expected a mapping"):
        load_workflow(None, {"asr.engines": ["zh", "paraformer:/x"]})
    with pytest.raises(WorkflowError, match=r"zh: 3 is not an engine spec"):
        load_workflow(None, {"asr.engines.zh": 3})


def test_the_engine_of_a_language_is_in_the_cache_key_of_that_language_only(standins, zh_chat, tmp_path):
    zh_item = zh_chat[0]
    en_item = sample_item(tmp_path, "en_support_clean", "en", seconds=1.0)[0]

    def keys(**asr):
        stage = AsrStage(dataclasses.replace(Workflow(), asr=AsrConfig(device="cpu", **asr)))
        for item in (zh_item, en_item):
            item.keys.update(decrosstalk="d", ipus="i", diarize="z")
        return stage, {lang: stage.cache_key(item) for lang, item in (("zh", zh_item), ("en", en_item))}

    plain_stage, plain = keys()
    # no engines: the section (and so the key) is the one from before `asr.engines` existed
    assert "engines" not in plain_stage.key_section(zh_item)
    para = f"paraformer:{standins['paraformer']}"
    _, with_zh = keys(engines={"zh": para})
    assert with_zh["zh"] != plain["zh"] and with_zh["en"] == plain["en"]
    _, other_zh = keys(engines={"zh": f"sensevoice:{standins['sensevoice']}"})
    assert other_zh["zh"] != with_zh["zh"] and other_zh["en"] == plain["en"]
    # new weights under the same folder: a new key for Mandarin
    other = write_standin_paraformer(tmp_path / "p2", seed=3)
    _, moved = keys(engines={"zh": f"paraformer:{other}"})
    assert moved["zh"] not in (with_zh["zh"], plain["zh"]) and moved["en"] == plain["en"]
    # a recording whose language is detected can reach every engine
    detected = dataclasses.replace(en_item, recording=dict(
        en_item.recording, language=None, channels=[dict(c, language=None) for c in en_item.recording["channels"]]))
    stage, _ = keys(engines={"zh": para})
    assert stage.engines_used(detected) == {"zh": para} and stage.engines_used(en_item) == {}


def test_a_two_recording_run_gives_each_language_its_engine(standins, zh_chat, scorer, tmp_path, monkeypatch):
    """zh goes to the STAND-IN Paraformer, en to Whisper base: clips.json names the engine of every
    clip; the Mandarin rows keep the contract (one Han character per row, a score each)."""
    import duplexcorpus.asr.engine as engine
    from duplexcorpus.asr.engines import EngineRouter

    made = []
    monkeypatch.setattr(engine, "WhisperEngine", lambda model, *args: made.append(model) or scorer)
    para = f"paraformer:{standins['paraformer']}"
    zh_item, _, zh_segments = zh_chat
    en_item, _, en_segments = sample_item(tmp_path / "en", "en_support_clean", "en", seconds=8.0)
    assert en_segments
    stage = AsrStage(dataclasses.replace(Workflow(), asr=AsrConfig(
        device="cpu", engines={"zh": para, "en": EMBEDDED_WHISPER})))
    stage.ensure_setup()
    router = stage.engine
    assert isinstance(router, EngineRouter) and router.default is scorer
    assert isinstance(router.engine_for("zh")[1], SherpaEngine) and router.engine_for("en") == (EMBEDDED_WHISPER, scorer)
    assert made == [EMBEDDED_WHISPER]  # one Whisper: asr.model, the en engine and the score model share it
    outs = [tmp_path / "zh_out", tmp_path / "en_out"]
    for o in outs:
        o.mkdir()
    assert stage.process_batch([zh_item, en_item], outs) == [None, None]
    for out, spec, language, segments in ((outs[0], para, "zh", zh_segments), (outs[1], EMBEDDED_WHISPER, "en", en_segments)):
        clips = json.loads((out / "clips.json").read_text())
        firsts = [c for c in clips if c["role"] == "asr"]
        assert firsts and {c["engine"] for c in firsts} == {spec}, (language, clips)
        assert all(r["engine"] == spec for c in firsts for r in c.get("retries", []))
        words = json.loads((out / "words.json").read_text())
        assert words, language
        for w in words:
            assert 0.0 <= w["score"] <= 1.0 and w["start"] < w["end"]
            assert any(s["channel"] == w["channel"] and s["start"] - 1e-3 <= w["start"] and w["end"] <= s["end"] + 1e-3
                       for s in segments), w
        if language == "zh":
            han = [w for w in words if w["language"] == "zh"]
            assert han and all(re.fullmatch(rf"[{HAN}]", w["word"]) for w in han)
            assert len({w["score"] for w in han}) > 1  # the score model's alignment probabilities
        else:
            assert all(w["language"] == "en" and re.search("[A-Za-z]", w["word"]) for w in words)
            # Whisper's English, not the stand-in's characters
            assert not any(re.search(f"[{HAN}]", w["word"]) for w in words)


def test_a_clip_without_a_language_is_detected_then_routed(standins, scorer, tmp_path, monkeypatch):
    """Routing by Whisper's language head: an English clip (no metadata language) goes to the English
    engine, keeping the detection's probability."""
    import duplexcorpus.asr.engine as engine
    from duplexcorpus.asr.engine import Clip
    from duplexcorpus.asr.engines import load_router

    monkeypatch.setattr(engine, "WhisperEngine", lambda model, *args: scorer)
    _, en_audio, en_segments = sample_item(tmp_path, "en_support_clean", "en", seconds=8.0)
    s = en_segments[0]
    clip = Clip(en_audio[int(s["start"] * RATE): int(s["end"] * RATE), s["channel"]].copy(), None)
    cfg = AsrConfig(device="cpu", model=f"paraformer:{standins['paraformer']}", engines={"en": EMBEDDED_WHISPER})
    router = load_router(cfg, load_engine)
    assert router.detector is scorer  # the score model's Whisper detects
    (d,) = router.run([clip])
    assert d.engine == EMBEDDED_WHISPER and d.language == "en" and 0.5 < d.language_probability <= 1.0
    assert re.search("[A-Za-z]", d.text)
    assert clip.language is None  # the caller's clip is left as it was


def test_a_mixed_language_batch_gives_each_clip_what_it_gets_alone(zh_chat, scorer):
    """generate and align run per language (and prompt length) on the rows of the batch's one
    encoder output (`WhisperEngine.rows`), not on the clips encoded again: the same words and times."""
    from duplexcorpus.asr.engine import Clip

    _, analysis, segments = zh_chat
    clips = []
    for s, language, prompt in zip(segments[:3], ("zh", "en", "zh"), (None, None, "嗯。对。")):
        clips.append(Clip(analysis[int(s["start"] * RATE): int(s["end"] * RATE), s["channel"]].copy(), language, prompt))
    encoded = scorer.encode(clips)
    assert np.array_equal(np.asarray(scorer.rows(encoded, [0, 2], clips)), np.asarray(scorer.encode([clips[0], clips[2]])))
    together = scorer.run(clips)
    for clip, got in zip(clips, together):
        alone = scorer.run([clip])[0]
        assert (got.text, got.language) == (alone.text, alone.language)
        assert [(w.word, round(w.start, 3), round(w.end, 3)) for w in got.words] == \
            [(w.word, round(w.start, 3), round(w.end, 3)) for w in alone.words]


def test_code_switch_runs_are_decoded_only_where_whisper_hears_english(zh_chat, scorer, tmp_path):
    """The code-switch pass identifies each run's language first (`WhisperEngine.identify`, the
    encoder output kept) and decodes only the runs identified as English: those get the same
    decode as with the language left open, the others their language and its probability."""
    from duplexcorpus.asr.engine import Clip

    _, zh_audio, zh_segments = zh_chat
    _, en_audio, en_segments = sample_item(tmp_path, "en_support_clean", "en", seconds=8.0)
    zh, en = zh_segments[0], en_segments[0]
    audios = [zh_audio[int(zh["start"] * RATE): int(zh["end"] * RATE), zh["channel"]].copy(),
              en_audio[int(en["start"] * RATE): int(en["end"] * RATE), en["channel"]].copy()]
    stage = AsrStage(Workflow())
    stage.engine = scorer
    mandarin, english = stage.hear_as_english([Clip(a, None) for a in audios])
    assert isinstance(mandarin, tuple) and mandarin[0] == "zh" and 0.0 < mandarin[1] <= 1.0  # espeak Mandarin: ~0.4
    open_language = scorer.run([Clip(audios[1], None)])[0]
    assert (english.language, english.text) == ("en", open_language.text) and english.words
