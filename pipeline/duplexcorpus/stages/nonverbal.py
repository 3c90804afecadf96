"""Non-verbal events per channel: laughter, breath, cough, sigh (YAMNet frame scores), leak-aware.

1. YAMNet (AudioSet; `nonverbal/yamnet.py`, model `nonverbal.model`) scores 0.96 s patches every
   `hop` s of each channel's 16 kHz analysis signal (leak-cancelled); patches where the channel
   never rises `active_db` above its floor are not run (silence costs nothing);
2. per type, the max over its AudioSet classes (`nonverbal/detect.py: SOUND_TYPES`) on the 31.25 Hz
   grid, hysteresis (`<type>_onset` / `_offset`), reaching as far as a scoring patch heard (half a
   patch around its centre), kept to sounding frames, gaps < `bridge` bridged;
3. leak-aware, with the crosstalk stage's attribution and measures: a span the crosstalk stage
   attributed to another channel, or one that another channel also hears as the same kind of
   sound and that is correlated with it at a leak delay (rho^2 >= crosstalk.rho2_threshold) while
   that channel is louder after level normalisation (or louder by crosstalk.dominance_db alone), is
   that channel's sound: it becomes a suppressed `crosstalk` event, not this speaker's laugh;
4. Whisper's captions (`nonverbal/captions.py`, `caption_model`): the channel's IPUs of at most
   `caption_max_duration` that YAMNet left unlabelled and ASR gave no confident words (none, listener
   tokens or fillers only, or a mean word score under `caption_max_asr_score`) are decoded once more
   with nothing suppressed; "[laughter]", "(笑)", "(coughs)" (unless Whisper's own silence rule
   discards the decode) make an event over the IPU, widened over
   the channel's own sounding frames next to it (source `whisper_caption`). The IPU is the crosstalk
   stage's, so the leak attribution holds;
5. each event names its channel and speaker; a laugh over the same speaker's words (laugh tokens
   such as "haha" excluded) gets `speech_laugh: true`; events scored below `review_high` are marked
   `uncertain` (review routes their windows).
Placed after ASR (it reads the words) and before events (the turn-taking rules read it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from duplexcorpus.audio import ChannelStream, frame_energy_db, noise_floor_db, read_window
from duplexcorpus.devices import resolve_device
from duplexcorpus.frames import ANALYSIS_RATE, FRAME_RATE, HOP
from duplexcorpus.nonverbal.captions import caption_type, grow_span
from duplexcorpus.nonverbal.detect import TYPES, SOUND_TYPES, frame_tracks, is_laugh_token, leak_source, speech_laugh, spans
from duplexcorpus.records import Event, load_events, record_dicts
from duplexcorpus.stages.asr import AsrStage
from duplexcorpus.stages.base import Output, Resources, Stage, WorkItem
from duplexcorpus.stages.crosstalk import CrosstalkStage, speech_level
from duplexcorpus.stages.decrosstalk import DecrosstalkStage
from duplexcorpus.stages.tracks import TracksStage
from duplexcorpus.stages.vad import VadStage
from duplexcorpus.storage import write_json
from duplexcorpus.text import is_backchannel_text, is_filler

LEAK_MAX_LAG_S = 0.3  # acoustic or phone echo paths (as sync and leakpath assume)
PATCH_SECONDS = 0.96  # YAMNet's patch


def _load_scores(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


class NonverbalStage(Stage):
    name = "nonverbal"
    version = "4"
    config_section = "nonverbal"
    reads = ("tracks", "decrosstalk", "vad", "crosstalk", "asr")
    EVENTS = Output("nonverbal.json", read=load_events,
                    description="laughter / breath / cough / sigh events, and suppressed leaks as crosstalk events")
    SCORES = Output("scores.npz", read=_load_scores,
                    description="float16 tracks [channels, types, frames] at 31.25 Hz; types = names")
    resources = Resources(cpus=1.0)
    uses_model = True

    def setup(self) -> None:
        from duplexcorpus.nonverbal.yamnet import Yamnet

        self.model = Yamnet.load(self.cfg.model, threads=self.cfg.threads) if self.cfg.enabled else None
        if self.model is not None:
            self.class_index = {t: self.model.index(SOUND_TYPES[t]) for t in TYPES}
        self.captioner = None
        if self.cfg.enabled and self.cfg.caption_model:
            from duplexcorpus.nonverbal.captions import WhisperCaptions

            self.captioner = WhisperCaptions(self.cfg.caption_model, resolve_device("auto"), self.cfg.threads,
                                             self.cfg.caption_batch)

    def process(self, item: WorkItem, out_dir: Path) -> None:
        rec = item.rec()
        probs = item.read(VadStage.PROBS).astype(np.float32)
        channels, frames = probs.shape
        tracks = np.zeros((channels, len(TYPES), frames), np.float32)
        events: list[Event] = []
        if self.cfg.enabled:
            events = self._detect(item, rec, probs, tracks)
        write_json(out_dir / self.EVENTS.file, record_dicts(events))
        np.savez_compressed(out_dir / self.SCORES.file, tracks=tracks.astype(np.float16), names=np.array(TYPES))

    def _detect(self, item: WorkItem, rec, probs: np.ndarray, tracks: np.ndarray) -> list[Event]:
        cfg, cross = self.cfg, self.workflow.crosstalk
        channels, frames = probs.shape
        leak = item.read(CrosstalkStage.LEAK)
        analysis = str(item.path(DecrosstalkStage.ANALYSIS))
        energy = np.stack([self._energy(analysis, c, frames) for c in range(channels)])
        sound = np.zeros((channels, frames), bool)
        for c in range(channels):
            floor = noise_floor_db(energy[c], default=0.0)
            sound[c] = energy[c] >= floor + cfg.active_db
        for c in range(channels):  # one channel at a time: memory stays flat with length
            audio = (b[0] for b in ChannelStream([(analysis, c)], ANALYSIS_RATE).blocks())
            fs = self.model.scores(audio, cfg.hop, sound[c], FRAME_RATE)
            tracks[c] = frame_tracks(fs.starts, fs.scores, self.class_index, frames, fs.patch_seconds, cfg.hop)
        norm = energy - speech_level(energy, probs)[:, None]
        words = item.read(AsrStage.WORDS)
        segments = item.read(AsrStage.SEGMENTS)
        tracks_path = str(item.path(TracksStage.AUDIO))
        events: list[Event] = []
        for c in range(channels):
            for k, kind in enumerate(TYPES):
                onset, offset = getattr(cfg, f"{kind}_onset"), getattr(cfg, f"{kind}_offset")
                reach = max(0.0, PATCH_SECONDS / 2 - cfg.hop / 2)  # a patch's evidence beyond its nearest frames
                for span in spans(tracks[c, k], sound[c], kind, onset, offset, cfg.bridge,
                                  cfg.min_duration, reach):
                    start, end = span.start / FRAME_RATE, min(span.end / FRAME_RATE, rec.duration)
                    audio, hop, max_lag = None, 0, 0
                    if channels > 1:
                        audio, sr = read_window(tracks_path, start, end)
                        hop, max_lag = int(round(sr / FRAME_RATE)), int(LEAK_MAX_LAG_S * sr)
                    owner = leak_source(c, span, tracks, norm, leak["mask"], leak["source"], audio, hop, max_lag,
                                        offset, cross.rho2_threshold, cfg.leak_margin_db, cross.dominance_db)
                    speaker = self._speaker(rec, segments, c, start, end)
                    if owner is not None:
                        events.append(Event(rec.recording_id, "crosstalk", c, round(start, 3), round(end, 3),
                                            round(span.score, 3), "nonverbal",
                                            {"source_channel": owner, "suppressed": True, "sound": kind}, speaker))
                        continue
                    attrs = {"score": round(span.score, 3), "uncertain": span.score < cfg.review_high}
                    if kind == "laughter":
                        own = [w for w in words if w.channel == c and w.speaker_id in (None, speaker)
                               and w.end > start and w.start < end]
                        attrs["speech_laugh"] = speech_laugh(start, end, own, cfg.speech_laugh_min_overlap)
                    events.append(Event(rec.recording_id, kind, c, round(start, 3), round(end, 3),
                                        round(span.score, 3), "yamnet", attrs, speaker))
        if self.captioner is not None:
            own_sound = sound & ~leak["mask"].astype(bool)[:, :frames] if channels > 1 else sound
            events += self._captioned(rec, analysis, segments, words, events, own_sound)
        return sorted(events, key=lambda e: (e.start, e.channel, e.type))

    def _caption_candidates(self, segments, words, events) -> list:
        """IPUs that may be a sound, not speech: short, not already a YAMNet event, and without
        confident words."""
        cfg = self.cfg
        out = []
        for s in segments:
            if s.duration > cfg.caption_max_duration:
                continue
            heard = sum(max(0.0, min(s.end, e.end) - max(s.start, e.start)) for e in events
                        if e.channel == s.channel and e.type in TYPES)
            if heard >= 0.5 * s.duration:
                continue  # YAMNet already named it
            text = (s.attributes.get("text") or "").strip()
            score = s.attributes.get("asr_score")
            if (not text or is_backchannel_text(text) or all(is_filler(t) or is_laugh_token(t) for t in text.split())
                    or (score is not None and score < cfg.caption_max_asr_score)):
                out.append(s)
        return out

    def _captioned(self, rec, analysis: str, segments, words, events, own_sound: np.ndarray) -> list[Event]:
        """Events from Whisper's captions of the candidate IPUs, one decode per IPU (batched per language)."""
        cfg = self.cfg
        candidates = self._caption_candidates(segments, words, events)
        by_language: dict[str, list] = {}
        for s in candidates:
            langs = [w.language for w in words if w.channel == s.channel and w.end > s.start and w.start < s.end
                     and w.language]
            lang = max(set(langs), key=langs.count) if langs else (
                rec.channels[s.channel].language or rec.language or "en")
            by_language.setdefault(lang, []).append(s)
        bridge = max(1, int(round(cfg.bridge * FRAME_RATE)))
        out: list[Event] = []
        for lang, segs in by_language.items():
            clips = [read_window(analysis, max(0.0, s.start - 0.2), min(rec.duration, s.end + 0.2))[0][s.channel]
                     for s in segs]
            for s, cap in zip(segs, self.captioner.captions(clips, lang)):
                kind = caption_type(cap.text)
                if kind is None or cap.silent(cfg.caption_no_speech_threshold, cfg.caption_log_prob_threshold):
                    continue
                same = [x for x in segments if x.channel == s.channel and x is not s]
                before = max((int(round(x.end * FRAME_RATE)) for x in same if x.end <= s.start), default=0)
                after = min((int(round(x.start * FRAME_RATE)) for x in same if x.start >= s.end),
                            default=own_sound.shape[1])
                a, b = grow_span(int(round(s.start * FRAME_RATE)), int(round(s.end * FRAME_RATE)),
                                 own_sound[s.channel], before, after, bridge)
                attrs = {"score": cap.confidence, "uncertain": cap.confidence < cfg.review_high, "caption": cap.text,
                         "no_speech_prob": cap.no_speech_prob, "asr_text": s.attributes.get("text") or ""}
                if kind == "laughter":
                    attrs["speech_laugh"] = False  # its IPU had no confident words
                out.append(Event(rec.recording_id, kind, s.channel, round(a / FRAME_RATE, 3),
                                 round(min(b / FRAME_RATE, rec.duration), 3), cap.confidence, "whisper_caption",
                                 attrs, s.speaker_id))
        return out

    @staticmethod
    def _energy(path: str, channel: int, frames: int) -> np.ndarray:
        """Frame energy (dB) of one analysis channel on the VAD grid (the crosstalk stage keeps none
        for one-channel recordings)."""
        parts, carry = [], np.zeros((1, 0), np.float32)
        for block in ChannelStream([(path, channel)], ANALYSIS_RATE).blocks():
            block = np.concatenate([carry, block], axis=1)
            usable = (block.shape[1] // HOP) * HOP  # whole frames only; the rest waits for the next block
            carry = block[:, usable:]
            parts.append(frame_energy_db(block[:, :usable], HOP))
        out = np.concatenate(parts, axis=1)[0] if parts else np.zeros(0)
        return np.pad(out[:frames], (0, max(0, frames - len(out))), constant_values=-120.0)

    @staticmethod
    def _speaker(rec, segments, channel: int, start: float, end: float) -> str:
        """The channel's speaker; on a shared (diarized) channel, the speaker of the IPU it overlaps most."""
        best, speaker = 0.0, rec.speaker(channel)
        for s in segments:
            if s.channel == channel and s.speaker_id:
                overlap = min(end, s.end) - max(start, s.start)
                if overlap > best:
                    best, speaker = overlap, s.speaker_id
        return speaker
