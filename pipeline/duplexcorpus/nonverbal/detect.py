"""Non-verbal events from an audio tagger's patch scores: pure functions on arrays (no model, no files).

- `frame_tracks`: per sound type, the score of the patch whose centre is nearest each 32 ms frame
  (the VAD / crosstalk grid), max over the type's AudioSet classes;
- `spans`: hysteresis (onset / offset) on a type's track, kept to frames with sound in them,
  short gaps bridged, short spans dropped;
- `leak_source`: the crosstalk rule applied to a non-verbal span: the other channel that owns the
  sound (it hears the same type of sound, the two are correlated at a leak delay and it is louder
  after level normalisation, or it dominates outright; or the crosstalk stage already attributed
  most of the span), else None;
- `speech_laugh`: a laugh over the same speaker's words (laugh tokens such as "haha" do not count).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from duplexcorpus.frames import FRAME_RATE

# AudioSet classes behind each event type (YAMNet's class map names)
SOUND_TYPES: dict[str, tuple[str, ...]] = {
    "laughter": ("Laughter", "Baby laughter", "Giggle", "Snicker", "Belly laugh", "Chuckle, chortle"),
    "breath": ("Breathing", "Gasp", "Pant", "Wheeze"),
    "cough": ("Cough", "Throat clearing"),
    "sigh": ("Sigh",),
}
TYPES = tuple(SOUND_TYPES)
LAUGH_TOKEN = re.compile(r"^(?:(?:h[aeiou]h?)+|(?:a?ha)+h?|he+|ho+|哈+|呵+|嘿+|嘻+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Span:
    """A candidate on one channel: [start, end) frames of the 31.25 Hz grid, its peak score."""

    type: str
    start: int
    end: int
    score: float


def frame_tracks(starts: np.ndarray, scores: np.ndarray, class_index: dict[str, list[int]], frames: int,
                 patch_seconds: float, hop: float) -> np.ndarray:
    """float32 [len(TYPES), frames]: each frame gets the nearest patch's score (patches centred
    `patch_seconds / 2` after their start, one every `hop` s); a type's score is its classes' max."""
    out = np.zeros((len(TYPES), frames), np.float32)
    if len(starts) == 0 or frames == 0:
        return out
    centres = (np.arange(frames) + 0.5) / FRAME_RATE
    nearest = np.clip(np.round((centres - starts[0] - patch_seconds / 2) / hop).astype(int), 0, len(starts) - 1)
    for k, name in enumerate(TYPES):
        out[k] = scores[:, class_index[name]].max(axis=1)[nearest]
    return out


def spans(track: np.ndarray, sound: np.ndarray, sound_type: str, onset: float, offset: float,
          bridge_s: float, min_duration_s: float, reach_s: float = 0.0) -> list[Span]:
    """Candidate spans of one type on one channel (frames of the 31.25 Hz grid). `reach_s`: how far
    past the frames a scoring patch was nearest to its evidence reaches (a patch hears 0.96 s around
    its centre; the track gives each frame only the nearest patch): sounding frames that close to a
    span belong to it."""
    from duplexcorpus.stages.ipus import bridge, hysteresis, runs  # the IPU stage's rules (lazy: the events
    #   stage imports this module while the stages package is still loading)
    core = hysteresis(track, onset, offset)
    on = core
    k = int(round(reach_s * FRAME_RATE))
    if k > 0 and on.any():
        on = np.convolve(on.astype(np.int32), np.ones(2 * k + 1, np.int32), mode="same") > 0
    on = on & sound
    core = core & sound
    joined = bridge(runs(on), int(round(bridge_s * FRAME_RATE)))
    out = []
    for s, e in joined:
        if not core[s:e].any():
            continue  # only reached, never scored: not a span of its own
        while s < e and not sound[s]:
            s += 1
        while e > s and not sound[e - 1]:
            e -= 1
        if (e - s) / FRAME_RATE >= min_duration_s:
            out.append(Span(sound_type, s, e, round(float(track[s:e].max()), 4)))
    return out


def span_rho2(x: np.ndarray, y: np.ndarray, hop: int, max_lag: int) -> float:
    """Median over the span's frames of the share of x's energy explained by y at the best leak delay
    (the crosstalk stage's measure, on one short span)."""
    from duplexcorpus.stages.crosstalk import block_lags, framewise_rho2

    if len(x) < 2 * hop:
        return 0.0
    best = 0.0
    for lag in block_lags(x, y, max_lag, 2):
        best = max(best, float(np.median(framewise_rho2(x, y, lag, hop))))
    return best


def leak_source(c: int, span: Span, tracks: np.ndarray, norm_energy: np.ndarray, mask: np.ndarray,
                source: np.ndarray, audio: np.ndarray | None, hop: int, max_lag: int, offset: float,
                rho2_threshold: float, margin_db: float, dominance_db: float) -> int | None:
    """The channel whose sound this span of channel c really is, or None when it is c's own.

    `tracks` [channels, types, frames] type scores, `norm_energy` [channels, frames] level-normalised
    energy (dB), `mask` / `source` the crosstalk stage's attribution, `audio` [channels, samples] of the
    span (None: no correlation test)."""
    s, e = span.start, span.end
    attributed = source[c, s:e][mask[c, s:e]]
    if len(attributed) >= 0.5 * (e - s):
        return int(np.bincount(attributed).argmax())
    k = TYPES.index(span.type)
    for d in range(tracks.shape[0]):
        if d == c or tracks[d, k, s:e].max() < offset:
            continue  # the other channel does not hear this kind of sound: c's own
        lead = float(np.median(norm_energy[d, s:e] - norm_energy[c, s:e]))
        if lead >= dominance_db:
            return d
        if lead >= margin_db and audio is not None and span_rho2(audio[c], audio[d], hop, max_lag) >= rho2_threshold:
            return d
    return None


def speech_laugh(start: float, end: float, words, min_overlap: float) -> bool:
    """Does the laugh [start, end) lie over at least `min_overlap` s of real words (`words`: the same
    speaker's), not counting laugh tokens Whisper wrote for the laugh itself?"""
    covered = 0.0
    for w in words:
        if LAUGH_TOKEN.match(w.word.strip(" .,!?~-")):
            continue
        covered += max(0.0, min(end, w.end) - max(start, w.start))
    return covered >= min_overlap


def is_laugh_token(word: str) -> bool:
    return bool(LAUGH_TOKEN.match(word.strip(" .,!?~-…。，！？")))


def tag_nonverbal_ipus(segments, events, words, min_share: float, min_overlap: float = 0.2):
    """Segments with `attributes.nonverbal` = laughter / cough: an IPU that is a laugh or a cough, not
    speech (turntaking.py keeps it off the floor). Its words are laugh tokens at most, and such an
    event (same channel and speaker) covers at least `min_share` of it, or, once ASR has run on it
    (it has a `text` attribute) and found no words, overlaps it by `min_overlap` s. An event from
    Whisper's caption of the IPU itself (source `whisper_caption`) outweighs its words: the caption
    was decoded only where those words were unsure or listener tokens, and a laugh transcribed with
    sound symbols suppressed comes out as "Mm-hmm" or "Right."."""
    import dataclasses

    by_channel: dict[int, list] = {}
    for e in events:
        if e.type in ("laughter", "cough"):
            by_channel.setdefault(e.channel, []).append(e)
    spoken: dict[tuple[int, float], bool] = {}
    for w in words:
        if not is_laugh_token(w.word):
            spoken[(w.channel, round(w.segment_start, 3) if w.segment_start is not None else -1.0)] = True
    out = []
    for s in segments:
        best, kind, captioned = 0.0, None, False
        for e in by_channel.get(s.channel, ()):
            if e.speaker_id not in (None, s.speaker_id):
                continue
            covered = max(0.0, min(s.end, e.end) - max(s.start, e.start))
            if covered > best:
                best, kind, captioned = covered, e.type, e.source == "whisper_caption"
        duration = max(s.end - s.start, 1e-9)
        if kind and captioned and best / duration >= min_share:
            out.append(dataclasses.replace(s, attributes=dict(s.attributes, nonverbal=kind)))
            continue
        has_words = spoken.get((s.channel, round(s.start, 3)), False) or (
            bool(s.attributes.get("text")) and not all(is_laugh_token(t) for t in s.attributes["text"].split()))
        transcribed_empty = "text" in s.attributes and not has_words
        if kind and not has_words and (best / duration >= min_share or (transcribed_empty and best >= min_overlap)):
            s = dataclasses.replace(s, attributes=dict(s.attributes, nonverbal=kind))
        out.append(s)
    return out
