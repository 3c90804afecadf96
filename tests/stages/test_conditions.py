"""The conditions stage: its declared output, clipping from the source file, and the real stages
(ingest -> ... -> ipus -> conditions, local executor) on bundled sample calls with a known noise level."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf

from duplexcorpus import contract
from duplexcorpus.config import Workflow
from duplexcorpus.inputs import discover
from duplexcorpus.records import Recording, Segment, record_dicts
from duplexcorpus.runner import execute_local
from duplexcorpus.stages import INGEST, PROCESSING
from duplexcorpus.stages.base import WorkItem
from duplexcorpus.stages.conditions import ConditionsStage
from duplexcorpus.storage import StageCache
from tests.conftest import SAMPLES

RATE = 24000


def _item(tmp_path, audio: np.ndarray, source: np.ndarray, spans: list[list[tuple[float, float]]], environment=None):
    """A recording whose tracks and ipus outputs are written by hand."""
    tracks, ipus = tmp_path / "tracks", tmp_path / "ipus"
    tracks.mkdir()
    ipus.mkdir()
    sf.write(tracks / "audio.flac", audio.T, RATE, subtype="PCM_16")
    sf.write(tmp_path / "source.wav", source.T, 8000, subtype="PCM_16")
    segments = [Segment("r", c, f"s{c}", s, e, 0.9) for c, chans in enumerate(spans) for s, e in chans]
    (ipus / "segments.json").write_text(json.dumps(record_dicts(segments)))
    channels = [dict(channel=c, speaker_id=f"s{c}", source_path=str(tmp_path / "source.wav"), source_channel=c)
                for c in range(audio.shape[0])]
    rec = dict(recording_id="r", source_paths=[str(tmp_path / "source.wav")], source_sha256=["x"], sha256="x",
               format="WAV/PCM_16", sample_rate=8000, num_channels=audio.shape[0], duration=audio.shape[1] / RATE,
               channels=channels, language=None, scenario=None, environment=environment, device=None, warnings=[])
    return WorkItem(input={"recording_id": "r"}, recording=rec, outputs={"tracks": str(tracks), "ipus": str(ipus)})


def _bursts(rng, seconds: float, spans, level: float) -> np.ndarray:
    """Noise-like 'speech' (band-limited to 3 kHz) inside the spans, nothing outside."""
    import scipy.signal

    x = np.zeros(int(seconds * RATE))
    sos = scipy.signal.butter(10, 3000, fs=RATE, output="sos")
    for s, e in spans:
        x[int(s * RATE): int(e * RATE)] = level * rng.standard_normal(int(e * RATE) - int(s * RATE))
    return scipy.signal.sosfilt(sos, x)


def test_stage_writes_its_output_and_every_channel_lands_in_the_recordings_row(tmp_path):
    rng = np.random.default_rng(0)
    spans = [[(1.0, 3.0), (6.0, 8.0)], [(3.5, 5.5)]]
    speech = np.stack([_bursts(rng, 10, s, 0.1) for s in spans])
    p_speech = np.mean(speech[0, RATE: 3 * RATE] ** 2)
    noise = rng.standard_normal(speech.shape) * np.sqrt(p_speech / 100)  # 20 dB below the bursts' power
    source = np.zeros((2, 8000 * 10))
    source[0, :800] = 1.0  # 800 samples at full scale on source channel 0
    item = _item(tmp_path, speech + noise, source, spans)
    out = tmp_path / "out"
    out.mkdir()
    ConditionsStage(Workflow()).process(item, out)
    ConditionsStage.check_outputs(out)
    cond = ConditionsStage.CONDITIONS.read(out / ConditionsStage.CONDITIONS.file)
    assert [abs(c.snr_db - 20) <= 3 for c in cond.channels] == [True, True], cond
    assert cond.channels[0].clipped_share == pytest.approx(800 / 80000) and cond.channels[1].clipped_share == 0.0
    assert cond.environment_suggested == "moderate_noise" and cond.device_suggested is None  # noise is broadband
    rec = Recording.from_dict(item.recording).with_conditions(cond)
    table = contract.to_table("recordings", [rec.row("train")])
    channels = table.column("channels")[0].as_py()
    assert channels[0]["snr_db"] == cond.channels[0].snr_db and channels[1]["bandwidth"] == cond.channels[1].bandwidth
    assert table.column("environment_suggested")[0].as_py() == "moderate_noise"


def test_metadata_environment_is_never_overwritten_by_a_suggestion(tmp_path):
    rng = np.random.default_rng(1)
    spans = [[(1.0, 3.0)]]
    audio = _bursts(rng, 5, spans[0], 0.1)[None] + 1e-3 * rng.standard_normal((1, 5 * RATE))
    item = _item(tmp_path, audio, np.zeros((1, 8000 * 5)), spans, environment="car")
    out = tmp_path / "out"
    out.mkdir()
    ConditionsStage(Workflow()).process(item, out)
    cond = ConditionsStage.CONDITIONS.read(out / ConditionsStage.CONDITIONS.file)
    assert cond.environment_suggested is None and cond.channels[0].snr_db is not None
    assert Recording.from_dict(item.recording).with_conditions(cond).environment == "car"


@pytest.mark.slow  # silero VAD over three calls: about a minute on 2 cores
def test_real_stages_measure_the_sample_calls(tmp_path):
    """Bundled samples (data_samples/make_samples.py): brown noise with hum at a known dBFS per call,
    one call delivered through the telephone band at 8 kHz. No metadata: the stage suggests."""
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in ("en_support_clean.flac", "en_chat_crosstalk.flac", "en_support_telephone.wav"):
        (audio / name).symlink_to(SAMPLES / "audio" / name)
    workflow = Workflow()
    items = [WorkItem(input=dataclasses.asdict(i)) for i in discover(audio, workflow.input, None).inputs]
    cache = StageCache(tmp_path / "cache")
    execute_local([INGEST], items, workflow, cache)
    upto = PROCESSING[: PROCESSING.index(ConditionsStage) + 1]
    execute_local(upto, items, workflow, cache)
    assert not [i.quarantine for i in items if i.quarantine]
    got = {i.recording_id: i.read(ConditionsStage.CONDITIONS) for i in items}
    for rid, noise_dbfs in (("en_support_clean", -62.0), ("en_chat_crosstalk", -45.0)):
        for ch in got[rid].channels:
            assert abs(ch.noise_level_dbfs - noise_dbfs) <= 2.0, (rid, ch)
            assert ch.bandwidth == "wideband" and ch.snr_db is not None and ch.clipped_share == 0.0
    assert all(ch.bandwidth == "telephone" for ch in got["en_support_telephone"].channels)
    assert got["en_support_telephone"].device_suggested == "phone"
    assert got["en_support_clean"].device_suggested is None
    # -62 dBFS of noise under speech at about -25 dBFS: quiet; -45 dBFS: not
    assert got["en_support_clean"].environment_suggested == "quiet"
    assert got["en_chat_crosstalk"].environment_suggested != "quiet"
