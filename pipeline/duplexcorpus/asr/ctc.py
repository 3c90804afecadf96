"""The wav2vec2/CTC aligner: `whisperx.align` with a local wav2vec2 CTC folder per language
(`asr.aligner_en`, `asr.aligner_zh`), used instead of Whisper's cross-attention where configured.

None ships offline, so nothing is downloaded: a configured folder that is not there quarantines
the recording (`aligner_missing`). whisperx.align splits its segment into sentences with NLTK's
punkt, which it would download; a clip is aligned as one sentence instead (`one_sentence_splitter`).
Words the aligner cannot place (digits for a letters-only vocabulary) come back without times; the
timing step interpolates them.
"""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import numpy as np

from duplexcorpus.asr.timing import RATE


class CtcAligner:
    def __init__(self, folders: dict[str, str | None], device: str):
        self.folders = folders  # language -> local wav2vec2 folder (None: cross-attention)
        self.device = device
        self.models: dict[str, tuple] = {}  # language -> (model, metadata), loaded on first use

    @classmethod
    def from_config(cls, cfg, device: str) -> CtcAligner:
        """The `aligner_<language>` folders of an `asr` config section."""
        prefix = "aligner_"
        return cls({f.name[len(prefix):]: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
                    if f.name.startswith(prefix)}, device)

    def words(self, language: str, audio: np.ndarray, text: str) -> list[dict] | None:
        """Words (clip time) from whisperx.align with the aligner for `language` (None when no
        aligner is configured). Words it cannot place come back without times."""
        path = self.folders.get(language)
        if not path or not text.strip():
            return None
        import whisperx

        if language not in self.models:
            if not Path(path).is_dir():
                from duplexcorpus.stages.base import Rejected  # (a module import would be circular)

                raise Rejected("aligner_missing", f"asr.aligner_{language}: {path} is not a local folder")
            self.models[language] = whisperx.load_align_model(language, self.device, model_name=path,
                                                              model_cache_only=True)
        model, meta = self.models[language]
        with one_sentence_splitter():
            result = whisperx.align([{"start": 0.0, "end": len(audio) / RATE, "text": text}], model, meta,
                                    audio.astype(np.float32), self.device)
        return [dict(word=w["word"], start=w.get("start"), end=w.get("end"), score=round(float(w.get("score", 0.0)), 4))
                for w in result["word_segments"]]


@contextlib.contextmanager
def one_sentence_splitter():
    """whisperx.align splits a segment into sentences with NLTK's punkt, which it downloads on first
    use (no network here). Our clip is aligned as one sentence, so for the call its splitter loader
    returns _OneSentence; the original is put back afterwards."""
    import whisperx.alignment

    original = whisperx.alignment.nltk_load
    whisperx.alignment.nltk_load = lambda _name: _OneSentence()
    try:
        yield
    finally:
        whisperx.alignment.nltk_load = original


class _OneSentence:
    """Stands in for NLTK's punkt sentence splitter inside whisperx.align: the whole text is one."""

    @staticmethod
    def span_tokenize(text: str):
        return [(0, len(text))]
