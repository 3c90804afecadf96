"""The time grids the stages share.

Analysis audio (leak-cancelled, what VAD, attribution and ASR read) is 16 kHz; silero steps through
it in 512-sample frames, so speech probabilities, crosstalk masks and IPU edges before snapping live
on a 31.25 Hz grid. Shards carry their own frame rate (`shard.frame_rate`, Mimi's 12.5 Hz).
"""
from __future__ import annotations

ANALYSIS_RATE = 16000  # Hz of the analysis track (silero's and Whisper's rate)
HOP = 512  # samples per silero frame at 16 kHz (32 ms)
FRAME_RATE = ANALYSIS_RATE / HOP  # 31.25 Hz: VAD probabilities, crosstalk masks
