"""Tracks: a call delivered as one file per phone is put on the first phone's clock (offset and
drift estimated from the leak each phone picks up), or kept as recorded and flagged."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import soxr

from duplexcorpus.config import Workflow
from duplexcorpus.inputs import discover
from duplexcorpus.runner import run_stage
from duplexcorpus.stages.ingest import IngestStage
from duplexcorpus.stages.tracks import TracksStage
from duplexcorpus.stages.base import WorkItem
from duplexcorpus.storage import StageCache
from tests.conftest import SAMPLES

RATE = 16000


def _tracks(folder, tmp_path) -> WorkItem:
    wf = Workflow()
    items = [WorkItem(input=dataclasses.asdict(i)) for i in discover(folder, wf.input).inputs]
    cache = StageCache(tmp_path / "cache")
    for stage in (IngestStage(wf), TracksStage(wf)):
        items = run_stage(stage, items, cache)
    (item,) = items
    assert item.quarantine is None, item.quarantine
    return item


def _call(reps: int):
    a, sr = sf.read(SAMPLES / "audio" / "en_chat_two_files.ch0.flac", dtype="float32")
    b, _ = sf.read(SAMPLES / "audio" / "en_chat_two_files.ch1.flac", dtype="float32")
    assert sr == RATE
    return np.tile(a, reps), np.tile(b, reps)


@pytest.mark.slow
def test_second_phone_started_late_with_a_fast_clock_is_synced(tmp_path):
    a, b = _call(4)  # a 2-minute two-phone call with the samples' leak
    lead_s, drift_ppm = 1.7, 120.0
    # the second phone's clock runs fast (more samples per second of call) and its recorder was
    # started 1.7 s before the first one: by the convention of duplexcorpus.sync, offset -1.7 s
    fast = soxr.resample(b, RATE, RATE * (1 + drift_ppm * 1e-6))
    late = np.concatenate([np.zeros(int(lead_s * RATE * (1 + drift_ppm * 1e-6)), np.float32), fast])[: len(a)]
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "call.ch0.flac", a, RATE)
    sf.write(tmp_path / "in" / "call.ch1.flac", late, RATE)
    item = _tracks(tmp_path / "in", tmp_path)
    info = item.read(TracksStage.INFO)
    ch1 = info["sync"][1]
    assert ch1["sync_method"] == "gcc-phat-two-way", info
    assert abs(ch1["offset_s"] - (-lead_s)) <= 0.005 and abs(ch1["drift_ppm"] - drift_ppm) <= 5.0, ch1
    out, sr = sf.read(item.path(TracksStage.AUDIO), dtype="float32")
    ref = soxr.resample(b, RATE, sr)
    for t in (20.0, len(a) / RATE - 10.0):  # near the start and near the end of the call
        k = int(t * sr)
        piece = ref[k: k + 2 * sr]
        seg = out[k - sr // 10: k + 2 * sr + sr // 10, 1]
        corr = np.correlate(seg, piece, mode="valid")
        lag_ms = (int(np.argmax(corr)) - sr // 10) / sr * 1000
        assert abs(lag_ms) <= 5.0, f"at {t:.0f} s channel 1 is {lag_ms:+.1f} ms off"
    assert info["sync"][0]["sync_method"] == "reference"


@pytest.mark.slow
def test_files_with_nothing_shared_are_kept_as_recorded_and_flagged(tmp_path):
    a, _ = _call(2)
    noise = np.random.default_rng(0).normal(0, 0.05, len(a)).astype(np.float32)
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "call.ch0.flac", a, RATE)
    sf.write(tmp_path / "in" / "call.ch1.flac", noise, RATE)
    item = _tracks(tmp_path / "in", tmp_path)
    info = item.read(TracksStage.INFO)
    assert info["sync"][1]["sync_method"] == "none" and info["sync"][1]["offset_s"] == 0.0
    assert any(w.startswith("sync_unconfirmed: call.ch1.flac") for w in info["warnings"])
    rec = item.rec().with_tracks_info(info)
    assert rec.channels[1].sync_method == "none" and any("sync_unconfirmed" in w for w in rec.warnings)


def test_one_file_recordings_have_nothing_to_sync(tmp_path):
    stage = TracksStage(Workflow())
    assert stage.sync([("x.flac", 0), ("x.flac", 1)], 10.0) == ([], {}, [])
