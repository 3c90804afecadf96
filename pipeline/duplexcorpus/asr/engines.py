"""One engine per language (`asr.engines`): a channel's language picks the engine that decodes it.

    asr:
      model: embedded:whisper-base               # every language not listed below
      engines: {zh: "paraformer:/models/paraformer-zh", en: "embedded:whisper-base"}

The spec strings are `asr.model`'s (`embedded:whisper-base`, a CTranslate2 folder or a cached name,
`paraformer:<folder>`, `sensevoice:<folder>`). `EngineRouter` has the engines' `run` interface: each
batch is split by the clips' language, each part goes to its language's engine in one call, and each
result says which engine made it (`Decoded.engine`, the `engine` of clips.json entries). Every spec is
loaded once (in the stage's setup); Whisper engines are shared by spec, so a Paraformer's score
model and an English Whisper of the same spec are one model in memory.

A clip without a language (none in the metadata: detected per clip) first gets it from Whisper's
language head, among `asr.languages` (the default engine's Whisper, or its score model), then goes to
that language's engine; its `language_probability` is the detection's. With `engines` empty the
router is the default engine itself: nothing changes.

`spec_problem` checks a spec's form without touching the disk (a config error names it); whether its
files exist is the engine loader's `ModelError`, at setup.
"""
from __future__ import annotations

import dataclasses
import re

ENGINE_KINDS = ("paraformer", "sensevoice")  # = asr/sherpa.py KINDS (kept import-free for config.py)
EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODELS = ("embedded:whisper-base",)


def spec_problem(spec) -> str | None:
    """Why `spec` is not an engine spec (None: it is one)."""
    if not isinstance(spec, str) or not spec.strip():
        return f"{spec!r} is not an engine spec (a string: embedded:whisper-base, a CTranslate2 folder, " \
               f"a cached Whisper name, paraformer:<folder>, sensevoice:<folder>)"
    if spec.startswith(EMBEDDED_PREFIX):
        return None if spec in EMBEDDED_MODELS else f"{spec!r}: the embedded models are {list(EMBEDDED_MODELS)}"
    kind, sep, path = spec.partition(":")
    if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]+", kind):  # not a path ("C:\..." has a 1-letter kind)
        if kind not in ENGINE_KINDS:
            return f"{spec!r}: unknown engine kind {kind!r} (known: {', '.join(ENGINE_KINDS)}; a Whisper is a " \
                   f"path or a cached name without a prefix)"
        if not path.strip():
            return f"{spec!r}: {kind}: needs a local folder (a sherpa-onnx export)"
    return None


def engines_problem(engines, languages) -> str | None:
    """Why an `asr.engines` mapping is invalid (None: it is valid)."""
    if not isinstance(engines, dict):
        return f"expected a mapping language -> engine spec, got {type(engines).__name__}"
    for lang, spec in engines.items():
        if lang not in languages:
            return f"language {lang!r} is not in asr.languages {list(languages)} (a channel of another " \
                   f"language never reaches an engine for it)"
        problem = spec_problem(spec)
        if problem:
            return f"{lang}: {problem}"
    return None


def specs(cfg) -> list[str]:
    """Every engine spec an `asr` section uses, the default (`asr.model`) first."""
    return list(dict.fromkeys([cfg.model, *dict(cfg.engines).values()]))


def spec_for(cfg, language: str | None) -> str:
    return dict(cfg.engines).get(language, cfg.model)


class EngineRouter:
    """The engines of one `asr` section, by language, behind the engines' `run` interface."""

    def __init__(self, default, default_spec: str, by_language: dict[str, tuple[str, object]], detector=None):
        self.default = default
        self.default_spec = default_spec
        self.by_language = by_language  # language -> (spec, engine)
        self.detector = detector  # a WhisperEngine for clips without a language
        self.device = default.device
        self.languages = default.languages

    def engine_for(self, language: str | None) -> tuple[str, object]:
        return self.by_language.get(language, (self.default_spec, self.default))

    def run(self, clips, temperature: float = 0.0, best_of: int = 5, seed: int = 0, max_length: int | None = None):
        if not clips:
            return []
        if not self.by_language:
            return self.default.run(clips, temperature=temperature, best_of=best_of, seed=seed, max_length=max_length)
        detected: dict[int, tuple[str, float]] = {}
        unknown = [i for i, c in enumerate(clips) if c.language is None]
        if unknown and self.detector is not None:
            found = self.detector.detect_languages(self.detector.encode([clips[i] for i in unknown]))
            detected = dict(zip(unknown, found))
        groups: dict[str, list[int]] = {}
        routed = []
        for i, c in enumerate(clips):
            if i in detected:
                c = dataclasses.replace(c, language=detected[i][0])
            routed.append(c)
            groups.setdefault(self.engine_for(c.language)[0], []).append(i)
        engines = {spec: eng for spec, eng in [(self.default_spec, self.default), *self.by_language.values()]}
        out = [None] * len(clips)
        for spec, idx in groups.items():
            part = engines[spec].run([routed[i] for i in idx], temperature=temperature, best_of=best_of, seed=seed,
                                     max_length=max_length)
            for i, d in zip(idx, part):
                d.engine = spec
                if i in detected:
                    d.language_probability = float(detected[i][1])
                # a clip that keeps its encoder output kept the routed copy's: hand it back
                if routed[i] is not clips[i]:
                    clips[i].encoding = routed[i].encoding
                out[i] = d
        return out


def load_router(cfg, load_engine) -> object:
    """The engine (or router) an `asr` section asks for; `load_engine(cfg, spec, whispers)` loads one
    spec, sharing Whisper engines through `whispers` (spec -> WhisperEngine)."""
    whispers: dict[str, object] = {}
    default = load_engine(cfg, cfg.model, whispers)
    if not cfg.engines:
        return default
    loaded = {cfg.model: default}
    by_language = {}
    for lang, spec in dict(cfg.engines).items():
        if spec not in loaded:
            loaded[spec] = load_engine(cfg, spec, whispers)
        by_language[lang] = (spec, loaded[spec])
    detector = next(iter(whispers.values()), None)
    if detector is None:  # only sherpa engines and no Whisper among them: their score model's
        detector = getattr(default, "scorer", None)
    return EngineRouter(default, cfg.model, by_language, detector)
