"""The leak canceller removes a synthetic leak and leaves a real, leak-free call alone."""
import numpy as np
import pytest
import soundfile as sf

from duplexcorpus.config import Workflow
from duplexcorpus.stages.base import WorkItem
from duplexcorpus.stages.decrosstalk import DecrosstalkStage
from tests.conftest import realdata


def _item(tmp_path, audio, sr):
    tracks = tmp_path / "tracks"
    tracks.mkdir()
    sf.write(tracks / "audio.flac", audio.T, sr, subtype="PCM_24")
    rec = {"recording_id": "r", "num_channels": audio.shape[0], "duration": audio.shape[1] / sr, "channels": [],
           "source_paths": [], "source_sha256": [], "sha256": "x", "format": "", "sample_rate": sr,
           "language": None, "scenario": None, "environment": None, "device": None, "warnings": []}
    item = WorkItem(input={}, recording=rec, outputs={"tracks": str(tracks)})
    out = tmp_path / "out"
    out.mkdir()
    return item, out


def _speechlike(rng, n, sr):
    env = (np.sin(2 * np.pi * 0.7 * np.arange(n) / sr) > 0).astype(np.float32)
    return env * rng.standard_normal(n).astype(np.float32) * 0.1


def test_synthetic_leak_is_cancelled(tmp_path):
    sr, n, rng = 24000, 24000 * 12, np.random.default_rng(0)
    a = _speechlike(rng, n, sr)
    b = np.roll(_speechlike(rng, n, sr), sr)  # talks while a is silent
    leak = 10 ** (-22 / 20) * np.concatenate([np.zeros(96, np.float32), a[:-96]])  # -22 dB, 4 ms late
    audio = np.stack([a, b + leak]) + 1e-4 * rng.standard_normal((2, n)).astype(np.float32)
    item, out = _item(tmp_path, audio, sr)
    DecrosstalkStage(Workflow()).process(item, out)
    cleaned, _ = sf.read(out / "analysis.flac", always_2d=True)
    only_a = (np.abs(a) > 0) & (np.abs(b) == 0)
    at_24k = (np.arange(len(cleaned)) * 1.5).astype(int)  # 16 kHz analysis index -> 24 kHz index
    only_a = only_a[at_24k]
    before = 10 * np.log10(np.mean(leak[at_24k][only_a] ** 2))
    after = 10 * np.log10(np.mean(cleaned[only_a, 1] ** 2))
    assert before - after > 15, (before, after)


def test_leak_free_real_call_passes_through(tmp_path):
    """SpokenWOZ MUL1011: real two-channel call, cross-channel correlation 0.001."""
    audio, sr = sf.read(realdata("en_2ch_tel_spokenwoz_MUL1011", "MUL1011.wav"), dtype="float32", always_2d=True)
    audio = audio[: sr * 60].T
    import soxr

    audio = soxr.resample(audio.T, sr, 24000).T.astype(np.float32)
    item, out = _item(tmp_path, audio, 24000)
    DecrosstalkStage(Workflow()).process(item, out)
    cleaned, _ = sf.read(out / "analysis.flac", always_2d=True, dtype="float32")
    original = soxr.resample(audio.T, 24000, 16000)[: len(cleaned)]
    change_db = 10 * np.log10(np.mean((cleaned - original) ** 2, axis=0) / np.mean(original**2, axis=0))
    assert (change_db < -30).all(), change_db


@pytest.mark.slow
def test_leakpath_method_cancels_a_long_delayed_leak_and_records_the_path(tmp_path):
    """decrosstalk.method=leakpath: a 120 ms leak (far beyond the FIR's 25 ms search) is found,
    recorded per pair in leaks.json and cancelled in the analysis signal."""
    import dataclasses

    from duplexcorpus.config import load_workflow
    from duplexcorpus.inputs import discover
    from duplexcorpus.runner import run_stage
    from duplexcorpus.stages.base import WorkItem
    from duplexcorpus.stages.decrosstalk import DecrosstalkStage
    from duplexcorpus.stages.ingest import IngestStage
    from duplexcorpus.stages.tracks import TracksStage
    from duplexcorpus.storage import StageCache
    from tests.test_leakpath import synth_pair

    pair = synth_pair(seed=3, seconds=90.0, delay_ms=120.0, level_db=-15.0, gain_db=0.0)
    x = np.stack(pair["x"], axis=1)
    scale = 1.0 / (np.abs(x).max() * 1.1)
    x = x * scale
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "call.wav", x, pair["rate"], subtype="FLOAT")
    wf = load_workflow(None, {"decrosstalk.method": "leakpath"})
    items = [WorkItem(input=dataclasses.asdict(i)) for i in discover(tmp_path / "in", wf.input).inputs]
    cache = StageCache(tmp_path / "cache")
    for stage in (IngestStage(wf), TracksStage(wf), DecrosstalkStage(wf)):
        items = run_stage(stage, items, cache)
    (item,) = items
    assert item.quarantine is None, item.quarantine
    paths = {(r["channel"], r["source_channel"]): r for r in item.read(DecrosstalkStage.LEAKS)}
    assert paths[(0, 1)]["applied"] and abs(paths[(0, 1)]["delay_s"] - 0.120) <= 0.002, paths[(0, 1)]
    cleaned, sr = sf.read(item.path(DecrosstalkStage.ANALYSIS), dtype="float32")
    only1 = (pair["mask"][1] > 0.99) & (pair["mask"][0] < 0.01)  # channel 0 holds only the leak here
    leak = pair["leak"][(0, 1)][only1] * scale
    noise = (pair["x"][0] - pair["own"][0] - pair["leak"][(0, 1)])[only1] * scale
    after = np.sum(cleaned[only1[: len(cleaned)], 0].astype(np.float64) ** 2)
    residual_leak = max(after - np.sum(noise ** 2), 1e-12)  # what is left above the recording's own noise
    assert 10 * np.log10(np.sum(leak ** 2) / residual_leak) >= 12.0
