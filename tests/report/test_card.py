"""The dataset card OUT/README.md: a Hugging Face card whose header `datasets` reads, and through
which `load_dataset(OUT)` — exactly what a user types — loads the WebDataset shards."""
from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import soundfile as sf
import yaml

from duplexcorpus.report import write_report
from duplexcorpus.report.card import size_category

datasets = pytest.importorskip("datasets")

EXPECTED = datasets.Features({
    "__key__": datasets.Value("string"), "flac": datasets.Value("binary"), "json": datasets.Json(),
    "labels.npy": datasets.List(datasets.List(datasets.List(datasets.Value("uint8")))),
    "text.npy": datasets.List(datasets.List(datasets.Value("int32")))})


def _header(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


@pytest.fixture()
def hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def test_card_header_is_a_hub_card_that_datasets_reads(synthetic_run, tmp_path):
    from huggingface_hub import DatasetCard

    out = tmp_path / "corpus"
    shutil.copytree(synthetic_run, out)
    write_report(out)
    text = (out / "README.md").read_text()
    card = DatasetCard(text)  # the Hub's own parser
    head = card.data.to_dict()
    assert head["license"] == "other" and head["license_name"]
    assert head["language"] == ["en", "zh"]
    assert head["task_categories"] == ["automatic-speech-recognition", "voice-activity-detection"]
    assert head["size_categories"] == ["n<1K"]
    assert [f["split"] for f in head["configs"][0]["data_files"]] == ["train", "validation", "test"]
    from datasets.info import DatasetInfosDict

    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    assert infos["default"].features == EXPECTED
    # the statistics, versions and limitations a reader needs are in the body
    for needle in ("workflow hash", "sample JSON schema", "recordings 1.", "Known limitations", "pipeline: duplexcorpus"):
        assert needle in text


def test_license_given_on_the_command_line(synthetic_run, tmp_path):
    from click.testing import CliRunner

    from duplexcorpus.cli import main

    out = tmp_path / "corpus"
    shutil.copytree(synthetic_run, out)
    result = CliRunner().invoke(main, ["report", str(out), "--license", "cc-by-4.0", "--recording-pages", "1"])
    assert result.exit_code == 0, result.output
    head = _header((out / "README.md").read_text())
    assert head["license"] == "cc-by-4.0" and "license_name" not in head
    assert (out / "report" / "index.html").exists()


def test_load_dataset_by_folder_reads_the_shards_through_the_card(synthetic_run, tmp_path, hf_cache):
    out = tmp_path / "corpus"
    shutil.copytree(synthetic_run, out)
    write_report(out)
    ds = datasets.load_dataset(str(out))  # what the card tells a user to type
    import json

    index = json.loads((out / "shards" / "index.json").read_text())
    expected = {{"valid": "validation"}.get(v["split"], v["split"]): len(v["samples"]) for v in index.values()}
    assert {k: len(v) for k, v in ds.items()} == expected
    row = ds["train"][0]
    assert ds["train"].features == EXPECTED
    audio, sr = sf.read(io.BytesIO(row["flac"]), always_2d=True)
    assert sr == 24000 and audio.shape[1] == 2
    assert row["json"]["recording_id"] in row["__key__"] and row["json"]["words"][0]["word"] == "yeah"
    assert np.asarray(row["labels.npy"]).shape == (2, 5, 3)


def test_load_dataset_on_the_sample_run(sample_run, tmp_path, hf_cache):
    out = tmp_path / "samples"
    shutil.copytree(sample_run.out, out)
    write_report(out)
    ds = datasets.load_dataset(str(out))
    assert set(ds) == {"train", "validation", "test"}
    row = ds["train"][0]
    audio, sr = sf.read(io.BytesIO(row["flac"]), always_2d=True)
    labels = np.asarray(row["labels.npy"], dtype=np.uint8)
    assert labels.shape[0] == audio.shape[1] and abs(labels.shape[2] / 12.5 - len(audio) / sr) < 0.2
    words = row["json"]["words"]
    text = np.asarray(row["text.npy"])
    assert words and text.max() <= len(words)  # frames point into the sample's words


@pytest.mark.parametrize("n,name", [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (123_456, "100K<n<1M")])
def test_size_category(n, name):
    assert size_category(n) == name
