"""Words per channel: batched Whisper over each channel's own speech, word/character timings.

1. **Clips** (`asr/plan.py`). A channel's IPUs (the spine's crosstalk-aware speech) are grouped into
   clips of up to `max_clip` s read from the leak-cancelled 16 kHz analysis track; audio outside the
   IPUs (plus `pad`) is zeroed, so the other speaker's leak and silent stretches never reach the
   decoder. IPUs shorter than `short_ipu` (listener tokens: "mm-hmm", "嗯") are decoded apart with a
   disfluent prompt, because Whisper drops them inside longer context.
2. **Batch** (`asr/engine.py`). Clips from every channel of every recording in the batch go through
   the engine together: one encoder pass per batch, recognition, then cross-attention alignment of
   the same encoder output. Only `batch_size` clips are in memory at a time. With `asr.engines` each
   clip goes to its language's engine (`asr/engines.py`), one call per engine per batch.
3. **Given transcripts** (STM/TextGrid/JSON/CSV, `duplexcorpus/transcripts.py`) are aligned instead
   of recognised (a Mandarin text one character per token: each character gets its own time); with
   `compare_transcripts` the clips are also recognised and the WER/CER between the two is recorded
   per utterance as a quality signal.
4. **Gates** (`asr/gates.py`). A clip is dropped when Whisper says no speech (`no_speech_prob` high
   and mean log-probability low), when its whole text is a known hallucination phrase or reads the
   prompt back, and a repetition loop is cut after its first occurrence. Everything dropped is
   written to `dropped.json` with its reason.
   **Re-decode before dropping** (`gates.failure`, `gates.next_attempt`): a clip that loops,
   compresses above 2.4, echoes its prompt, misses log-probability -1.0, or says nothing / no speech
   where the VAD is sure of the speech is decoded again, batched: a packed clip one IPU at a time
   (beam search), then Whisper's temperatures 0.2 ... 1.0 (best of 5 samples, seeded, a token budget
   by length); a low log-probability alone gets one sampled retry and is otherwise kept. A packed
   clip's IPU the VAD is sure of that got no word is decoded alone too. Each clips.json entry lists
   its retries (`failed`, `retries`, `missed_ipus`); a drop after retries lists them in dropped.json.
   Every IPU without words says why (`attributes.no_words_reason`, `AsrStage.no_words_reason`).
5. **Timing** (`asr/aligner.py`, `asr/timing.py`, `asr/ctc.py`). Words come from the CTC aligner
   where one is configured, else from cross-attention. Each word is kept inside its IPU, its start
   snapped forward to the first 8 ms frame above the channel's noise floor and its end back to the
   last loud frame; where two words touch, their shared boundary moves to the energy dip nearby.
   Words the aligner could not place (collapsed to < `min_word`) are spread over the gap between
   their neighbours in proportion to their length and flagged `interpolated`. No word is left
   without a time; each has a score.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from duplexcorpus.asr import codeswitch, gates
from duplexcorpus.asr.aligner import TextAligner
from duplexcorpus.asr.engine import Clip
from duplexcorpus.asr.plan import (CLIP_SECONDS, ClipPlan, batch_order, channel_clips, clip_audios, per_ipu,
                                   utterance_clip)
from duplexcorpus.records import Segment, load_segments, load_words, record_dicts
from duplexcorpus.stages.base import Output, Rejected, Resources, Stage, WorkItem
from duplexcorpus.stages.decrosstalk import DecrosstalkStage
from duplexcorpus.stages.diarize import DiarizeStage
from duplexcorpus.storage import write_json
from duplexcorpus.text import error_rate, join_text, join_words, to_simplified
from duplexcorpus.transcripts import TranscriptError, Utterance, find_transcript, read_transcript


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
    # (channel, IPU spans, no_words_reason) of each clip or IPU that ended: why its IPUs without
    # words have none
    outcomes: list[tuple[int, list[tuple[float, float]], str]] = field(default_factory=list)
    error: BaseException | None = None


@dataclass
class Tried:
    attempt: gates.Attempt
    decoded: object  # engine.Decoded
    audio: np.ndarray
    floor: float
    text: str
    words: list[dict]
    failure: str | None  # gates.failure


@dataclass
class Unit:
    """A clip (or one IPU of it) on its way through the re-decode cascade (`gates.next_attempt`)."""

    plan: ClipPlan
    entry: dict  # the clips.json entry of the first pass: every retry is listed under it
    attempt: gates.Attempt
    vad_sure: bool
    tried: list[Tried] = field(default_factory=list)
    clip: Clip | None = None  # its audio (and encoder output) from the first attempt, reused
    floor: float = 0.0


class AsrStage(Stage):
    name = "asr"
    version = "18"
    config_section = "asr"
    reads = ("decrosstalk", "ipus", "diarize")  # the IPUs as diarize leaves them (split per speaker)
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
        self.aligner = TextAligner.load(self.cfg)
        self.engine = self.aligner.engine

    def item_languages(self, item: WorkItem) -> set[str | None]:
        """The languages this recording's channels are decoded in (None: detected per clip)."""
        rec = item.rec()
        if self.cfg.language:
            return {self.cfg.language}
        return {ch.language or rec.language for ch in rec.channels} or {rec.language}

    def engines_used(self, item: WorkItem) -> dict[str, str]:
        """`asr.engines` entries this recording can reach: its channels' languages', or all of them
        where a channel's language is detected. Only these enter its cache key, so changing the
        Mandarin engine re-runs the Mandarin recordings only."""
        engines = dict(self.cfg.engines)
        langs = {lang if lang in self.cfg.languages else None for lang in self.item_languages(item)}
        return engines if None in langs else {k: v for k, v in engines.items() if k in langs}

    def key_section(self, item: WorkItem) -> dict | None:
        section = super().key_section(item)
        # no engine of this recording's languages listed: the key it had before `asr.engines` existed
        section.pop("engines", None)
        used = self.engines_used(item) if self.cfg.enabled and item.recording else {}
        if used:
            section["engines"] = used
        return section

    def cache_key(self, item: WorkItem) -> str:
        # a given transcript is an input: its content is part of the key
        key = super().cache_key(item)
        if self.cfg.enabled:  # the engines' weights (not the embedded Whisper's: pinned in code)
            from duplexcorpus.asr.engine import engine_identity
            from duplexcorpus.storage import stable_hash

            identity = engine_identity(self.cfg)
            key = stable_hash(key, identity) if identity else key
            if item.recording:
                for lang, spec in sorted(self.engines_used(item).items()):
                    identity = engine_identity(self.cfg, model=spec)
                    key = stable_hash(key, lang, identity) if identity else key
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
            st = ItemState(item, out, item.read(DiarizeStage.DIARIZED))
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
        plans = batch_order(plans)
        retry: list[Unit] = []
        for i in range(0, len(plans), self.cfg.batch_size):
            batch = plans[i: i + self.cfg.batch_size]
            live = [p for p in batch if states[p.item].error is None]
            try:
                retry += self.run_clips(live, states)
            except Exception as err:  # noqa: BLE001 - the recordings of a failed batch say why
                for p in live:
                    states[p.item].error = err
        self.redecode(retry, states)
        self.english_inside_mandarin(states)
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
        """The recording's clips: its given utterances to align (and, to compare, to recognise), else
        its channels' IPUs packed to recognise."""
        cfg = self.cfg
        by_channel: dict[int, list[tuple[float, float]]] = {}
        for seg in st.segments:
            if not seg.attributes.get("overlapped"):  # diarized speech under another's IPU: heard there
                by_channel.setdefault(seg.channel, []).append((seg.start, seg.end))
        plans = []
        if st.utterances:
            for u_idx, u in enumerate(st.utterances):
                lang = self.language_of(st, u.channel)
                clip = utterance_clip(k, u_idx, u.channel, u.start, u.end, u.text, by_channel.get(u.channel, []),
                                      lang, cfg.pad)
                if clip.end - clip.start > CLIP_SECONDS:
                    raise Rejected("bad_transcript", f"utterance at {u.start:.2f} s on channel {u.channel} is "
                                                     f"{clip.end - clip.start:.1f} s long; split it under 30 s")
                plans.append(clip)
                if cfg.compare_transcripts:
                    plans.append(dataclasses.replace(clip, prompt=self.prompt(lang, False), text=None, role="compare"))
            return plans
        for channel, spans in sorted(by_channel.items()):
            lang = self.language_of(st, channel)
            plans += channel_clips(k, channel, spans, lang, self.prompt(lang, False), self.prompt(lang, True),
                                   max_clip=cfg.max_clip, short_ipu=cfg.short_ipu, pad=cfg.pad, gap=cfg.pack_gap)
        return plans

    def run_clips(self, plans: list[ClipPlan], states: list[ItemState], units: list[Unit] | None = None
                  ) -> list[Unit]:
        """Decode one batch and keep what passes; return the units to decode again. `units`: the
        retries these plans are (all at one temperature), None: a first pass."""
        fresh = [k for k in range(len(plans)) if units is None or units[k].clip is None]
        items = [states[plans[k].item].item for k in fresh]
        sources = [(str(item.path(DecrosstalkStage.ANALYSIS)), item.rec().duration) for item in items]
        read = dict(zip(fresh, zip(*clip_audios([plans[k] for k in fresh], sources, self.cfg.pad, self.cfg.pack_gap))))
        clips, floors = [], []
        for k, p in enumerate(plans):
            if k in read:  # a unit's audio and encoder output are kept for its later attempts
                clips.append(Clip(read[k][0], p.language, p.prompt, p.text, keep_encoding=p.role == "asr"))
                floors.append(read[k][1])
            else:
                clips.append(units[k].clip)
                floors.append(units[k].floor)
        audios = [c.audio for c in clips]
        temperature = units[0].attempt.temperature if units else 0.0
        # retries get a token budget by their length (a loop stops early); first passes Whisper's own
        budget = gates.max_tokens(max(len(a) for a in audios) / 16_000) if units else None
        decoded = self.engine.run(clips, temperature=temperature, best_of=gates.BEST_OF, max_length=budget)
        th = gates.Thresholds.of(self.cfg)
        again: list[Unit] = []
        for k, (p, audio, floor, d) in enumerate(zip(plans, audios, floors, decoded)):
            st = states[p.item]
            t0 = max(0.0, p.start)
            text = to_simplified(d.text) if d.language == "zh" else d.text
            entry = dict(channel=p.channel, start=round(t0, 3), end=round(p.end, 3), role=p.role,
                         language=d.language, language_probability=round(d.language_probability, 3),
                         avg_logprob=round(d.avg_logprob, 3), no_speech_prob=round(d.no_speech_prob, 3),
                         prompt=p.prompt, text=text)
            if self.cfg.engines:  # which engine `asr.engines` chose (absent without it: outputs as before)
                entry["engine"] = d.engine
            if units is None:
                st.clips.append(entry)
            if p.role == "compare":
                ref = st.utterances[p.utterance].text
                st.compared.append(dict(utterance=p.utterance, channel=p.channel, start=t0, asr_text=text,
                                        given_text=ref, **error_rate(ref, text)))
                continue
            words = self.aligner.clip_words(d, audio, text)
            if p.role != "asr":
                st.words += self.aligner.place(p, audio, floor, d.language, words, source="transcript")
                continue
            unit = units[k] if units is not None else Unit(p, entry, gates.FIRST, self.vad_sure(st, p.spans))
            reason = gates.failure(text, words, d.no_speech_prob, d.avg_logprob, th, unit.vad_sure, p.prompt)
            unit.tried.append(Tried(unit.attempt, d, audio, floor, text, words, reason))
            unit.clip, unit.floor = clips[k], floor
            if units is not None:  # a retry: listed under its first pass
                unit.entry.setdefault("retries", []).append(dict(
                    entry, scope=unit.attempt.scope, temperature=unit.attempt.temperature,
                    compression_ratio=round(gates.compression_ratio(text), 3), failed=reason))
            elif reason is not None:
                entry["failed"] = reason
            if gates.next_attempt(unit.attempt, reason, len(p.spans)) is not None:
                again.append(unit)
            else:
                again += self.finish(st, unit)
        return again

    def redecode(self, units: list[Unit], states: list[ItemState]) -> None:
        """The cascade: each failed unit's next attempt (`gates.next_attempt`), batched by
        temperature, until every unit is accepted or has nothing left to try."""
        while units:
            todo: list[Unit] = []
            for u in units:
                if states[u.plan.item].error is not None:
                    continue
                last = u.tried[-1] if u.tried else None
                if last is None:  # a new per-IPU unit: its first attempt is set
                    todo.append(u)
                    continue
                nxt = gates.next_attempt(u.attempt, last.failure, len(u.plan.spans))
                st = states[u.plan.item]
                if nxt.scope == u.attempt.scope:
                    u.attempt = nxt
                    todo.append(u)
                elif last.failure == "repetition_loop" and (pieces := self.split_at_loop(st, u)) is not None:
                    todo += pieces
                else:  # the clip, cut into its IPUs
                    todo += [Unit(piece, u.entry, nxt, self.vad_sure(st, piece.spans))
                             for piece in per_ipu(u.plan, self.cfg.pad)]
            units = []
            by_temp: dict[float, list[Unit]] = {}
            for u in todo:
                by_temp.setdefault(u.attempt.temperature, []).append(u)
            for temp, group in sorted(by_temp.items()):
                order = {id(u.plan): u for u in group}
                plans = batch_order([u.plan for u in group])
                for i in range(0, len(plans), self.cfg.batch_size):
                    batch = [order[id(p)] for p in plans[i: i + self.cfg.batch_size]]
                    try:
                        units += self.run_clips([u.plan for u in batch], states, batch)
                    except Exception as err:  # noqa: BLE001 - the recordings of a failed batch say why
                        for u in batch:
                            states[u.plan.item].error = err

    def split_at_loop(self, st: ItemState, u: Unit) -> list[Unit] | None:
        """A packed clip that looped (`gates.loop_ipu`): the words of the IPUs before the loop are
        placed as decoded, the IPU the loop begins in is decoded alone, and the IPUs after it come
        back as one packed clip (`rest`). None: the loop begins after the clip's last IPU."""
        last, p, pad = u.tried[-1], u.plan, self.cfg.pad
        at = gates.loop_ipu(last.words, p.to_clip_spans(pad, self.cfg.pack_gap))
        if at is None or at >= len(p.spans):
            return None
        if at > 0:
            before = dataclasses.replace(p, spans=p.spans[:at])
            ends = before.to_clip_spans(pad, self.cfg.pack_gap)[-1][1] + self.cfg.pack_gap / 2
            words = [w for w in last.words if (w["start"] + w["end"]) / 2 <= ends]
            st.words += self.aligner.place(before, last.audio, last.floor, last.decoded.language, words,
                                           source="asr", text=last.text)
            u.entry.setdefault("kept_before_loop", []).append([round(p.spans[0][0], 3), round(p.spans[at - 1][1], 3)])
        s, e = p.spans[at]
        out = [Unit(dataclasses.replace(p, start=s - pad, end=e + pad, spans=[(s, e)]), u.entry,
                    gates.Attempt("ipu", 0.0), self.vad_sure(st, [(s, e)]))]
        if at + 1 < len(p.spans):
            spans = p.spans[at + 1:]
            out.append(Unit(dataclasses.replace(p, start=spans[0][0] - pad, end=spans[-1][1] + pad, spans=spans),
                            u.entry, gates.Attempt("rest", 0.0), self.vad_sure(st, spans)))
        return out

    def english_inside_mandarin(self, states: list[ItemState]) -> None:
        """Code-switching (asr/codeswitch.py): low-probability runs of Mandarin characters are heard
        again with the language left open; a run Whisper identifies as English and writes
        confidently in English is replaced by those English words. Every run tried is listed in
        clips.json (`role` codeswitch, `accepted`)."""
        cfg = self.cfg
        if not cfg.codeswitch or "en" not in cfg.languages:
            return
        todo: list[tuple[ClipPlan, codeswitch.Run]] = []
        for k, st in enumerate(states):
            if st.error is None and not st.utterances:
                ipus = [(s.channel, s.start, s.end) for s in st.segments]
                todo += [(ClipPlan(k, r.channel, r.start, r.end, [(r.start, r.end)], None, None, role="codeswitch"), r)
                         for r in codeswitch.suspect_runs(st.words, ipus)]
        replaced: dict[int, set[int]] = {}
        for i in range(0, len(todo), cfg.batch_size):
            batch = todo[i: i + cfg.batch_size]
            plans = [p for p, _ in batch]
            sources = [(str(states[p.item].item.path(DecrosstalkStage.ANALYSIS)), states[p.item].item.rec().duration)
                       for p in plans]
            try:
                audios, floors = clip_audios(plans, sources, cfg.pad, cfg.pack_gap)
                decoded = self.hear_as_english([Clip(a, None, None) for a in audios])
            except Exception as err:  # noqa: BLE001 - the recordings of a failed batch say why
                for p in plans:
                    states[p.item].error = err
                continue
            for (p, run), audio, floor, d in zip(batch, audios, floors, decoded):
                st = states[p.item]
                if isinstance(d, tuple):  # identified as another language: not decoded, Mandarin kept
                    st.clips.append(dict(channel=p.channel, start=p.start, end=p.end, role="codeswitch",
                                         language=d[0], language_probability=round(d[1], 3), text="",
                                         accepted=False, replaces="".join(st.words[r]["word"] for r in run.rows)))
                    continue
                words = self.aligner.clip_words(d, audio, d.text)
                keep = codeswitch.english_words(d.language, d.text, words, cfg.codeswitch_min_english,
                                                cfg.codeswitch_edge_floor)
                st.clips.append(dict(channel=p.channel, start=p.start, end=p.end, role="codeswitch",
                                     language=d.language, language_probability=round(d.language_probability, 3),
                                     avg_logprob=round(d.avg_logprob, 3), text=d.text, accepted=keep is not None,
                                     replaces="".join(st.words[r]["word"] for r in run.rows)))
                if keep is not None:
                    # placed as the Mandarin channel's words: Latin rows with language en, the
                    # punctuation apart (the character contract, asr/units.py)
                    english = self.aligner.place(p, audio, floor, "zh", keep, source="asr", text=d.text)
                    replaced.setdefault(p.item, set()).update(codeswitch.covered_rows(st.words, p.channel, english))
                    st.words += english
        for k, rows in replaced.items():
            states[k].words = [w for i, w in enumerate(states[k].words) if i not in rows]

    def hear_as_english(self, clips: list[Clip]) -> list:
        """Whisper with the language open on each run (the default engine, whatever `asr.engines`
        says): a run it identifies as English is decoded (a `Decoded`); any other gives its
        (language, probability) only, since only English replaces Mandarin (codeswitch.english_words),
        and most runs are Mandarin said unclearly: the decoder and aligner run only where they can
        matter, the encoder once per run."""
        engine = getattr(self.engine, "default", self.engine)
        if not hasattr(engine, "identify"):
            return engine.run(clips)
        heard: list = engine.identify(clips)
        english = [i for i, (language, _) in enumerate(heard) if language == "en"]
        for i, d in zip(english, engine.run([clips[i] for i in english]) if english else []):
            heard[i] = d
        return heard

    def vad_sure(self, st: ItemState, spans: list[tuple[float, float]]) -> bool:
        """Is the VAD sure these spans are speech (their IPUs' confidence, weighted by length)?"""
        total = conf = 0.0
        for seg in st.segments:
            for s, e in spans:
                o = min(seg.end, e) - max(seg.start, s)
                if o > 0:
                    total += o
                    conf += o * seg.confidence
        return total > 0 and conf / total >= gates.VAD_SURE

    def finish(self, st: ItemState, unit: Unit) -> list[Unit]:
        """A unit with nothing left to try: keep its accepted attempt (else the best one, gated),
        place its words, note why its IPUs without words have none. A packed clip whose accepted
        decode left an IPU the VAD is sure of without words sends that IPU back on its own."""
        p = unit.plan
        tried = unit.tried
        best = tried[-1] if tried[-1].failure is None else tried[gates.best_attempt(
            [t.failure for t in tried], [t.decoded.avg_logprob for t in tried])]
        retried = "retries" in unit.entry
        n_dropped = len(st.dropped)
        words = self.gate(st, p, best.decoded, best.text, best.words,
                          unit.entry["retries"] if retried else None)
        placed = self.aligner.place(p, best.audio, best.floor, best.decoded.language, words, source="asr",
                                    text=best.text)
        st.words += placed
        drop = st.dropped[-1]["reason"] if len(st.dropped) > n_dropped else None
        if drop is not None or not best.text.strip():
            st.outcomes.append((p.channel, list(p.spans), gates.no_words_reason(drop, retried)))
            return []
        if unit.attempt.scope not in gates.PACKED or len(p.spans) < 2:
            return []
        missed = [(s, e) for s, e in p.spans
                  if not any(s - 1e-3 <= (w["start"] + w["end"]) / 2 <= e + 1e-3 for w in placed)]
        back = []
        for piece in per_ipu(dataclasses.replace(p, spans=missed), self.cfg.pad) if missed else []:
            if self.vad_sure(st, piece.spans):
                unit.entry.setdefault("missed_ipus", []).append([round(piece.spans[0][0], 3), round(piece.spans[0][1], 3)])
                back.append(Unit(piece, unit.entry, gates.Attempt("ipu", 0.0), True))
        return back

    def gate(self, st: ItemState, p: ClipPlan, d, text: str, words: list[dict], retries: list[dict] | None = None
             ) -> list[dict]:
        """Drop what Whisper says without speech behind it (`asr/gates.py`); record the drop (with
        every retry made before it)."""
        speech = sum(e - s for s, e in p.spans)
        kept, drop = gates.gate(text, words, d.language, d.no_speech_prob, d.avg_logprob, speech,
                                gates.Thresholds.of(self.cfg), p.prompt)
        if drop is not None:
            st.dropped.append(dict(channel=p.channel, start=round(max(0.0, p.start), 3), end=round(p.end, 3),
                                   reason=drop.reason, text=join_text([w["word"] for w in drop.words]) or text,
                                   no_speech_prob=round(d.no_speech_prob, 3), avg_logprob=round(d.avg_logprob, 3),
                                   **drop.details))
            if retries is not None:
                st.dropped[-1]["retries"] = [{k: r[k] for k in ("scope", "temperature", "start", "end", "failed",
                                                               "avg_logprob", "no_speech_prob",
                                                               "compression_ratio", "text")} for r in retries]
        return kept

    # -- outputs ----------------------------------------------------------------------------------
    NO_WORDS_REASONS = ("no_speech", "hallucination_phrase", "repetition_loop", "gated_after_retries:<reason>",
                        "not_recognised", "not_in_transcript", "overlapped_speech")

    def no_words_reason(self, st: ItemState, seg: Segment) -> str:
        """Why an IPU has no words (`NO_WORDS_REASONS`):
        - `no_speech`: Whisper said nothing there, or its no-speech rule dropped the clip (the VAD not
          sure enough to doubt it, or alone the IPU still gave nothing);
        - `hallucination_phrase` / `repetition_loop`: the gate dropped the words, no retry was made;
        - `gated_after_retries:<reason>`: every re-decode failed too and the gate dropped the words of
          the one kept (reason: the gate's);
        - `not_recognised`: its clip had words, none of them in this IPU (and alone it gave none);
        - `not_in_transcript`: a given transcript has no text for it;
        - `overlapped_speech`: a diarized speaker's speech under another speaker's IPU on a shared
          channel (stages/diarize.py); its words are the ones recognised in that IPU."""
        if seg.attributes.get("overlapped"):
            return "overlapped_speech"
        if st.utterances:
            return "not_in_transcript"
        for channel, spans, reason in reversed(st.outcomes):
            if channel == seg.channel and any(min(e, seg.end) - max(s, seg.start) > 0 for s, e in spans):
                return reason
        return "not_recognised"

    def write(self, st: ItemState) -> None:
        words = sorted(st.words, key=lambda w: (w["channel"], w["start"]))
        segments = []
        for seg in st.segments:
            inside = [] if seg.attributes.get("overlapped") else \
                [w for w in words if w["channel"] == seg.channel and seg.start - 1e-3 <= (w["start"] + w["end"]) / 2 <= seg.end + 1e-3]
            for w in inside:
                w["segment_start"] = seg.start
                w["speaker_id"] = seg.speaker_id
            attrs = dict(seg.attributes)
            if self.cfg.enabled:
                attrs["text"] = join_words(inside)  # punctuation back after its unit
                attrs["words"] = len(inside)
                if inside:
                    attrs["language"] = max({w["language"] for w in inside},
                                            key=lambda lang: sum(w["language"] == lang for w in inside))
                    attrs["asr_score"] = round(float(np.mean([w["score"] for w in inside])), 4)
                    # the weakest words say more about an error than the mean (routing uses this)
                    attrs["asr_low"] = round(float(np.mean(sorted(w["score"] for w in inside)[:2])), 4)
                else:
                    attrs["no_words_reason"] = self.no_words_reason(st, seg)
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
