"""Recording conditions per channel (duplexcorpus.conditions): SNR, noise level and floor, clipping
share, effective bandwidth; and, where the metadata gives none, a suggested environment and device.

Runs right after `ipus`, where each channel's speech regions are known. SNR, noise and bandwidth
are measured on the canonical audio (tracks, the audio the shards carry), streamed in blocks;
clipping on the source files (ingest's full-scale level, `validation.clip_level`), because
resampling moves clipped plateaus. The values reach `recordings.parquet` (per channel) and every
sample's JSON.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from duplexcorpus.conditions import (FrameStats, RecordingConditions, Settings, channel_conditions, clipped_counts, dominant_speech,
                                     load_conditions, speech_masks, suggest_device, suggest_environment)
from duplexcorpus.stages.base import Output, Stage, WorkItem
from duplexcorpus.stages.ipus import IpuStage
from duplexcorpus.stages.tracks import TracksStage
from duplexcorpus.storage import write_json


class ConditionsStage(Stage):
    name = "conditions"
    version = "1"
    config_section = "conditions"
    reads = ("tracks", "ipus")
    CONDITIONS = Output("conditions.json", read=load_conditions,
                        description="per channel SNR, speech/noise level, noise floor, clipping share, bandwidth; "
                                    "suggested environment/device")

    def process(self, item: WorkItem, out_dir: Path) -> None:
        rec = item.rec()
        cfg = self.cfg
        settings = Settings(frame_s=cfg.frame_s, guard_s=cfg.guard_s, min_seconds=cfg.min_seconds,
                            noise_floor_percentile=cfg.noise_floor_percentile, bandwidth_drop_db=cfg.bandwidth_drop_db)
        audio_path = str(item.path(TracksStage.AUDIO))
        info = sf.info(audio_path)
        rate, hop = int(info.samplerate), int(round(cfg.frame_s * info.samplerate))
        n_frames = int(info.frames) // hop
        segments = item.read(IpuStage.SEGMENTS)
        spans = [[(s.start, s.end) for s in segments if s.channel == c] for c in range(rec.num_channels)]
        own, noise = speech_masks(spans, n_frames, settings)
        stats = [FrameStats(hop, own[c]) for c in range(rec.num_channels)]
        block = hop * max(1, int(cfg.block_seconds / cfg.frame_s))  # whole frames per block
        with sf.SoundFile(audio_path) as handle:
            for x in handle.blocks(blocksize=block, dtype="float32", always_2d=True):
                for c, st in enumerate(stats):
                    st.add(x[:, c])
        clipped = self.clipped_shares(rec)
        speech = dominant_speech(own, [st.all_powers() for st in stats], settings)
        channels = tuple(channel_conditions(c, st.all_powers(), st.spectrum_sum, rate, speech[c], noise[c], settings,
                                            clipped[c]) for c, st in enumerate(stats))
        result = RecordingConditions(
            channels,
            environment_suggested=None if rec.environment else suggest_environment(channels, cfg.quiet_snr_db,
                                                                                  cfg.noisy_snr_db),
            device_suggested=None if rec.device else suggest_device(channels))
        write_json(out_dir / self.CONDITIONS.file, result.to_dict())

    def clipped_shares(self, rec) -> list[float | None]:
        """Per output channel: the share of its source channel's samples at full scale."""
        level = self.workflow.validation.clip_level
        by_file: dict[str, tuple[np.ndarray, int]] = {}
        out = []
        for ch in rec.channels:
            if ch.source_path not in by_file:
                try:
                    by_file[ch.source_path] = clipped_counts(ch.source_path, level)
                except (OSError, sf.LibsndfileError, RuntimeError):
                    by_file[ch.source_path] = (np.zeros(0, int), 0)  # moved since ingest: unknown, not fatal
            counts, frames = by_file[ch.source_path]
            known = frames > 0 and ch.source_channel < len(counts)
            out.append(round(float(counts[ch.source_channel]) / frames, 6) if known else None)
        return out
