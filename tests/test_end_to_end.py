"""The main job on data_samples, on a real local Ray: accuracy against the truth, quarantine,
splits, and the shards read back by webdataset + torch DataLoader and by HF datasets."""
import io
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from duplexcorpus.evaluate import score_run
from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def report(sample_run):
    return score_run(sample_run.out / "tables", SAMPLES / "truth")


def test_ipus_meet_the_bar_on_every_file(report):
    assert report["ipu"]["f1"] >= 0.95 and report["ipu"]["median_boundary_error_ms"] <= 40
    for name in ("en_chat_crosstalk", "en_support_telephone", "en_planning_mismatch", "en_meeting_3ch"):
        row = report[f"ipu:{name}"]
        assert row["f1"] >= 0.95 and row["median_boundary_error_ms"] <= 40, (name, row)


@pytest.mark.parametrize("event,bar", [("overlap", 0.9), ("gap", 0.9), ("pause", 0.9),
                                       ("backchannel", 0.8), ("interruption_successful", 0.8)])
def test_events_meet_the_bar(report, event, bar):
    assert report[event]["f1"] >= bar, report[event]


def test_every_broken_input_quarantined_with_its_reason(sample_run):
    quarantine = pd.read_parquet(sample_run.out / "tables" / "quarantine.parquet")
    expected = json.loads((SAMPLES / "truth" / "quarantine_expected.json").read_text())
    got = {row.recording_id: row.reason_code for row in quarantine.itertuples()}
    assert got == {e["input"].rsplit(".", 1)[0]: e["reason_code"] for e in expected}
    recordings = pd.read_parquet(sample_run.out / "tables" / "recordings.parquet")
    assert len(recordings) == 8  # the rest of the run is unaffected


def test_splits_are_speaker_disjoint(sample_run):
    recordings = pd.read_parquet(sample_run.out / "tables" / "recordings.parquet")
    speakers = {}
    for row in recordings.itertuples():
        for ch in row.channels:
            speakers.setdefault(ch["speaker_id"], set()).add(row.split)
    assert all(len(s) == 1 for s in speakers.values())
    assert set(recordings.split) == {"train", "valid", "test"}


def test_shards_stream_into_a_torch_dataloader(sample_run):
    import torch
    import webdataset as wds

    def decode(sample):
        audio, sr = sf.read(io.BytesIO(sample["flac"]), dtype="float32", always_2d=True)
        return torch.from_numpy(audio.T.copy()), torch.from_numpy(sample["labels.npy"]), sample["json"]

    urls = sorted(str(p) for p in (sample_run.out / "shards").glob("*.tar"))
    dataset = wds.WebDataset(urls, shardshuffle=False).decode().map(decode)
    loader = wds.WebLoader(dataset, batch_size=None, num_workers=1)
    seen = 0
    for audio, labels, meta in loader:
        assert audio.shape[0] == meta["num_channels"] == labels.shape[0]
        assert abs(audio.shape[1] / meta["sample_rate"] - (meta["window"]["end"] - meta["window"]["start"])) < 0.05
        speech = labels[:, 0].numpy().astype(bool)
        assert speech.any() and len(meta["segments"]) > 0
        seen += 1
    assert seen == 8


def test_shards_load_with_hf_datasets(sample_run):
    import datasets

    features = datasets.Features({"flac": datasets.Value("binary"), "json": {"recording_id": datasets.Value("string")},
                                  "labels.npy": datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("uint8")))), "__key__": datasets.Value("string"),
                                  "__url__": datasets.Value("string")})
    files = sorted(str(p) for p in (sample_run.out / "shards").glob("train-*.tar"))
    ds = datasets.load_dataset("webdataset", data_files={"train": files}, split="train", features=features)
    row = ds[0]
    audio, _ = sf.read(io.BytesIO(row["flac"]), always_2d=True)
    labels = np.asarray(row["labels.npy"])
    assert audio.shape[1] == labels.shape[0] and row["json"]["recording_id"]
