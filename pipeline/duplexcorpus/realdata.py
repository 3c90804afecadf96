"""The ../shared/realdata items that carry a transcript, as a small ASR evaluation set.

Each item: the audio path, its language, the reference text and what kind of reference it is
(human or silver = another recogniser's output). The audio is read where it lies (licences differ:
never copied into the project).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RealItem:
    name: str
    audio: Path
    language: str
    reference: str
    kind: str  # human | silver


def kaldi_text(path: Path) -> dict[str, str]:
    """A Kaldi `text` file: utterance key -> transcript."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, text = line.strip().partition(" ")
        if key:
            out[key] = text.strip()
    return out


# single read utterances with a Kaldi `text` file: (folder, utterance key, language, item name)
_KALDI_READ = (
    ("en_read_librispeech_1995-1837-0001", "1995-1837-0001", "en", "librispeech_1995-1837-0001"),
    ("zh_read_aishell1_BAC009S0724W0121", "BAC009S0724W0121", "zh", "aishell1_BAC009S0724W0121"),
    ("zh_read_funasr_asr_example", "asr_example_zh", "zh", "funasr_asr_example_zh"),
)


def asr_items(root: Path) -> list[RealItem]:
    items = []
    for folder, key, language, name in _KALDI_READ:
        if (root / folder).exists():
            items.append(RealItem(name, root / folder / f"{key}.wav", language,
                                  kaldi_text(root / folder / "text")[key], "human"))
    pyannote = root / "en_tel_pyannote_sample"
    if pyannote.exists():
        lines = [line.split(maxsplit=5) for line in (pyannote / "sample.stm").read_text().splitlines() if line.strip()]
        text = " ".join(parts[5] for parts in sorted((p for p in lines if len(p) == 6), key=lambda p: float(p[3])))
        items.append(RealItem("pyannote_telephone_call", pyannote / "sample.wav", "en", text, "human"))
    silver = root / "zh_funasr_paraformer_examples_silver"
    if silver.exists():
        texts = kaldi_text(silver / "text.paraformer_asr_silver")
        for key in sorted(texts):
            items.append(RealItem(f"funasr_paraformer_{key}", silver / f"{key}.wav", "zh", texts[key], "silver"))
    return items


def stage_items(items: list[RealItem], folder: Path) -> Path:
    """Symlink the items into one input folder with a metadata.csv that gives their languages."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["recording_id,channel,speaker_id,language"]
    for it in items:
        link = folder / f"{it.name}{it.audio.suffix}"
        if not link.exists():
            link.symlink_to(it.audio.resolve())
        rows.append(f"{it.name},0,{it.name}_spk,{it.language}")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return folder
