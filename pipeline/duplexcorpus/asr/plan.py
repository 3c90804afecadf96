"""Clip planning: which audio of which channel goes to Whisper, as what.

A clip holds at most 30 s. A channel's IPUs are packed end to end (`pad` s kept either side, `gap` s
of silence between them), so a clip carries up to `max_clip` s of one speaker's speech and nothing
else; IPUs shorter than `short_ipu` (listener tokens) get clips of their own, decoded with the
filler prompt. A given utterance (transcript, annotator text) is one clip at its real position,
the audio outside its IPUs zeroed. `clip_audio` reads a plan's audio from the 16 kHz analysis
track, piece by piece, and measures the channel's noise floor for word timing.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from duplexcorpus.asr.timing import HOP_S
from duplexcorpus.audio import frame_energy_db, noise_floor_db, read_window

CLIP_SECONDS = 30.0  # one Whisper clip


@dataclass
class ClipPlan:
    item: int  # index of the recording in the batch
    channel: int
    start: float  # recording time of the clip's first sample
    end: float
    spans: list[tuple[float, float]]  # IPUs (recording time) the clip covers
    language: str | None
    prompt: str | None
    text: str | None = None  # a given transcript to align
    role: str = "asr"  # asr | transcript | compare
    utterance: int | None = None
    packed: bool = False  # IPUs laid end to end with `gap` s of silence (else their real positions)

    def layout(self, pad: float, gap: float) -> list[tuple[float, float, float]]:
        """(clip offset, recording start, recording end) of each piece of the clip's audio."""
        if not self.packed:
            return [(0.0, max(0.0, self.start), self.end)]
        pieces, offset = [], 0.0
        for s, e in self.spans:
            a, b = max(0.0, s - pad), e + pad
            pieces.append((offset, a, b))
            offset += (b - a) + gap
        return pieces

    def to_clip_spans(self, pad: float, gap: float) -> list[tuple[float, float]]:
        """The IPUs in clip time."""
        out = []
        for offset, a, b in self.layout(pad, gap):
            out += [(offset + max(s, a) - a, offset + min(e, b) - a) for s, e in self.spans if s < b and e > a]
        return out

    def to_recording(self, t: float, pad: float, gap: float) -> float:
        """Clip time -> recording time (a time in a packing gap goes to the nearer piece edge)."""
        pieces = self.layout(pad, gap)
        best = min(pieces, key=lambda p: 0.0 if p[0] <= t <= p[0] + p[2] - p[1] else min(abs(t - p[0]), abs(t - p[0] - p[2] + p[1])))
        offset, a, b = best
        return a + min(max(t - offset, 0.0), b - a)


# ------------------------------------------------------------------------------------ planning
def group_ipus(spans: list[tuple[float, float]], max_clip: float, short_ipu: float, pad: float, gap: float
               ) -> list[tuple[list[tuple[float, float]], bool]]:
    """IPUs of one channel packed into clips of at most `max_clip` s of audio (each IPU with `pad`
    either side, `gap` s of silence between them); short IPUs (listener tokens) in clips of their
    own kind (flag True), since they are decoded with the filler prompt. IPUs longer than a clip are
    cut into clip-sized pieces."""
    room = max_clip - 2 * pad
    groups: list[tuple[list[tuple[float, float]], bool]] = []
    current: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    used = {True: 0.0, False: 0.0}
    for s, e in spans:
        short = e - s < short_ipu
        for a in np.arange(s, e, room):
            b = min(a + room, e)
            need = (b - a) + 2 * pad + (gap if current[short] else 0.0)
            if current[short] and used[short] + need > max_clip:
                groups.append((current[short], short))
                current[short], used[short] = [], 0.0
                need = (b - a) + 2 * pad
            current[short].append((float(a), float(b)))
            used[short] += need
    for short in (False, True):
        if current[short]:
            groups.append((current[short], short))
    return sorted(groups, key=lambda g: g[0][0][0])


def channel_clips(item: int, channel: int, spans: list[tuple[float, float]], language: str | None,
                  prompt: str | None, filler_prompt: str | None, *, max_clip: float, short_ipu: float,
                  pad: float, gap: float) -> list[ClipPlan]:
    """Packed clips to recognise one channel's IPUs (short ones with `filler_prompt`)."""
    return [ClipPlan(item, channel, group[0][0] - pad, group[-1][1] + pad, group, language,
                     filler_prompt if short else prompt, packed=True)
            for group, short in group_ipus(spans, max_clip, short_ipu, pad, gap)]


def per_ipu(plan: ClipPlan, pad: float) -> list[ClipPlan]:
    """A packed clip cut into one clip per IPU (same channel, language and prompt): the smaller
    pieces a failed clip is decoded as before anything is dropped."""
    return [ClipPlan(plan.item, plan.channel, s - pad, e + pad, [(s, e)], plan.language, plan.prompt,
                     packed=True) for s, e in plan.spans]


def utterance_clip(item: int, utterance: int, channel: int, start: float, end: float, text: str,
                   ipus: list[tuple[float, float]], language: str | None, pad: float) -> ClipPlan:
    """One clip (at its real position) to align a given utterance said between `start` and `end`:
    the channel's IPUs that reach into that stretch (cut to it, with `pad` s of slack), or the
    stretch itself when none do; the clip runs from the first to the last of them, `pad` s either
    side. It may exceed `CLIP_SECONDS`: the caller decides what that means."""
    spans = [(max(s, start - pad), min(e, end + pad)) for s, e in ipus
             if s < end + pad and e > start - pad] or [(start, end)]
    first, last = min(s for s, _ in spans) - pad, max(e for _, e in spans) + pad
    return ClipPlan(item, channel, first, last, spans, language, None, text, "transcript", utterance)


def batch_order(plans: list[ClipPlan]) -> list[ClipPlan]:
    """Clips of one language (and prompt) together, since alignment runs per language and a
    decoder call per prompt; long ones first."""
    return sorted(plans, key=lambda p: (p.language or "~", p.prompt or "", p.role, -(p.end - p.start)))


# ------------------------------------------------------------------------------------ audio
def clip_audio(path: str, channel: int, plan: ClipPlan, pad: float, gap: float, duration: float,
               context: float = 1.0) -> tuple[np.ndarray, float]:
    """The clip's audio (pieces laid out by `plan.layout`, everything outside the IPUs zeroed) and
    the channel's noise floor (dB, 10th percentile of 8 ms frames over each piece plus `context` s
    either side: a conversation channel is silent while the other speaker talks, so this sees the
    floor). Each piece is read on its own, so memory follows the clip's length, not the stretch of
    the recording its pieces come from (listener tokens of a whole call can share one clip)."""
    layout = plan.layout(pad, gap)
    total = layout[-1][0] + (layout[-1][2] - layout[-1][1])
    x, energies, sr = None, [], None
    for offset, a, b in layout:
        c0, c1 = max(0.0, a - context), min(duration, b + context)
        audio, sr = read_window(path, c0, c1)
        raw = audio[channel].astype(np.float32)
        energies.append(frame_energy_db(raw[None, :], int(HOP_S * sr))[0])
        if x is None:
            x = np.zeros(int(round(total * sr)), np.float32)
        piece = raw[int(round((a - c0) * sr)): int(round((min(b, duration) - c0) * sr))].copy()
        keep = np.zeros(len(piece), bool)
        for s, e in plan.spans:
            keep[max(0, int((s - pad - a) * sr)): max(0, int((e + pad - a) * sr))] = True
        piece[~keep] = 0.0
        i = int(round(offset * sr))
        x[i: i + len(piece)] = piece[: len(x) - i]
    energy = np.concatenate(energies) if energies else np.zeros(0)
    floor = noise_floor_db(energy, default=-100.0)
    return x, floor


def clip_audios(plans: Sequence[ClipPlan], sources: Sequence[tuple[str, float]], pad: float, gap: float
                ) -> tuple[list[np.ndarray], list[float]]:
    """Each plan's clip audio and its channel's noise floor; `sources`: (analysis track, duration)."""
    audios, floors = [], []
    for p, (path, duration) in zip(plans, sources):
        audio, floor = clip_audio(path, p.channel, p, pad, gap, duration)
        audios.append(audio)
        floors.append(floor)
    return audios, floors
