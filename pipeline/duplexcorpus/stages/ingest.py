"""Ingest: probe and validate each input, join its metadata, hash it.

Every problem becomes a specific reason code (see schemas/v1/quarantine.arrow.json); the recording
is quarantined and the run goes on.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from duplexcorpus import audio
from duplexcorpus.inputs import path_problem
from duplexcorpus.records import ChannelInfo, Recording
from duplexcorpus.stages.base import Output, Rejected, Stage, WorkItem
from duplexcorpus.storage import file_sha256, stable_hash, write_json


class IngestStage(Stage):
    name = "ingest"
    version = "2"  # 2: wider input checks (silence, DC, copies, links, ...)
    config_section = "validation"
    RECORDING = Output("recording.json", read=lambda p: json.loads(p.read_text()),
                       description="the validated Recording (channels, speakers, warnings) as a row")

    def cache_key(self, item: WorkItem) -> str:
        # content is not hashed yet: key on the files' identity (path, size, mtime) and metadata
        stats = []
        for path in item.input["paths"]:
            try:
                st = os.stat(path)
                stats.append((path, st.st_size, st.st_mtime_ns))
            except OSError:
                stats.append((path, None, None))
        return stable_hash(self.name, self.version, self.workflow.tunable("validation"), item.input, stats)

    def process(self, item: WorkItem, out_dir: Path) -> None:
        write_json(out_dir / self.RECORDING.file, self.validate(item.input).row(split=None))

    def validate(self, inp: dict) -> Recording:
        cfg = self.cfg
        probes = []
        for path in inp["paths"]:
            check_file(path)
            try:
                probes.append(audio.probe(path))
            except (sf.LibsndfileError, RuntimeError) as err:
                raise Rejected("unreadable", f"{path}: not decodable audio ({err})") from None
        for p in probes:
            if p.frames == 0:
                raise Rejected("empty", f"{p.path}: contains no audio frames")
            if not cfg.min_sample_rate <= p.sample_rate <= cfg.max_sample_rate:
                raise Rejected("bad_sample_rate", f"{p.path}: sample rate {p.sample_rate} Hz is outside "
                               f"[{cfg.min_sample_rate}, {cfg.max_sample_rate}]")
        sources = [tuple(s) for s in inp["sources"]] or [(probes[0].path, c) for c in range(probes[0].channels)]
        by_path = {p.path: p for p in probes}
        for path, ch in sources:
            if ch >= by_path[path].channels:
                raise Rejected("bad_channel_count", f"{path}: channel {ch} requested but the file has "
                               f"{by_path[path].channels}")
        if len(sources) > cfg.max_channels:
            raise Rejected("bad_channel_count", f"{len(sources)} channels; at most {cfg.max_channels} "
                           "close-talk channels are supported (set validation.max_channels)")
        warnings: list[str] = []
        analyses = {p.path: self._analyse(p, warnings) for p in probes}
        silent = [k for k, (path, ch) in enumerate(sources) if analyses[path].rms[ch] < SILENCE_RMS]
        if len(silent) == len(sources):
            levels = ", ".join(f"{_name(path)} channel {ch} {_dbfs(analyses[path].peak[ch])}"
                               for path, ch in sources)
            raise Rejected("silent", f"every channel is digital silence (below {SILENCE_DBFS:.0f} dBFS; peak {levels})")
        for k in silent:
            path, ch = sources[k]
            warnings.append(f"dead_channel: {_name(path)} channel {ch} is silent for the whole recording "
                            f"(rms {_dbfs(analyses[path].rms[ch])}, below {SILENCE_DBFS:.0f} dBFS); the other "
                            "channel(s) are kept")
        for path, ch in dict.fromkeys(sources):
            dc = _dc_offset(analyses[path], ch, by_path[path].sample_rate)
            if dc:
                warnings.append(f"dc_offset: {_name(path)} channel {ch} {dc}")
        sources, speakers = _merge_copies(sources, analyses, silent, inp, warnings)
        duration = max(p.duration for p in probes)
        if duration < cfg.min_duration:
            raise Rejected("too_short", f"{duration:.2f} s is shorter than validation.min_duration={cfg.min_duration}")
        if len({p.sample_rate for p in probes}) > 1:
            warnings.append("mixed_sample_rates: source files have different sample rates (each is resampled to "
                            "the tracks rate): " + ", ".join(f"{_name(p.path)}={p.sample_rate} Hz" for p in probes))
        if len({round(p.duration, 1) for p in probes}) > 1:
            warnings.append("length_mismatch: source files differ in length (the shorter are padded with silence "
                            "at the end): " + ", ".join(f"{_name(p.path)}={p.duration:.2f}s" for p in probes))
        hashes = [file_sha256(p.path) for p in probes]
        channels = []
        for ch, (path, src_ch) in enumerate(sources):
            meta = speakers.get(ch, {})
            channels.append(ChannelInfo(
                channel=ch, speaker_id=meta.get("speaker_id") or f"{inp['recording_id']}_ch{ch}",
                source_path=path, source_channel=src_ch, gender=meta.get("gender"),
                age_group=meta.get("age_group"), accent=meta.get("accent"), language=meta.get("language"),
                speakers=int(meta["speakers"]) if meta.get("speakers") else None))
        meta = inp["meta"]
        return Recording(
            recording_id=inp["recording_id"], source_paths=tuple(p.path for p in probes),
            source_sha256=tuple(hashes), sha256=stable_hash(hashes, sources_index(sources, probes), length=64),
            format=probes[0].format, sample_rate=probes[0].sample_rate, num_channels=len(sources),
            duration=round(duration, 6), channels=tuple(channels), language=meta.get("language"),
            scenario=meta.get("scenario"), environment=meta.get("environment"), device=meta.get("device"),
            warnings=tuple(warnings))

    def _analyse(self, p: audio.Probe, warnings: list[str]) -> audio.Analysis:
        """Decode one file fully; quarantine what makes it unusable, flag what is odd but usable."""
        cfg = self.cfg
        stats = audio.analyse(p.path, p.sample_rate, cfg.clip_level)  # 1 s windows
        if stats.error and stats.resumes_after_error:
            raise Rejected("decode_error", f"{p.path}: decoding fails at {stats.frames_read / p.sample_rate:.2f} s "
                           f"of {p.duration:.2f} s ({stats.error}) although audio follows: the data is damaged "
                           "in the middle")
        if stats.error or stats.frames_read < p.frames:
            raise Rejected("truncated", f"{p.path}: header announces {p.frames} frames, decoded "
                           f"{stats.frames_read}" + (f" ({stats.error})" if stats.error else ""))
        if stats.non_finite:
            raise Rejected("non_finite", f"{p.path}: {stats.non_finite} NaN/Inf samples")
        samples = max(stats.frames_read * p.channels, 1)
        if stats.over_range:
            peak = float(stats.peak.max())
            over = (f"{stats.over_range} sample(s) ({stats.over_range / samples:.3%}) beyond ±1.0 (peak {peak:.3f}, "
                    f"{_dbfs(peak)})")
            if stats.over_range / samples > cfg.max_clipped_fraction:
                raise Rejected("over_full_scale", f"{p.path}: {p.format} file with {over}; they would be clipped "
                               f"when converted to PCM (limit {cfg.max_clipped_fraction:.2%}): scale it down")
            warnings.append(f"over_full_scale: {_name(p.path)} has {over}; they are clipped to ±1.0")
        share = (stats.clipped - stats.over_range) / samples
        if share > cfg.max_clipped_fraction:
            raise Rejected("clipped", f"{p.path}: {share:.2%} of samples at full scale "
                           f"(limit {cfg.max_clipped_fraction:.2%})")
        fmt, subtype = p.format.split("/", 1)
        expected = EXTENSION_FORMATS.get(Path(p.path).suffix.lower())
        if expected and fmt not in expected:
            warnings.append(f"extension_mismatch: {_name(p.path)} holds {fmt} ({subtype}) audio, not what its "
                            f"extension {Path(p.path).suffix!r} says ({'/'.join(expected)}); decoded by content")
        if subtype in LOW_BIT_DEPTH:
            warnings.append(f"low_bit_depth: {_name(p.path)} is {LOW_BIT_DEPTH[subtype]} (about 48 dB dynamic range)")
        return stats


# Thresholds (physics and standards, not tuned to any corpus):
SILENCE_DBFS = -90.0  # digital silence: below one 16-bit LSB (-90.3 dBFS); all-zero is -inf
SILENCE_RMS = 10 ** (SILENCE_DBFS / 20)
DC_OFFSET_DBFS = -40.0  # a mean of 1 % of full scale: speech through any AC-coupled chain has ~0
DC_OFFSET = 10 ** (DC_OFFSET_DBFS / 20)
DC_MIN_SECONDS = 2.0  # "long": at least this much audio (1 s windows) sits off zero
COPY_DB = -60.0  # a channel minus (plus) another is this far below their level: a copy (inverted copy);
#                  two real microphones differ by more than crosstalk (-18 to -30 dB), 1-LSB noise is ~-70 dB
EXTENSION_FORMATS = {".wav": ("WAV", "WAVEX", "RF64", "W64"), ".flac": ("FLAC",), ".ogg": ("OGG",),
                     ".opus": ("OGG",), ".mp3": ("MP3", "MPEG"), ".sph": ("NIST",), ".aiff": ("AIFF",),
                     ".aif": ("AIFF",)}
LOW_BIT_DEPTH = {"PCM_S8": "8-bit signed PCM", "PCM_U8": "8-bit unsigned PCM"}


def check_file(path: str) -> None:
    """Reject a source that is missing, a broken or looping link, not a regular file, unreadable, or empty."""
    problem = path_problem(path)
    if problem:
        raise Rejected(*problem)
    if os.path.getsize(path) == 0:
        raise Rejected("empty", f"{path}: file is empty (0 bytes)")


def _name(path: str) -> str:
    return Path(path).name


def _dbfs(level: float) -> str:
    return f"{20 * np.log10(level):+.1f} dBFS" if level > 0 else "-inf dBFS (all zero)"


def _dc_offset(stats: audio.Analysis, ch: int, rate: int) -> str | None:
    """A long DC offset on one channel, described, or None."""
    means = stats.window_means[:, ch] if stats.window_means.size else np.zeros(0)
    lengths = np.full(len(means), float(stats.window_frames))
    if len(lengths):
        lengths[-1] = stats.frames_read - stats.window_frames * (len(means) - 1)
    off = np.abs(means) >= DC_OFFSET
    seconds = float(lengths[off].sum()) / rate
    whole = float(stats.mean[ch])
    if seconds < DC_MIN_SECONDS and abs(whole) < DC_OFFSET:
        return None
    worst = float(means[np.argmax(np.abs(means))])
    total = stats.frames_read / rate
    return (f"has a DC offset of {worst:+.3f} of full scale ({_dbfs(abs(worst))}) over {seconds:.1f} s "
            f"({seconds / total:.0%} of {total:.1f} s; mean over the file {whole:+.3f}; limit {DC_OFFSET_DBFS:.0f} dBFS)")


def _merge_copies(sources, analyses, silent, inp, warnings):
    """Channels of one file that are (phase-inverted) copies of an earlier one are processed as one
    channel and flagged; the speaker map follows the kept channels."""
    speakers = {int(k): v for k, v in inp["speakers"].items()}
    extra = sorted(set(speakers) - set(range(len(sources))))
    if extra:
        warnings.append(f"metadata_extra_channel: metadata names channel(s) {extra} that the audio does not have")
    dropped: dict[int, int] = {}
    for j, (path_j, ch_j) in enumerate(sources):
        for i, (path_i, ch_i) in enumerate(sources[:j]):
            if path_i != path_j or i in dropped or j in dropped or i in silent or j in silent:
                continue
            stats = analyses[path_i]
            copy = stats.pair_residual_db(ch_i, ch_j, -1)
            inverted = stats.pair_residual_db(ch_i, ch_j, +1)
            if min(copy, inverted) > COPY_DB:
                continue
            code, what = ("identical_channels", "a sample-exact copy") if copy <= COPY_DB else \
                ("phase_inverted_channels", "a phase-inverted copy")
            residual = min(copy, inverted)
            spk = speakers.get(j, {}).get("speaker_id")
            warnings.append(f"{code}: {_name(path_j)} channel {ch_j} is {what} of channel {ch_i} "
                            f"(residual {residual:.1f} dB; limit {COPY_DB:.0f} dB): processed as one channel"
                            + (f"; metadata speaker {spk!r} of channel {j} shares it" if spk else ""))
            if spk:  # both people are on the one channel now: it is diarized, and they keep their names
                kept = speakers.setdefault(i, {})
                kept["speaker_id"] = f"{kept.get('speaker_id') or inp['recording_id'] + f'_ch{i}'};{spk}"
                kept["speakers"] = str(int(kept.get("speakers") or 1) + int(speakers[j].get("speakers") or 1))
            dropped[j] = i
    if not dropped:
        return sources, speakers
    kept = [k for k in range(len(sources)) if k not in dropped]
    return [sources[k] for k in kept], {new: speakers[old] for new, old in enumerate(kept) if old in speakers}


def sources_index(sources, probes) -> list[tuple[int, int]]:
    """The channel map by file position (not path), so identical content hashes identically."""
    paths = [p.path for p in probes]
    return [(paths.index(path), ch) for path, ch in sources]
