"""Non-verbal sounds from Whisper's own captions: a second opinion where the audio tagger hears none.

Whisper learned from subtitles, and subtitles caption sounds: "[laughter]", "(laughing)", "(笑)",
"[coughs]". The transcription decode suppresses those symbols (`suppress_tokens=[-1]`), so a laugh
comes out as "Mm-hmm", "Right." or nothing. Decoded once more with nothing suppressed, the short
IPUs that carry no confident words say what they are. YAMNet (AudioSet) misses laughs that sit
under speech-level noise and leak; the captioner is the same embedded Whisper base, so it needs no
other weights.

- `caption_type`: the sound a caption names (a bracketed caption, or laugh tokens alone), else None;
- `WhisperCaptions`: one greedy decode per clip (batched), nothing suppressed, a few tokens long;
- `grow_span`: a captioned IPU widened over the channel's own sounding frames next to it (a laugh's
  quiet tail falls under the VAD).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# the words inside a caption that name each sound (English subtitles, Chinese subtitles)
CAPTION_WORDS: dict[str, re.Pattern] = {
    "laughter": re.compile(r"laugh|chuckl|giggl|snicker|笑", re.IGNORECASE),
    "cough": re.compile(r"cough|throat|咳", re.IGNORECASE),
    "sigh": re.compile(r"\bsigh|叹气|嘆氣", re.IGNORECASE),
    "breath": re.compile(r"breath|gasp|inhale|exhale|pant|呼吸|喘|吸气|吸氣", re.IGNORECASE),
}
_CAPTION = re.compile(r"[\[(（【*♪][^\])）】*♪]*[\])）】*♪]")  # "[laughter]", "(笑)", "*coughs*"
_LAUGH_TOKENS = re.compile(r"^(?:(?:h[aeiou]h?)+|(?:a?ha)+h?|哈+|呵+|嘿+|嘻+)$", re.IGNORECASE)
_PUNCT = ".,!?。，！？…~"
MAX_NEW_TOKENS = 12  # a caption is a word or two; a loop stops early
# The encoder sees this many seconds, not Whisper's 30 (whisper.cpp's `audio_ctx`): CTranslate2 takes
# the shorter input, and self-attention over a third of the frames costs about a quarter. On the
# choose seeds' 301 short IPUs, 10 s found 14 of the laughs 30 s found 13 of, no false laugh either way.
WINDOW_SECONDS = 10.0


def caption_type(text: str) -> str | None:
    """'[laughter]' -> laughter, '(咳嗽)' -> cough, 'haha' / '哈哈' -> laughter; speech, or a caption
    of something else ('[Music]', '(無法辨識)'), -> None. Outside its captions the text may hold laugh
    tokens only: 'Right. [laughter]' has words, so it is speech."""
    captions = " ".join(_CAPTION.findall(text))
    rest = [t for t in (p.strip(_PUNCT) for p in _CAPTION.sub(" ", text).replace("-", " ").split()) if t]
    if any(not _LAUGH_TOKENS.match(t) for t in rest):
        return None  # words outside any caption
    for kind, words in CAPTION_WORDS.items():
        if words.search(captions):
            return kind
    syllables = len(re.findall(r"[aeiou]+|[哈呵嘿嘻]", "".join(rest), re.IGNORECASE))
    return "laughter" if syllables >= 2 else None  # "ha" alone is an interjection; "haha" a laugh


@dataclass(frozen=True)
class Caption:
    text: str
    avg_logprob: float  # as faster-whisper reports it for a segment
    no_speech_prob: float

    @property
    def confidence(self) -> float:
        return round(float(np.exp(self.avg_logprob)), 4)

    def silent(self, no_speech_threshold: float = 0.6, log_prob_threshold: float = -1.0) -> bool:
        """Whisper's own rule for a window it takes as silence (transcribe's defaults): no speech is
        likely and the decode is unsure."""
        return self.no_speech_prob > no_speech_threshold and self.avg_logprob < log_prob_threshold


class WhisperCaptions:
    """Whisper (CTranslate2, the ASR's model spec) decoding short clips with nothing suppressed."""

    def __init__(self, model: str, device: str = "cpu", threads: int = 1, batch_size: int = 8):
        from faster_whisper import WhisperModel

        from duplexcorpus.asr.engine import resolve_whisper

        self.model = WhisperModel(resolve_whisper(model), device=device,
                                  compute_type="int8" if device == "cpu" else "float16",
                                  cpu_threads=threads, local_files_only=True)
        self.batch_size = batch_size

    def captions(self, clips: list[np.ndarray], language: str) -> list[Caption]:
        """One caption per 16 kHz clip (the first `WINDOW_SECONDS` of it), all in `language`."""
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.feature_extractor import FeatureExtractor
        from faster_whisper.tokenizer import Tokenizer

        if not clips:
            return []
        extractor = FeatureExtractor(feature_size=self.model.feat_kwargs.get("feature_size", 80))
        tok = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe", language=language)
        prompt = self.model.get_prompt(tok, [], without_timestamps=True)
        out: list[Caption] = []
        for i in range(0, len(clips), self.batch_size):
            batch = clips[i:i + self.batch_size]
            frames = int(WINDOW_SECONDS * 100)  # 10 ms mel frames
            feats = np.stack([pad_or_trim(extractor(np.asarray(c, np.float32)[: int(WINDOW_SECONDS * 16000)]), frames)
                              for c in batch])
            results = self.model.model.generate(
                self.model.encode(feats), [prompt] * len(batch), beam_size=1, return_scores=True,
                return_no_speech_prob=True, max_length=len(prompt) + MAX_NEW_TOKENS, suppress_blank=True,
                suppress_tokens=[])
            for res in results:
                seq = [t for t in res.sequences_ids[0] if t < tok.eot]
                length = len(res.sequences_ids[0])
                avg = res.scores[0] * length / (length + 1)  # faster-whisper's avg_logprob
                out.append(Caption(tok.decode(seq).strip(), round(float(avg), 4), round(float(res.no_speech_prob), 4)))
        return out


def grow_span(start: int, end: int, own_sound: np.ndarray, stop_before: int, stop_after: int,
              bridge: int) -> tuple[int, int]:
    """[start, end) frames widened over `own_sound` frames next to it (gaps under `bridge` frames
    crossed), never past `stop_before` / `stop_after` (the neighbouring IPUs)."""
    def reach(pos: int, step: int, limit: int) -> int:
        edge, gap = pos, 0
        k = pos + step
        while (k >= limit if step < 0 else k < limit):
            if own_sound[k]:
                edge, gap = k, 0
            else:
                gap += 1
                if gap >= bridge:
                    break
            k += step
        return edge

    new_start = reach(start, -1, max(stop_before, 0)) if start > 0 else start
    new_end = reach(end - 1, 1, min(stop_after, len(own_sound))) + 1 if end < len(own_sound) else end
    return min(start, new_start), max(end, new_end)
