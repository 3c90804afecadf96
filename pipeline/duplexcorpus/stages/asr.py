"""Words per channel: batched Whisper over each channel's own speech, word/character timings.

1. **Clips.** A channel's IPUs (the spine's crosstalk-aware speech) are grouped into clips of up
   to `max_clip` s read from the leak-cancelled 16 kHz analysis track; audio outside the IPUs (plus
   `pad`) is zeroed, so the other speaker's leak and silent stretches never reach the decoder.
   IPUs shorter than `short_ipu` (listener tokens: "mm-hmm", "嗯") are decoded alone with a
   disfluent prompt, because Whisper drops them inside longer context.
2. **Batch.** Clips from every channel of every recording in the batch go through the engine
   together (`pipeline/whisper.py`): one encoder pass per batch, recognition, then cross-attention
   alignment of the same encoder output. Only `batch_size` clips are in memory at a time.
3. **Given transcripts** (STM/TextGrid/JSON/CSV, `pipeline/transcripts.py`) are aligned instead of
   recognised; with `compare_transcripts` the clips are also recognised and the WER/CER between the
   two is recorded per utterance as a quality signal.
4. **Gates.** A clip is dropped when Whisper says no speech (`no_speech_prob` high and mean
   log-probability low), when its whole text is a known hallucination phrase, and a repetition
   loop is cut after its first occurrence. Everything dropped is written to `dropped.json` with
   its reason.
5. **Timing.** Each word is kept inside its IPU, its start snapped forward to the first 8 ms frame
   above the channel's noise floor (cross-attention starts absorb the preceding pause) and its end
   back to the last loud frame; where two words touch, their shared boundary moves to the energy
   dip nearby (cross-attention boundaries sit on 20 ms steps and lean early). Words the aligner
   could not place (collapsed to < `min_word`) are spread over the gap between their neighbours in
   proportion to their length and flagged `interpolated`. No word is left without a time; each
   has a score.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from duplexcorpus.audio import frame_energy_db, read_window
from duplexcorpus.devices import resolve_device
from duplexcorpus.records import Segment, load_segments, load_words, record_dicts
from duplexcorpus.stages.base import Output, Rejected, Resources, Stage, WorkItem
from duplexcorpus.stages.decrosstalk import DecrosstalkStage
from duplexcorpus.stages.ipus import IpuStage
from duplexcorpus.storage import write_json
from duplexcorpus.text import error_rate, hallucination_phrase, join_text, repetition_loop, to_simplified, units
from duplexcorpus.transcripts import TranscriptError, Utterance, find_transcript, read_transcript

RATE = 16_000
HOP_S = 0.008


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


@dataclass
class ItemState:
    item: WorkItem
    out_dir: Path
    segments: list[Segment]
    utterances: list[Utterance] = field(default_factory=list)
    words: list[dict] = field(default_factory=list)
    clips: list[dict] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)
    compared: list[dict] = field(default_factory=list)
    error: BaseException | None = None


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
    floor = float(np.percentile(energy, 10)) if len(energy) else -100.0
    return x, floor


# ------------------------------------------------------------------------------------ timing
def place_words(words: list[dict], spans: list[tuple[float, float]], energy: np.ndarray, t0: float,
                loud_thr: float, min_word: float) -> list[dict]:
    """Keep each word inside its IPU, snap it to the loud frames, interpolate what is unplaced."""
    spans = sorted(spans)
    placed = []
    for w in words:
        s, e = w["start"], w["end"]
        if s is not None and e is not None and e > s:
            span = max(spans, key=lambda sp: (min(sp[1], e) - max(sp[0], s), -abs(sp[0] - s)))
            s, e = min(max(s, span[0]), span[1]), min(max(e, span[0]), span[1])
            i0, i1 = int((s - t0) / HOP_S), int(np.ceil((e - t0) / HOP_S))
            loud = np.flatnonzero(energy[max(0, i0): max(0, i1)] >= loud_thr)
            if len(loud):
                s = max(s, t0 + (max(0, i0) + loud[0]) * HOP_S)
                e = min(e, t0 + (max(0, i0) + loud[-1] + 1) * HOP_S)
        ok = s is not None and e is not None and e - s >= min_word
        placed.append(dict(w, start=s if ok else None, end=e if ok else None, interpolated=not ok))
    # keep order: a word starts no earlier than the previous one ended
    last_end = None
    for w in placed:
        if w["start"] is None:
            continue
        if last_end is not None and w["start"] < last_end:
            w["start"] = last_end
            if w["end"] - w["start"] < min_word:
                w.update(start=None, end=None, interpolated=True)
                continue
        last_end = w["end"]
    extend_ends(placed, spans, energy >= loud_thr, t0)
    snap_joins(placed, energy, t0)
    return clamp_to_spans(interpolate(placed, spans), spans, min_word)


def clamp_to_spans(words: list[dict], spans: list[tuple[float, float]], min_word: float) -> list[dict]:
    """Every word ends up inside one IPU (interpolation can spread words over a gap between two)."""
    for w in words:
        mid = (w["start"] + w["end"]) / 2
        a, b = min(spans, key=lambda sp: 0.0 if sp[0] <= mid <= sp[1] else min(abs(mid - sp[0]), abs(mid - sp[1])))
        s, e = min(max(w["start"], a), b), min(max(w["end"], a), b)
        if e - s < min(min_word, b - a):
            s = min(max(a, s), b - min(min_word, b - a))
            e = s + min(min_word, b - a)
        w["start"], w["end"] = s, e
    return words


def snap_joins(words: list[dict], energy: np.ndarray, t0: float, reach: float = 0.06) -> None:
    """Where two words touch (connected speech), move their shared boundary to the energy dip
    within `reach` of it: cross-attention boundaries sit on 20 ms steps and lean early."""
    timed = [w for w in words if w["start"] is not None]
    k = int(round(reach / HOP_S))
    for a, b in zip(timed[:-1], timed[1:]):
        if abs(b["start"] - a["end"]) > HOP_S:
            continue
        i = int(round((a["end"] - t0) / HOP_S))
        lo, hi = max(i - k, int(round((a["start"] - t0) / HOP_S)) + 1), min(i + k, int(round((b["end"] - t0) / HOP_S)) - 1)
        if hi <= lo or hi > len(energy):
            continue
        j = lo + int(np.argmin(energy[lo:hi]))
        a["end"] = b["start"] = t0 + j * HOP_S


def extend_ends(words: list[dict], spans: list[tuple[float, float]], loud: np.ndarray, t0: float,
                max_quiet: float = 0.06) -> None:
    """Cross-attention ends come early (the alignment hops to the next token at its onset). Carry
    each end forward through the speech that follows it, up to the next word's start or the IPU's
    end, stopping at the first quiet stretch longer than `max_quiet` (a real pause)."""
    timed = [w for w in words if w["start"] is not None]
    for k, w in enumerate(timed):
        span_end = min((e for s, e in spans if s - 1e-6 <= w["start"] <= e + 1e-6), default=w["end"])
        limit = min(timed[k + 1]["start"], span_end) if k + 1 < len(timed) else span_end
        j, stop = int(round((w["end"] - t0) / HOP_S)), int(round((limit - t0) / HOP_S))
        quiet, last_loud = 0, j
        while j < min(stop, len(loud)):
            if loud[j]:
                quiet, last_loud = 0, j + 1
            else:
                quiet += 1
                if quiet * HOP_S > max_quiet:
                    break
            j += 1
        w["end"] = max(w["end"], min(limit, t0 + last_loud * HOP_S))


def interpolate(words: list[dict], spans: list[tuple[float, float]]) -> list[dict]:
    """Give runs of unplaced words the time between their placed neighbours (or the IPU edges), in
    proportion to their length in characters."""
    n = len(words)
    i = 0
    while i < n:
        if words[i]["start"] is not None:
            i += 1
            continue
        j = i
        while j < n and words[j]["start"] is None:
            j += 1
        left = words[i - 1]["end"] if i > 0 else spans[0][0]
        right = words[j]["start"] if j < n else spans[-1][1]
        if i == 0 and j < n:  # leading run: the IPU that holds the next placed word
            left = max((sp[0] for sp in spans if sp[0] <= right), default=spans[0][0])
        if j == n and i > 0:  # trailing run: to the end of the IPU of the previous word
            right = min((sp[1] for sp in spans if sp[1] >= left), default=spans[-1][1])
        right = max(right, left + 0.01 * (j - i))
        weights = np.array([max(1, len(words[k]["word"])) for k in range(i, j)], float)
        edges = left + (right - left) * np.concatenate([[0], np.cumsum(weights) / weights.sum()])
        for k, (a, b) in zip(range(i, j), zip(edges[:-1], edges[1:])):
            words[k].update(start=float(a), end=float(b), interpolated=True)
        i = j
    return words


# -------------------------------------------------------------------------------------- stage
class AsrStage(Stage):
    name = "asr"
    version = "9"
    config_section = "asr"
    reads = ("decrosstalk", "ipus")
    SEGMENTS = Output("segments.json", read=load_segments, description="the IPUs with their text in attributes")
    WORDS = Output("words.json", read=load_words, description="Word records (characters for Mandarin)")
    DROPPED = Output("dropped.json", read=lambda p: json.loads(p.read_text()), description="what the gates removed, and why")
    CLIPS = Output("clips.json", read=lambda p: json.loads(p.read_text()), description="every decoded clip")
    TRANSCRIPT_CHECK = Output("transcript_check.json", read=lambda p: json.loads(p.read_text()), optional=True,
                              description="WER/CER of ASR against a given transcript")
    resources = Resources(cpus=1.0)
    uses_model = True

    def setup(self) -> None:
        self.engine = None
        if not self.cfg.enabled:
            return
        from duplexcorpus.whisper import WhisperEngine

        device = resolve_device(self.cfg.device)
        compute = self.cfg.compute_type if self.cfg.compute_type != "auto" else ("float16" if device == "cuda" else "int8")
        self.device = device
        self.engine = WhisperEngine(self.cfg.model, device, compute, self.cfg.threads, self.cfg.languages,
                                    self.cfg.beam_size)
        self.aligners: dict[str, tuple] = {}  # language -> (model, metadata), loaded on first use

    def ctc_words(self, language: str, audio: np.ndarray, text: str) -> list[dict] | None:
        """Words from whisperx.align with the workflow's wav2vec2 aligner for `language` (None when
        no aligner is configured). Words it cannot place come back without times."""
        path = getattr(self.cfg, f"aligner_{language}", None)
        if not path or not text.strip():
            return None
        import whisperx

        if language not in self.aligners:
            if not Path(path).is_dir():
                raise Rejected("aligner_missing", f"asr.aligner_{language}: {path} is not a local folder")
            self.aligners[language] = whisperx.load_align_model(language, self.device, model_name=path,
                                                                model_cache_only=True)
        model, meta = self.aligners[language]
        with _one_sentence_splitter():
            result = whisperx.align([{"start": 0.0, "end": len(audio) / RATE, "text": text}], model, meta,
                                    audio.astype(np.float32), self.device)
        return [dict(word=w["word"], start=w.get("start"), end=w.get("end"), score=round(float(w.get("score", 0.0)), 4))
                for w in result["word_segments"]]

    def cache_key(self, item: WorkItem) -> str:
        # a given transcript is an input: its content is part of the key
        key = super().cache_key(item)
        if item.recording and self.cfg.enabled:
            path = find_transcript(item.rec(), self.cfg.transcripts)
            if path is not None:
                from duplexcorpus.storage import file_sha256, stable_hash

                key = stable_hash(key, str(path), file_sha256(path))
        return key

    # -- the batch --------------------------------------------------------------------------------
    def process_batch(self, items: list[WorkItem], out_dirs: list[Path]) -> list[BaseException | None]:
        states = []
        for item, out in zip(items, out_dirs):
            st = ItemState(item, out, item.read(IpuStage.SEGMENTS))
            if self.cfg.enabled:
                try:
                    path = find_transcript(item.rec(), self.cfg.transcripts)
                    if path is not None:
                        st.utterances = read_transcript(path, item.rec())
                except TranscriptError as err:
                    st.error = Rejected("bad_transcript", str(err))
            states.append(st)
        plans = []
        for k, st in enumerate(states):
            if st.error is None and self.cfg.enabled:
                try:
                    plans += self.plan(k, st)
                except Rejected as err:
                    st.error = err
        # clips of one language together (alignment runs per language), long ones first
        plans.sort(key=lambda p: (p.language or "~", p.prompt or "", p.role, -(p.end - p.start)))
        for i in range(0, len(plans), self.cfg.batch_size):
            batch = plans[i: i + self.cfg.batch_size]
            live = [p for p in batch if states[p.item].error is None]
            try:
                self.run_clips(live, states)
            except Exception as err:  # noqa: BLE001 - the recordings of a failed batch say why
                for p in live:
                    states[p.item].error = err
        errors: list[BaseException | None] = []
        for st in states:
            if st.error is None:
                try:
                    self.write(st)
                except Exception as err:  # noqa: BLE001
                    st.error = err
            errors.append(st.error)
        return errors

    def language_of(self, st: ItemState, channel: int) -> str | None:
        rec = st.item.rec()
        lang = self.cfg.language or rec.channels[channel].language or rec.language
        return lang if lang in self.cfg.languages else None

    def prompt(self, language: str | None, short: bool) -> str | None:
        if language is None:
            return None
        text = getattr(self.cfg, f"{'filler_' if short else ''}prompt_{language}", "")
        return text or None

    def plan(self, k: int, st: ItemState) -> list[ClipPlan]:
        cfg = self.cfg
        plans = []
        by_channel: dict[int, list[tuple[float, float]]] = {}
        for seg in st.segments:
            by_channel.setdefault(seg.channel, []).append((seg.start, seg.end))
        if st.utterances:  # align the given text; optionally recognise the same audio to compare
            for u_idx, u in enumerate(st.utterances):
                spans = [(max(s, u.start - cfg.pad), min(e, u.end + cfg.pad)) for s, e in by_channel.get(u.channel, [])
                         if s < u.end + cfg.pad and e > u.start - cfg.pad] or [(u.start, u.end)]
                start, end = min(s for s, _ in spans) - cfg.pad, max(e for _, e in spans) + cfg.pad
                if end - start > 30.0:
                    raise Rejected("bad_transcript", f"utterance at {u.start:.2f} s on channel {u.channel} is "
                                                     f"{end - start:.1f} s long; split it under 30 s")
                lang = self.language_of(st, u.channel)
                plans.append(ClipPlan(k, u.channel, start, end, spans, lang, None, u.text, "transcript", u_idx))
                if cfg.compare_transcripts:
                    plans.append(ClipPlan(k, u.channel, start, end, spans, lang, self.prompt(lang, False),
                                          None, "compare", u_idx))
            return plans
        for channel, spans in sorted(by_channel.items()):
            lang = self.language_of(st, channel)
            for group, short in group_ipus(spans, cfg.max_clip, cfg.short_ipu, cfg.pad, cfg.pack_gap):
                plans.append(ClipPlan(k, channel, group[0][0] - cfg.pad, group[-1][1] + cfg.pad, group, lang,
                                      self.prompt(lang, short), packed=True))
        return plans

    def run_clips(self, plans: list[ClipPlan], states: list[ItemState]) -> None:
        from duplexcorpus.whisper import Clip

        items = [states[p.item].item for p in plans]
        audios, floors = self.clip_audios(plans, [(str(item.path(DecrosstalkStage.ANALYSIS)), item.rec().duration) for item in items])
        decoded = self.engine.run([Clip(a, p.language, p.prompt, p.text) for a, p in zip(audios, plans)])
        for p, audio, floor, d in zip(plans, audios, floors, decoded):
            st = states[p.item]
            t0 = max(0.0, p.start)
            text = to_simplified(d.text) if d.language == "zh" else d.text
            clip_info = dict(channel=p.channel, start=round(t0, 3), end=round(p.end, 3), role=p.role,
                             language=d.language, language_probability=round(d.language_probability, 3),
                             avg_logprob=round(d.avg_logprob, 3), no_speech_prob=round(d.no_speech_prob, 3),
                             prompt=p.prompt, text=text)
            st.clips.append(clip_info)
            if p.role == "compare":
                ref = st.utterances[p.utterance].text
                st.compared.append(dict(utterance=p.utterance, channel=p.channel, start=t0, asr_text=text,
                                        given_text=ref, **error_rate(ref, text)))
                continue
            words = self.clip_words(d, audio, text)
            if p.role == "asr":
                words = self.gate(st, p, d, text, words)
            st.words += self.recording_words(p, audio, floor, d.language, words,
                                             source="transcript" if p.text else "asr")

    def clip_audios(self, plans: list[ClipPlan], sources: list[tuple[str, float]]) -> tuple[list, list]:
        """Each plan's clip audio and its channel's noise floor; `sources`: (analysis track, duration)."""
        audios, floors = [], []
        for p, (path, duration) in zip(plans, sources):
            audio, floor = clip_audio(path, p.channel, p, self.cfg.pad, self.cfg.pack_gap, duration)
            audios.append(audio)
            floors.append(floor)
        return audios, floors

    def clip_words(self, d, audio: np.ndarray, text: str) -> list[dict]:
        """The decoded clip's words in clip time: from the CTC aligner when one is configured for
        the language, else from Whisper's cross-attention alignment."""
        words = self.ctc_words(d.language, audio, text)
        if words is None:
            words = [dict(word=to_simplified(w.word) if d.language == "zh" else w.word, start=w.start,
                          end=w.end, score=round(w.probability, 4)) for w in d.words]
        return words

    def recording_words(self, p: ClipPlan, audio: np.ndarray, floor: float, language: str, words: list[dict],
                        source: str) -> list[dict]:
        """Placement works in clip time, on the clip's own energy; then back to recording time."""
        cfg = self.cfg
        if not words:
            return []
        energy = frame_energy_db(audio[None, :], int(HOP_S * RATE))[0]
        words = place_words(words, p.to_clip_spans(cfg.pad, cfg.pack_gap), energy, 0.0,
                            floor + cfg.snap_floor_db, cfg.min_word)
        out = []
        for w in words:
            mid = p.to_recording((w["start"] + w["end"]) / 2, cfg.pad, cfg.pack_gap)
            shift = mid - (w["start"] + w["end"]) / 2  # one piece per word: a plain shift
            out.append(dict(channel=p.channel, language=language, source=source, word=w["word"],
                            start=round(w["start"] + shift, 3), end=round(w["end"] + shift, 3),
                            score=w["score"], interpolated=bool(w["interpolated"])))
        return out

    def align_texts(self, requests: list[TextToAlign]) -> list[list[dict]]:
        """Word times for texts that someone wrote for a stretch of one channel (an annotator's
        corrected transcript): the given-transcript path of this stage, in batches. Words come
        back in recording time, inside the stretch, `source` = "human"."""
        from duplexcorpus.whisper import Clip

        cfg = self.cfg
        out: list[list[dict]] = []
        for i in range(0, len(requests), cfg.batch_size):
            batch = requests[i: i + cfg.batch_size]
            plans = []
            for k, r in enumerate(batch):
                start, end = r.spans[0][0] - cfg.pad, r.spans[-1][1] + cfg.pad
                if end - start > 30.0:
                    raise ValueError(f"text to align spans {end - start:.1f} s; a Whisper clip holds 30 s")
                plans.append(ClipPlan(k, r.channel, start, end, list(r.spans), r.language, None, r.text, "transcript"))
            audios, floors = self.clip_audios(plans, [(r.audio_path, r.duration) for r in batch])
            decoded = self.engine.run([Clip(a, p.language, None, p.text) for a, p in zip(audios, plans)])
            for p, audio, floor, d in zip(plans, audios, floors, decoded):
                out.append(self.recording_words(p, audio, floor, d.language, self.clip_words(d, audio, p.text),
                                                source="human"))
        return out

    def gate(self, st: ItemState, p: ClipPlan, d, text: str, words: list[dict]) -> list[dict]:
        """Drop what Whisper says without speech behind it; record every drop with its reason."""
        cfg = self.cfg
        speech = sum(e - s for s, e in p.spans)

        def drop(reason: str, dropped_words: list[dict], **details) -> None:
            st.dropped.append(dict(channel=p.channel, start=round(max(0.0, p.start), 3), end=round(p.end, 3),
                                   reason=reason, text=join_text([w["word"] for w in dropped_words]) or text,
                                   no_speech_prob=round(d.no_speech_prob, 3), avg_logprob=round(d.avg_logprob, 3),
                                   **details))

        if not text.strip():
            return []
        if d.no_speech_prob > cfg.no_speech_threshold and d.avg_logprob < cfg.logprob_threshold:
            drop("no_speech", words)
            return []
        weak = speech < cfg.weak_clip or d.avg_logprob < cfg.logprob_threshold
        phrase = hallucination_phrase(text, d.language, weak)
        if phrase is not None:
            drop("hallucination_phrase", words, phrase=phrase)
            return []
        tokens = [units(w["word"])[0] if units(w["word"]) else w["word"] for w in words]
        loop = repetition_loop(tokens)
        if loop is not None:
            start, n = loop
            keep = start + n
            drop("repetition_loop", words[keep:], ngram=" ".join(tokens[start:start + n]))
            words = words[:keep]
        return words

    # -- outputs ----------------------------------------------------------------------------------
    def write(self, st: ItemState) -> None:
        words = sorted(st.words, key=lambda w: (w["channel"], w["start"]))
        segments = []
        for seg in st.segments:
            inside = [w for w in words if w["channel"] == seg.channel and seg.start - 1e-3 <= (w["start"] + w["end"]) / 2 <= seg.end + 1e-3]
            for w in inside:
                w["segment_start"] = seg.start
                w["speaker_id"] = seg.speaker_id
            attrs = dict(seg.attributes)
            if self.cfg.enabled:
                attrs["text"] = join_text([w["word"] for w in inside])
                attrs["words"] = len(inside)
                if inside:
                    attrs["language"] = max({w["language"] for w in inside},
                                            key=lambda lang: sum(w["language"] == lang for w in inside))
                    attrs["asr_score"] = round(float(np.mean([w["score"] for w in inside])), 4)
                    # the weakest words say more about an error than the mean (routing uses this)
                    attrs["asr_low"] = round(float(np.mean(sorted(w["score"] for w in inside)[:2])), 4)
            segments.append(dataclasses.replace(seg, attributes=attrs))
        for w in words:  # a word outside every IPU (given text beyond VAD): its nearest IPU
            if "segment_start" not in w:
                same = [s for s in st.segments if s.channel == w["channel"]]
                nearest = min(same, key=lambda s: abs(s.start - w["start"])) if same else None
                w["segment_start"] = nearest.start if nearest else None
                w["speaker_id"] = nearest.speaker_id if nearest else st.item.rec().speaker(w["channel"])
        if st.compared:
            summary = error_rate(" ".join(c["given_text"] for c in st.compared),
                                 " ".join(c["asr_text"] for c in st.compared))
            write_json(st.out_dir / self.TRANSCRIPT_CHECK.file, {"summary": summary, "utterances": st.compared})
        write_json(st.out_dir / self.SEGMENTS.file, record_dicts(segments))
        write_json(st.out_dir / self.WORDS.file, words)
        write_json(st.out_dir / self.DROPPED.file, st.dropped)
        write_json(st.out_dir / self.CLIPS.file, st.clips)


@contextlib.contextmanager
def _one_sentence_splitter():
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

