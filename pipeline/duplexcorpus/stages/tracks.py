"""Channel split + resample: one canonical multi-channel FLAC per recording at the workflow's rate.

Several mono files become one multi-channel file here, channels in speaker order. Later stages read
only this file (random access for windows), so the sources are decoded once.
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
    version = "1"
    config_section = "tracks"
    reads = ("ingest",)
    AUDIO = Output("audio.flac", description="all channels, in speaker order, at tracks.sample_rate")
    INFO = Output("tracks.json", read=lambda p: json.loads(p.read_text()), description="frames, rate, channels")

    def process(self, item: WorkItem, out_dir: Path) -> None:
        rec = item.rec()
        stream = ChannelStream([(c.source_path, c.source_channel) for c in rec.channels],
                               self.cfg.sample_rate, self.cfg.block_seconds)
        frames = 0
        with sf.SoundFile(out_dir / self.AUDIO.file, "w", samplerate=self.cfg.sample_rate,
                          channels=stream.num_channels, format="FLAC", subtype=self.cfg.subtype) as out:
            for block in stream.blocks():
                out.write(block.T.clip(-1.0, 1.0))
                frames += block.shape[1]
        write_json(out_dir / self.INFO.file, {"frames": frames, "sample_rate": self.cfg.sample_rate,
                                             "channels": stream.num_channels})
