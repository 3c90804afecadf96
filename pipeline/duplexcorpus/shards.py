"""Pack the per-recording samples into WebDataset tars, one set per split.

Deterministic (sorted keys, fixed mtime), atomic per tar (temp + rename), stale tars of an earlier
run removed, and an index.json listing every shard's keys and durations for loaders.
"""
from __future__ import annotations

import json
from pathlib import Path

import webdataset as wds

from duplexcorpus import contract
from duplexcorpus.stages.base import WorkItem
from duplexcorpus.stages.samples import SamplesStage, window_file
from duplexcorpus.storage import atomic_path, write_json

FIXED_MTIME = 1_700_000_000.0  # reproducible tar headers


def pack_shards(root: Path, items: list[WorkItem], splits: dict[str, str], per_shard: int) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    samples: dict[str, list[tuple[str, Path, int]]] = {}
    for item in sorted(items, key=lambda i: i.recording_id):
        base = item.path(SamplesStage.WINDOWS).parent
        keys = item.read(SamplesStage.WINDOWS)["keys"]
        for k, key in enumerate(keys):
            samples.setdefault(splits[item.recording_id], []).append((key, base, k))
    written, index = [], {}
    for split in sorted(samples):
        entries = samples[split]
        for n, start in enumerate(range(0, len(entries), per_shard)):
            name = f"{split}-{n:06d}.tar"
            members = []
            with atomic_path(root / name) as tmp:
                with wds.TarWriter(str(tmp), mtime=FIXED_MTIME) as sink:
                    for key, base, k in entries[start: start + per_shard]:
                        sample = json.loads((base / window_file(SamplesStage.SAMPLE, k)).read_text())
                        sample["split"] = split
                        contract.validate_sample(sample)
                        record = {
                            "__key__": key,
                            "flac": (base / window_file(SamplesStage.AUDIO, k)).read_bytes(),
                            "labels.npy": (base / window_file(SamplesStage.LABELS, k)).read_bytes(),
                            "json": json.dumps(sample, ensure_ascii=False, sort_keys=True).encode(),
                        }
                        for member, output in (("text.npy", SamplesStage.TEXT),
                                               ("speakers.npy", SamplesStage.SPEAKER_LABELS)):
                            path = base / window_file(output, k)
                            if path.exists():
                                record[member] = path.read_bytes()
                        sink.write(record)
                        members.append({"key": key, "duration": round(sample["window"]["end"] - sample["window"]["start"], 3)})
            written.append(name)
            index[name] = {"split": split, "samples": members}
    for stale in root.glob("*.tar"):
        if stale.name not in written:
            stale.unlink()
    write_json(root / "index.json", index)
    return written
