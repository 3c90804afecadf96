"""The dataset card: OUT/README.md in the Hugging Face dataset-card format.

Its YAML header makes the run folder loadable as it is: `configs` points each split at its WebDataset
shards, and `dataset_info.features` tells `datasets` the column types, which it then uses instead of
guessing. Without them the WebDataset builder would type `KEY.flac` as `Audio()` (whose decoder needs
torchcodec's CUDA build) and infer the sample JSON's struct from the first five samples, which later
samples with other keys break. With them:

    from datasets import load_dataset
    ds = load_dataset("OUT")                 # train / validation / test; audio stays FLAC bytes

The features are written here as plain YAML (the same text `datasets.DatasetInfo._to_yaml_dict`
writes), so the pipeline itself does not import `datasets`; tests/report/test_card.py checks that
`datasets` reads them back as the intended Features and loads the corpus through the card.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from duplexcorpus import contract
from duplexcorpus.report.collect import Corpus, hours_by
from duplexcorpus.report.pages import TABLES, pipeline_version, schema_versions, workflow_hash

CARD = "README.md"
HF_SPLIT = {"train": "train", "valid": "validation", "test": "test"}  # shard prefix -> HF split name
FEATURES = [
    {"name": "__key__", "dtype": "string"},
    {"name": "flac", "dtype": "binary"},  # all channels, 24 kHz FLAC bytes (decode with soundfile)
    {"name": "json", "dtype": "json"},  # the sample JSON (schemas/v1/sample.schema.json)
    {"name": "labels.npy", "list": {"list": {"list": "uint8"}}},  # [channels, labels, frames] at 12.5 Hz
    {"name": "text.npy", "list": {"list": "int32"}},  # [channels, frames]: 1 + index into json.words, 0 = none
]
TASKS = ["automatic-speech-recognition", "voice-activity-detection"]
TAGS = ["full-duplex", "turn-taking", "conversational-speech", "spoken-dialogue", "webdataset", "duplexcorpus"]


def size_category(samples: int) -> str:
    """The Hub's size_categories bucket for a number of samples."""
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if samples < bound:
            return name
    return "10M<n<100M"


def languages(corpus: Corpus) -> list[str]:
    """ISO 639-1 codes in the recordings' and words' language fields ('en+zh' counts both)."""
    found = set()
    for value in list(corpus.recordings.language) + list(corpus.words.language.dropna().unique()):
        for code in str(value).split("+"):
            if re.fullmatch(r"[a-z]{2,3}", code):
                found.add(code)
    return sorted(found)


def shard_index(out: Path) -> dict:
    path = out / "shards" / "index.json"
    return json.loads(path.read_text()) if path.exists() else {}


def header(corpus: Corpus, license: str | None) -> dict:
    index = shard_index(corpus.out)
    splits = sorted({info["split"] for info in index.values()}, key=list(HF_SPLIT).index)
    samples = sum(len(info["samples"]) for info in index.values())
    data = {
        "license": license or "other",
        "pretty_name": corpus.out.name,
        "language": languages(corpus),
        "task_categories": TASKS,
        "tags": TAGS,
        "size_categories": [size_category(samples)],
        "configs": [{"config_name": "default", "default": True,
                     "data_files": [{"split": HF_SPLIT[s], "path": f"shards/{s}-*.tar"} for s in splits]}],
        "dataset_info": {"config_name": "default", "features": FEATURES},
    }
    if not splits:  # nothing was accepted: no shards to point at
        del data["configs"]
    if not license:  # the Hub asks for a licence name with `other`
        data["license_name"] = "unspecified"
    return data


def _table(rows: list[tuple], head: tuple) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def body(corpus: Corpus, license: str | None) -> str:
    s = corpus.stats
    recs = corpus.recordings
    index = shard_index(corpus.out)
    per_split = {}
    for info in index.values():
        n, sec = per_split.get(info["split"], (0, 0.0))
        per_split[info["split"]] = (n + len(info["samples"]), sec + sum(x["duration"] for x in info["samples"]))
    versions = schema_versions(corpus.out)
    words = s.get("words", {})
    asr = s.get("asr") or {}
    speakers = corpus.speakers.groupby("split").speaker_id.nunique()
    unknown_meta = int((corpus.speakers.gender == "unknown").sum())
    lines = [
        f"# {corpus.out.name}",
        "",
        "A full-duplex conversational speech corpus made by the duplexcorpus pipeline from "
        f"{len(recs)} recordings ({s.get('hours', 0):.2f} hours): per-channel speech activity (IPUs), words with "
        "times, turn-taking events (pauses, gaps, overlaps, backchannels, interruptions, floor transfers) and "
        "frame labels, packed as WebDataset shards with one sample per recording window.",
        "",
        "## Loading",
        "",
        "```python",
        "import io, soundfile as sf",
        "from datasets import load_dataset",
        "",
        f'ds = load_dataset("path/to/{corpus.out.name}")   # the folder holding this README.md',
        "row = ds[\"train\"][0]",
        "audio, sr = sf.read(io.BytesIO(row[\"flac\"]), always_2d=True)   # [frames, channels]",
        "row[\"json\"][\"words\"][:3], len(row[\"labels.npy\"])",
        "```",
        "",
        "The YAML header above declares the features, so `datasets` keeps the audio as FLAC bytes (`flac`, "
        "binary), the sample metadata as JSON (`json`), the frame labels `labels.npy` "
        "(uint8 `[channels, labels, frames]` at 12.5 Hz: speech, floor, backchannel, interruption, overlap) and "
        "the word frames `text.npy` (int32 `[channels, frames]`, 1 + index into `json.words`, 0 = none). "
        "`webdataset` reads the same shards directly (`shards/{train,valid,test}-NNNNNN.tar`). "
        "Checked with `datasets` 5.0.1 (the `json` column uses its `Json` feature type).",
        "",
        "## Statistics",
        "",
        _table([(HF_SPLIT.get(k, k), n, f"{sec / 3600:.3f}", int(speakers.get(k, 0)))
                for k, (n, sec) in sorted(per_split.items(), key=lambda kv: list(HF_SPLIT).index(kv[0]))],
               ("split", "samples", "hours", "speakers")),
        "",
        _table([(k, v) for k, v in s.get("hours_by_split_language", {}).items()], ("split/language", "hours")),
        "",
        _table([(k, v) for k, v in hours_by(recs, "scenario").items()], ("scenario", "hours")),
        "",
        f"- speech ratio {s.get('speech_ratio', 0):.3f}, overlap ratio {s.get('overlap_ratio', 0):.3f}",
        "- events per minute: " + ", ".join(f"{k} {v}" for k, v in s.get("per_minute", {}).items()),
        f"- IPU duration median {s.get('ipu_duration_s', {}).get('median', '–')} s; gap median "
        f"{s.get('gap_s', {}).get('median', '–')} s; floor-transfer offset median "
        f"{s.get('floor_transfer_offset_s', {}).get('median', '–')} s",
        f"- words: {words.get('count', 0)} (" + ", ".join(f"{k} {v}" for k, v in words.get("by_language", {}).items())
        + f"), mean score {words.get('mean_score')}"
        + (f"; {100 * asr.get('ipus_with_words', 0):.1f} % of IPUs and {100 * asr.get('speech_seconds_with_words', 0):.1f} % "
           "of speech seconds have words" if asr else ""),
        "- quarantined inputs: " + (", ".join(f"{k} {v}" for k, v in s.get("quarantined", {}).items()) or "none"),
        "",
        "Pictures of all of this, and a page per recording: `report/index.html` (opens from disk).",
        "",
        "## Versions",
        "",
        f"- pipeline: duplexcorpus {pipeline_version()}",
        f"- workflow hash: `{workflow_hash(corpus.spec)}` (sha256 of run.json's workflow without the "
        "execution-only `ray` section, canonical JSON)",
        f"- sample JSON schema: {contract.SCHEMA_VERSION}; tables: "
        + ", ".join(f"{t} {versions[t]}" for t in TABLES),
        "- tables (`tables/*.parquet`) and schemas (`schemas/v1/`) describe every field",
        "",
        "## Known limitations",
        "",
        "- Speech activity, words and events are automatic (silero VAD, Whisper, rule-based turn-taking) unless a "
        "segment's `source` is `human`; "
        + (f"{corpus.review.merged} windows were reviewed by people." if corpus.review else "no human review has run yet."),
        "- Words come from Whisper with cross-attention alignment; word times are approximate (tens of ms) and "
        "Mandarin is one row per character. Low-scoring words are kept and marked by their `score`.",
        "- Backchannels and interruptions follow fixed duration/overlap rules (see the pipeline's event "
        "definitions); laughter and other non-verbal events exist only where a stage or a reviewer added them.",
        f"- Speakers found by diarization on shared channels carry no gender/age/accent ({unknown_meta} speaker "
        "entries without metadata)." if unknown_meta else "- Every speaker has the metadata given with the input.",
        "- Splits are speaker-disjoint; a small corpus may leave a split with few speakers.",
        "",
        "## License",
        "",
        (f"`{license}`." if license else
         "The licence of the source recordings is not known to the pipeline, so the header says `other`. "
         "Replace `license` (and drop `license_name`) with the terms the recordings were collected under "
         "before sharing, e.g. `duplexcorpus report OUT --license cc-by-4.0`."),
    ]
    return "\n".join(lines) + "\n"


def card_text(corpus: Corpus, license: str | None = None) -> str:
    head = yaml.safe_dump(header(corpus, license), sort_keys=False, allow_unicode=True)
    return f"---\n{head}---\n\n{body(corpus, license)}"


def write_card(corpus: Corpus, license: str | None = None) -> Path:
    path = corpus.out / CARD
    path.write_text(card_text(corpus, license), encoding="utf-8")
    return path
