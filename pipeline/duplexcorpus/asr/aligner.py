"""The text aligner: a text someone gave for stretches of a channel, plus the audio, -> timed words.

Words come from the CTC aligner where one is configured for the language (`asr.aligner_<lang>`),
else from Whisper's cross-attention alignment of the text on the clip's encoder output (the
engine's `Decoded.words`); then `timing.recording_words` places them (inside the IPUs, snapped to
the energy envelope, unplaced ones interpolated) and maps them to recording time.

The ASR stage uses it for every clip it decodes (recognised text and given transcripts, batched
together with its own engine); review (`review/realign.py`) uses `align` for annotators' text.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from duplexcorpus.asr.ctc import CtcAligner
from duplexcorpus.asr.engine import Clip, Decoded, WhisperEngine, load_engine
from duplexcorpus.asr.plan import CLIP_SECONDS, ClipPlan, clip_audios
from duplexcorpus.asr.timing import recording_words
from duplexcorpus.text import to_simplified


@dataclass(frozen=True)
class TextToAlign:
    """A text someone gave for stretches of one channel of a recording (in order, within 30 s:
    one clip at their real positions, the audio outside them silenced)."""

    audio_path: str  # the recording's 16 kHz analysis track (all channels)
    duration: float
    channel: int
    spans: tuple[tuple[float, float], ...]
    text: str
    language: str


class TextAligner:
    """Word times for text on audio, with the settings of an `asr` config section. It uses the
    `engine` it is given (the ASR stage's) or loads its own (`TextAligner.load`)."""

    def __init__(self, cfg, engine: WhisperEngine):
        self.cfg = cfg
        self.engine = engine
        self.ctc = CtcAligner.from_config(cfg, engine.device)

    @classmethod
    def load(cls, cfg) -> TextAligner:
        """With `asr.engines`, one engine per language behind a router (`asr/engines.py`)."""
        from duplexcorpus.asr.engines import load_router

        return cls(cfg, load_router(cfg, load_engine))

    def clip_words(self, d: Decoded, audio: np.ndarray, text: str) -> list[dict]:
        """The decoded clip's words in clip time: from the CTC aligner when one is configured for
        the language, else from Whisper's cross-attention alignment."""
        words = self.ctc.words(d.language, audio, text)
        if words is None:
            words = [dict(word=to_simplified(w.word) if d.language == "zh" else w.word, start=w.start,
                          end=w.end, score=round(w.probability, 4)) for w in d.words]
        return words

    def place(self, p: ClipPlan, audio: np.ndarray, floor: float, language: str, words: list[dict],
              source: str, text: str | None = None) -> list[dict]:
        """Clip words -> Word records in recording time (`timing.recording_words`). `text`: what the
        words were read from (the decoded text; default the plan's given text), which tells a Latin
        word the tokenizer cut into pieces from two words."""
        cfg = self.cfg
        return recording_words(p, audio, floor, language, words, source, pad=cfg.pad, gap=cfg.pack_gap,
                               snap_floor_db=cfg.snap_floor_db, min_word=cfg.min_word, text=text)

    def align(self, requests: list[TextToAlign], source: str = "human") -> list[list[dict]]:
        """Word times for each request, in batches of `asr.batch_size` clips: recording time, inside
        the request's spans, with `source` (an annotator's corrected transcript: "human")."""
        cfg = self.cfg
        out: list[list[dict]] = []
        for i in range(0, len(requests), cfg.batch_size):
            batch = requests[i: i + cfg.batch_size]
            plans = []
            for k, r in enumerate(batch):
                start, end = r.spans[0][0] - cfg.pad, r.spans[-1][1] + cfg.pad
                if end - start > CLIP_SECONDS:
                    raise ValueError(f"text to align spans {end - start:.1f} s; a Whisper clip holds 30 s")
                plans.append(ClipPlan(k, r.channel, start, end, list(r.spans), r.language, None, r.text, "transcript"))
            audios, floors = clip_audios(plans, [(r.audio_path, r.duration) for r in batch], cfg.pad, cfg.pack_gap)
            decoded = self.engine.run([Clip(a, p.language, None, p.text) for a, p in zip(audios, plans)])
            for p, audio, floor, d in zip(plans, audios, floors, decoded):
                out.append(self.place(p, audio, floor, d.language, self.clip_words(d, audio, p.text), source))
        return out
