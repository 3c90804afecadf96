"""Validate a run's outputs against the data contract: tables, every shard sample, and its members."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import webdataset as wds

from duplexcorpus import contract
from duplexcorpus.runfolder import RunFolder


def validate_output(out: Path) -> list[str]:
    problems = []
    for table in contract.TABLES:
        try:
            RunFolder(out).table(table)
        except (contract.ContractError, OSError) as err:
            problems.append(f"{table}: {err}")
    for shard in sorted((out / "shards").glob("*.tar")):
        for sample in wds.WebDataset(str(shard), shardshuffle=False):
            key = sample["__key__"]
            try:
                meta = json.loads(sample["json"])
                contract.validate_sample(meta)
                audio, sr = sf.read(io.BytesIO(sample["flac"]), always_2d=True)
                labels = np.load(io.BytesIO(sample["labels.npy"]))
                if sr != meta["sample_rate"] or audio.shape[1] != meta["num_channels"]:
                    problems.append(f"{shard.name}/{key}: audio {sr} Hz x {audio.shape[1]} ch disagrees with its JSON")
                if list(labels.shape) != meta["frame_labels"]["shape"]:
                    problems.append(f"{shard.name}/{key}: labels shape {labels.shape} != {meta['frame_labels']['shape']}")
            except (contract.ContractError, KeyError, ValueError) as err:
                problems.append(f"{shard.name}/{key}: {err}")
    return problems
