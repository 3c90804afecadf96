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


@pytest.fixture(scope="module")
def zh_chat(tmp_path_factory):
    """zh_weekend_chat from data_samples as the ASR stage reads it: its 16 kHz analysis track (the
    decrosstalk output) and its IPUs of the first FIRST_SECONDS (the truth's, standing in for the
    diarize output)."""
    folder = tmp_path_factory.mktemp("zh_chat")
    audio, sr = sf.read(SAMPLES / "audio" / "zh_weekend_chat.flac", dtype="float32", always_2d=True)
    analysis = soxr.resample(audio, sr, RATE).astype(np.float32)
    (folder / "decrosstalk").mkdir()
    sf.write(folder / "decrosstalk" / "analysis.flac", analysis, RATE, subtype="PCM_24")
    truth = pd.read_parquet(SAMPLES / "truth" / "segments.parquet")
    truth = truth[(truth.recording_id == "zh_weekend_chat") & (truth.end <= FIRST_SECONDS)]
    segments = [dict(recording_id="r", channel=int(s.channel), speaker_id=s.speaker_id, start=float(s.start),
                     end=float(s.end), confidence=1.0) for s in truth.itertuples()]
    (folder / "diarize").mkdir()
    (folder / "diarize" / "segments.json").write_text(json.dumps(segments))
    rec = {"recording_id": "r", "num_channels": analysis.shape[1], "duration": len(analysis) / RATE,
           "channels": [], "source_paths": [], "source_sha256": [], "sha256": "x", "format": "",
           "sample_rate": RATE, "language": "zh", "scenario": None, "environment": None, "device": None,
           "warnings": []}
    item = WorkItem(input={"recording_id": "r"}, recording=rec,
                    outputs={"decrosstalk": str(folder / "decrosstalk"), "diarize": str(folder / "diarize")})
    return item, analysis, segments


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
