"""The stages, in the order a recording goes through them. Adding a stage: its file here (a `Stage`
subclass with name, version, config section, `reads`, `Output` constants and resources), one entry in
`PROCESSING` below, its section in config.py / workflows/default.yaml, and tests/stages/test_<name>.py.

    ingest ─ dedupe ─ tracks → decrosstalk → vad → crosstalk → ipus → conditions → diarize → asr → nonverbal → events → samples
"""
from __future__ import annotations

from duplexcorpus.stages.asr import AsrStage
from duplexcorpus.stages.base import Stage
from duplexcorpus.stages.conditions import ConditionsStage
from duplexcorpus.stages.crosstalk import CrosstalkStage
from duplexcorpus.stages.decrosstalk import DecrosstalkStage
from duplexcorpus.stages.diarize import DiarizeStage
from duplexcorpus.stages.events import EventsStage
from duplexcorpus.stages.ingest import IngestStage
from duplexcorpus.stages.ipus import IpuStage
from duplexcorpus.stages.nonverbal import NonverbalStage
from duplexcorpus.stages.samples import SamplesStage
from duplexcorpus.stages.tracks import TracksStage
from duplexcorpus.stages.vad import VadStage

INGEST: type[Stage] = IngestStage  # runs first, alone: duplicates are found across the whole corpus after it
PROCESSING: tuple[type[Stage], ...] = (
    TracksStage,       # channel split + resample into one canonical multi-channel FLAC
    DecrosstalkStage,  # leak canceller -> the 16 kHz analysis signal
    VadStage,          # silero speech probability, batched over every channel (model actor)
    CrosstalkStage,    # which frames are another channel's leak
    IpuStage,          # IPUs per channel, leak removed, boundaries snapped
    ConditionsStage,   # SNR, noise floor, clipping, bandwidth per channel (speech = the IPUs)
    DiarizeStage,      # who speaks when on a channel with several speakers (mono; pyannote)
    AsrStage,          # words per channel (Whisper; model actor)
    NonverbalStage,    # laughter / breath / cough / sigh per channel, leak-aware (YAMNet; model actor)
    EventsStage,       # turn-taking rules per speaker, lexical events
    SamplesStage,      # shard windows: audio, sample JSON, frame labels
)
STAGES: tuple[type[Stage], ...] = (INGEST, *PROCESSING)
BY_NAME: dict[str, type[Stage]] = {s.name: s for s in STAGES}
