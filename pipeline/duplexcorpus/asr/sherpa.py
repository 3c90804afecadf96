"""Mandarin engines that Chinese data teams run, FunASR Paraformer-zh and SenseVoice-Small, on sherpa-onnx.

`asr.model: paraformer:<folder>` or `sensevoice:<folder>` (a folder holding `model.int8.onnx` or
`model.onnx` and `tokens.txt`, as sherpa-onnx's exports ship; or the .onnx file itself with tokens.txt
beside it). Nothing is downloaded; a missing folder or file is a `ModelError` that names it, and
`asr.model_sha256` pins the .onnx file when given.

Why sherpa-onnx (measured 2026-12-03, README "Mandarin engines"): it installs beside the project's pins
(funasr-onnx 0.4.3 would downgrade numpy to 1.26.4), needs no torch, batches clips in one call, and
gives both models' timestamps in C++. What the engine gets from it per clip: the tokens and one time per
token, no end and no probability:
- Paraformer: the CIF firing position of each token (20 ms grid), present only in exports with the
  `us_cif_peak` output (sherpa-onnx's paraformer-zh exports have it); a token lasts until the next
  one fires. An export without it gives text only: its words are timed by interpolation (flagged).
- SenseVoice: the CTC frame where each token is emitted (60 ms grid), a spike near its start; the
  clip's language from its first token (`<|zh|>`, `<|en|>`, ...).

The words satisfy the contract the Whisper engine's do (`Decoded.words`, then `units.contract_units`
in the timing step): Latin pieces joined into words, punctuation attached to the word before it, each
word a start and an end inside the clip. Their probability is the Whisper engine's alignment
probability of this text on the same audio (`asr.score_model`, the embedded Whisper base by default:
the same meaning as `words.score` has for Whisper rows, and a second opinion where the engines
disagree), because neither model reports one through the runtime. They give no `no_speech_prob` and
no log-probability either (0.0): Whisper's no-speech and log-probability rules never fire for them;
empty output, hallucination phrases and repetition loops are gated as for Whisper. Their decoding is
greedy, so a "sampled" retry of a clip would give the same words: the result of each recent clip is
kept and handed back (only the per-IPU split can change the words).
Given transcripts (`Clip.text`) are force-aligned by the Whisper engine.
"""
from __future__ import annotations

import dataclasses
import hashlib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from duplexcorpus.asr.engine import SAMPLE_RATE, Clip, Decoded, ModelError, WordTiming

KINDS = ("paraformer", "sensevoice")
MODEL_FILES = ("model.int8.onnx", "model.onnx")  # the first present is loaded (model.onnx first on cuda)
TOKENS_FILE = "tokens.txt"
SENSEVOICE_LANGUAGES = ("zh", "en", "yue", "ja", "ko")
# a token's span when the next token is far or there is none: Mandarin runs 4-7 characters a
# second; the timing step then snaps the end back to the last loud frame
MAX_TOKEN_SECONDS = 0.5
SEEN_CLIPS = 256  # results kept for retries (the stage's re-decode cascade asks again for a clip)


def engine_kind(model: str) -> tuple[str, str] | None:
    """("paraformer" | "sensevoice", path) of an `asr.model` naming one of these engines, else None."""
    kind, sep, path = model.partition(":")
    return (kind, path) if sep and kind in KINDS else None


@dataclass(frozen=True)
class OnnxModel:
    kind: str
    model: Path  # the .onnx file
    tokens: Path


def locate(kind: str, path: str, device: str = "cpu") -> OnnxModel:
    """The files of a `paraformer:` / `sensevoice:` model, or a ModelError saying what is missing."""
    where = Path(path).expanduser()
    if where.is_file():
        folder, model = where.parent, where
    elif where.is_dir():
        folder = where
        order = MODEL_FILES[::-1] if device == "cuda" else MODEL_FILES
        model = next((folder / f for f in order if (folder / f).is_file()), None)
        if model is None:
            raise ModelError(f"asr.model {kind}:{path}: no {' or '.join(MODEL_FILES)} in {folder} "
                             f"(a sherpa-onnx {kind} export; see README 'Mandarin engines')")
    else:
        raise ModelError(f"asr.model {kind}:{path}: {where} is not a local folder or file (no download at run time)")
    tokens = folder / TOKENS_FILE
    if not tokens.is_file():
        raise ModelError(f"asr.model {kind}:{path}: no {TOKENS_FILE} beside {model.name} in {folder}")
    return OnnxModel(kind, model, tokens)


def _is_punct(text: str) -> bool:
    return bool(text) and all(unicodedata.category(ch)[0] in "PS" for ch in text)


def _is_latin(text: str) -> bool:
    return bool(text) and text[0].isascii() and text[0].isalnum()


def token_words(kind: str, tokens: list[str], times: list[float], clip_seconds: float) -> list[WordTiming]:
    """One clip's tokens and token times -> words in clip time (probability unset: 0.0). A Han token
    is a word (several characters: the timing step divides it); Latin pieces of one word are joined
    (Paraformer marks a piece that continues with a trailing "@@", SenseVoice a piece that starts a
    word with a leading "▁", which sherpa-onnx writes as a space); punctuation joins the word before.
    A token's end is the next token's time, at most MAX_TOKEN_SECONDS later; without times (an export
    without timestamps) every word is unplaced (start/end None) and the timing step interpolates."""
    timed = len(times) == len(tokens)
    words: list[WordTiming] = []
    glue = False  # the previous piece continues into this one
    for k, raw in enumerate(tokens):
        start = float(times[k]) if timed else None
        nxt = float(times[k + 1]) if timed and k + 1 < len(tokens) else clip_seconds
        end = min(nxt, start + MAX_TOKEN_SECONDS, clip_seconds) if timed else None
        piece = raw
        new_word = True
        if kind == "paraformer":
            cont = piece.endswith("@@")
            piece = piece[:-2] if cont else piece
            new_word = not glue
            glue = cont
        else:
            starts = piece.startswith(("▁", " "))
            piece = piece.lstrip("▁ ")
            new_word = starts or not (words and _is_latin(piece) and _is_latin(words[-1].word[-1:]))
        if not piece.strip():
            glue = glue and kind == "paraformer"
            continue
        if piece.startswith("<|") and piece.endswith("|>"):
            continue  # an event or language tag inside the text (SenseVoice), not a word
        if _is_punct(piece):
            if words:
                words[-1].word += piece
            continue
        if not new_word and words and _is_latin(piece):
            words[-1].word += piece
            if end is not None and words[-1].end is not None:
                words[-1].end = max(words[-1].end, end)
            continue
        words.append(WordTiming(piece, start, max(end, start) if timed else None, 0.0))
    return words


def _copy(d: Decoded) -> Decoded:
    return dataclasses.replace(d, words=[dataclasses.replace(w) for w in d.words])


def spread_probability(words: list[WordTiming], scored: list[WordTiming]) -> None:
    """Give each word the mean alignment probability of its characters, where `scored` are another
    engine's words of the same text (another split: Whisper's tokens)."""
    per_char: list[float] = []
    for w in scored:
        per_char += [w.probability] * sum(1 for ch in w.word if not ch.isspace() and not _is_punct(ch))
    pos = 0
    for w in words:
        n = sum(1 for ch in w.word if not ch.isspace() and not _is_punct(ch))
        got = per_char[pos: pos + n]
        w.probability = float(np.mean(got)) if got else 0.0
        pos += n


class SherpaEngine:
    """Paraformer-zh or SenseVoice-Small on sherpa-onnx, with the Whisper engine's `run` interface."""

    def __init__(self, model: OnnxModel, device: str = "cpu", threads: int = 1,
                 languages: tuple[str, ...] = ("en", "zh"), scorer=None):
        import sherpa_onnx

        self.files = model
        self.kind = model.kind
        self.device = device
        self.languages = tuple(languages)
        self.threads = threads
        self._sherpa = sherpa_onnx
        self._recognizers: dict[str, object] = {}
        self.scorer = scorer  # a WhisperEngine: word probabilities and given transcripts
        self._seen: dict[tuple, Decoded] = {}  # recent clips' results: a retry of one is not decoded again
        self.recognizer("")  # load now: a broken model fails at setup, not in the first batch

    def recognizer(self, language: str):
        """Paraformer has one; SenseVoice takes its language at load time: one per language used."""
        key = language if self.kind == "sensevoice" else ""
        if key not in self._recognizers:
            common = dict(tokens=str(self.files.tokens), num_threads=self.threads,
                          provider="cuda" if self.device == "cuda" else "cpu")
            if self.kind == "paraformer":
                rec = self._sherpa.OfflineRecognizer.from_paraformer(paraformer=str(self.files.model), **common)
            else:
                rec = self._sherpa.OfflineRecognizer.from_sense_voice(model=str(self.files.model), language=key,
                                                                      use_itn=False, **common)
            self._recognizers[key] = rec
        return self._recognizers[key]

    def run(self, clips: list[Clip], temperature: float = 0.0, best_of: int = 5, seed: int = 0,
            max_length: int | None = None) -> list[Decoded]:
        """Recognise a batch (greedy: `temperature`, `best_of`, `seed` and `max_length` change
        nothing); clips with a given text are aligned by the Whisper scorer."""
        out: list[Decoded | None] = [None] * len(clips)
        given = [i for i, c in enumerate(clips) if c.text is not None]
        if given:
            for i, d in zip(given, self.scorer.run([clips[i] for i in given])):
                out[i] = d
        by_lang: dict[str, list[int]] = {}
        keys = {}
        for i, c in enumerate(clips):
            if c.text is None:
                keys[i] = (hashlib.sha1(np.ascontiguousarray(c.audio, dtype=np.float32).tobytes()).hexdigest(), c.language)
                if keys[i] in self._seen:  # greedy decoding: the same clip gives the same words
                    out[i] = _copy(self._seen[keys[i]])
                    continue
                lang = c.language if self.kind == "sensevoice" and c.language in SENSEVOICE_LANGUAGES else ""
                by_lang.setdefault(lang, []).append(i)
        for lang, idx in by_lang.items():
            rec = self.recognizer(lang)
            streams = []
            for i in idx:
                stream = rec.create_stream()
                stream.accept_waveform(SAMPLE_RATE, np.ascontiguousarray(clips[i].audio, dtype=np.float32))
                streams.append(stream)
            rec.decode_streams(streams)
            for i, stream in zip(idx, streams):
                out[i] = self._decoded(clips[i], stream.result)
        fresh = [i for idxs in by_lang.values() for i in idxs]
        self._score([out[i] for i in fresh], [clips[i] for i in fresh])
        for i in fresh:
            self._seen[keys[i]] = _copy(out[i])
            while len(self._seen) > SEEN_CLIPS:
                self._seen.pop(next(iter(self._seen)))
        return out

    def _decoded(self, clip: Clip, res) -> Decoded:
        seconds = len(clip.audio) / SAMPLE_RATE
        said = res.lang.strip("<|>") if self.kind == "sensevoice" else ""
        if said == "nospeech":
            return Decoded("", clip.language or self.languages[0], 1.0, 0.0, 1.0, [])
        if said == "yue" and "zh" in self.languages:
            said = "zh"  # Cantonese is written in Han characters: the Mandarin contract applies
        language = clip.language or (said if said else "zh")
        words = token_words(self.kind, list(res.tokens), list(res.timestamps), seconds)
        text = " ".join(res.text.split()) if self.kind == "sensevoice" else res.text.strip()
        return Decoded(text, language, 1.0, 0.0, 0.0, words)

    def _score(self, decoded: list[Decoded], clips: list[Clip]) -> None:
        todo = [k for k, d in enumerate(decoded) if d.words]
        if not todo or self.scorer is None:
            return
        aligned = self.scorer.run([Clip(clips[k].audio, decoded[k].language, None, decoded[k].text) for k in todo])
        for k, a in zip(todo, aligned):
            spread_probability(decoded[k].words, a.words)

