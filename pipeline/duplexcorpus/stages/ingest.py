"""Ingest: probe and validate each input, join its metadata, hash it.

Every problem becomes a specific reason code (see schemas/v1/quarantine.arrow.json); the recording
is quarantined and the run goes on.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from duplexcorpus import audio
from duplexcorpus.records import ChannelInfo, Recording
from duplexcorpus.stages.base import Rejected, Stage, WorkItem
from duplexcorpus.storage import file_sha256, stable_hash, write_json


class IngestStage(Stage):
    name = "ingest"
    version = "1"
    config_section = "validation"
    writes = ("recording.json",)

    def cache_key(self, item: WorkItem) -> str:
        # content is not hashed yet: key on the files' identity (path, size, mtime) and metadata
        stats = []
        for path in item.input["paths"]:
            try:
                st = os.stat(path)
                stats.append((path, st.st_size, st.st_mtime_ns))
            except OSError:
                stats.append((path, None, None))
        return stable_hash(self.name, self.version, self.workflow.section("validation"), item.input, stats)

    def process(self, item: WorkItem, out_dir: Path) -> None:
        write_json(out_dir / "recording.json", self.validate(item.input).row(split=None))

    def validate(self, inp: dict) -> Recording:
        cfg = self.cfg
        probes = []
        for path in inp["paths"]:
            if not Path(path).exists():
                raise Rejected("unreadable", f"{path}: file does not exist")
            if Path(path).stat().st_size == 0:
                raise Rejected("empty", f"{path}: file is empty (0 bytes)")
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
        warnings = []
        for p in probes:
            stats = audio.scan(p.path, int(cfg.block_seconds * p.sample_rate), cfg.clip_level)
            if stats.error or stats.frames_read < p.frames:
                raise Rejected("truncated", f"{p.path}: header announces {p.frames} frames, decoded "
                               f"{stats.frames_read}" + (f" ({stats.error})" if stats.error else ""))
            if stats.non_finite:
                raise Rejected("non_finite", f"{p.path}: {stats.non_finite} NaN/Inf samples")
            share = stats.clipped / max(stats.frames_read * p.channels, 1)
            if share > cfg.max_clipped_fraction:
                raise Rejected("clipped", f"{p.path}: {share:.2%} of samples at full scale "
                               f"(limit {cfg.max_clipped_fraction:.2%})")
            for ch, rms in enumerate(stats.rms):
                if rms < 1e-5:
                    warnings.append(f"{Path(p.path).name} channel {ch} is silent (rms {20 * np.log10(rms + 1e-12):.0f} dBFS)")
        duration = max(p.duration for p in probes)
        if duration < cfg.min_duration:
            raise Rejected("too_short", f"{duration:.2f} s is shorter than validation.min_duration={cfg.min_duration}")
        if len({round(p.duration, 1) for p in probes}) > 1:
            warnings.append("source files differ in length: " + ", ".join(f"{Path(p.path).name}={p.duration:.2f}s" for p in probes))
        hashes = [file_sha256(p.path) for p in probes]
        speakers = {int(k): v for k, v in inp["speakers"].items()}
        channels = []
        for ch, (path, src_ch) in enumerate(sources):
            meta = speakers.get(ch, {})
            channels.append(ChannelInfo(
                channel=ch, speaker_id=meta.get("speaker_id") or f"{inp['recording_id']}_ch{ch}",
                source_path=path, source_channel=src_ch, gender=meta.get("gender"),
                age_group=meta.get("age_group"), accent=meta.get("accent"), language=meta.get("language")))
        extra = sorted(set(speakers) - set(range(len(sources))))
        if extra:
            warnings.append(f"metadata names channel(s) {extra} that the audio does not have")
        meta = inp["meta"]
        return Recording(
            recording_id=inp["recording_id"], source_paths=tuple(p.path for p in probes),
            source_sha256=tuple(hashes), sha256=stable_hash(hashes, sources_index(sources, probes), length=64),
            format=probes[0].format, sample_rate=probes[0].sample_rate, num_channels=len(sources),
            duration=round(duration, 6), channels=tuple(channels), language=meta.get("language"),
            scenario=meta.get("scenario"), environment=meta.get("environment"), device=meta.get("device"),
            warnings=tuple(warnings))


def sources_index(sources, probes) -> list[tuple[int, int]]:
    """The channel map by file position (not path), so identical content hashes identically."""
    paths = [p.path for p in probes]
    return [(paths.index(path), ch) for path, ch in sources]
