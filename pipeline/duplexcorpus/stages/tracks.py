"""Channel split + resample: one canonical multi-channel FLAC per recording at the workflow's rate.

Several mono files become one multi-channel file here, channels in speaker order. Later stages read
only this file (random access for windows), so the sources are decoded once.

Files recorded by separate devices (one per phone) are first put on the first channel's clock:
each file's offset and clock drift against the first file are estimated from the leak each phone
picks up of the other voice (duplexcorpus.sync: windowed GCC-PHAT and a line through the per-window
lags), and the file is resampled and shifted while it streams. An estimate the evidence does not
support is not applied: the files stay as they are and the recording says so in its warnings.
"""
from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf

from duplexcorpus.audio import ChannelStream
from duplexcorpus.stages.base import Output, Stage, WorkItem
from duplexcorpus.storage import write_json


class TracksStage(Stage):
    name = "tracks"
    version = "2"  # 2: separately recorded files synced onto the first channel's clock
    config_section = "tracks"
    reads = ("ingest",)
    AUDIO = Output("audio.flac", description="all channels, in speaker order, at tracks.sample_rate")
    INFO = Output("tracks.json", read=lambda p: json.loads(p.read_text()),
                  description="frames, rate, channels; per channel the clock sync applied (offset_s, drift_ppm, "
                              "confidence, method) and warnings")

    def process(self, item: WorkItem, out_dir: Path) -> None:
        rec = item.rec()
        sources = [(c.source_path, c.source_channel) for c in rec.channels]
        sync, clocks, warnings = self.sync(sources, rec.duration)
        stream = ChannelStream(sources, self.cfg.sample_rate, self.cfg.block_seconds, clocks=clocks)
        limit = int(round(rec.duration * self.cfg.sample_rate)) if clocks else None  # the first channel's timeline
        frames = 0
        with sf.SoundFile(out_dir / self.AUDIO.file, "w", samplerate=self.cfg.sample_rate,
                          channels=stream.num_channels, format="FLAC", subtype=self.cfg.subtype) as out:
            for block in stream.blocks():
                if limit is not None:
                    block = block[:, : max(0, limit - frames)]
                out.write(block.T.clip(-1.0, 1.0))
                frames += block.shape[1]
        info = {"frames": frames, "sample_rate": self.cfg.sample_rate, "channels": stream.num_channels}
        if sync:  # only recordings made of several files have a sync to report
            info.update(sync=sync, warnings=warnings)
        write_json(out_dir / self.INFO.file, info)

    def sync(self, sources: list[tuple[str, int]], duration: float) -> tuple[list[dict], dict, list[str]]:
        """Per channel: the estimate against the first file; the clocks to apply; warnings."""
        files = list(dict.fromkeys(path for path, _ in sources))
        if len(files) < 2 or not self.cfg.sync:
            return [], {}, []
        from duplexcorpus.sync import estimate_sync_files

        first = {path: ch for path, ch in reversed(sources)}  # a file's first channel in use
        estimates = dict(zip(files, estimate_sync_files(
            [(path, first[path]) for path in files], max_offset_s=self.cfg.sync_max_offset_s,
            max_drift_ppm=self.cfg.sync_max_drift_ppm, max_leak_delay_s=self.cfg.sync_max_leak_delay_s)))
        clocks, warnings = {}, []
        half_sample = 0.5 / self.cfg.sample_rate
        for path, est in estimates.items():
            if path == files[0]:
                continue
            if not est.ok:
                warnings.append(f"sync_unconfirmed: {Path(path).name} kept as recorded, not synced to "
                                f"{Path(files[0]).name}: {est.reason}")
                continue
            # below half a sample over the whole recording, a correction changes nothing
            if abs(est.offset_s) >= half_sample or abs(est.drift_ppm) * 1e-6 * duration >= half_sample:
                clocks[path] = (est.offset_s, est.drift_ppm)
            if est.method.endswith("one-way"):
                warnings.append(f"sync_one_way: {Path(path).name}: only one direction leaks, so its offset "
                                f"includes that leak's delay ({est.offset_s * 1000:+.1f} ms applied)")
        sync = []
        for path, _ in sources:
            est = estimates[path]
            applied = clocks.get(path, (0.0, 0.0))
            sync.append({"offset_s": round(applied[0], 6), "drift_ppm": round(applied[1], 3),
                         "sync_confidence": round(float(est.confidence), 3),
                         "sync_method": est.method if path != files[0] else "reference"})
        return sync, clocks, warnings
