"""Shard windows and frame labels on hand-made segments and events."""
from __future__ import annotations

import numpy as np

from duplexcorpus.records import Event, Segment
from duplexcorpus.stages.samples import LABELS, SamplesStage, choose_windows, frame_labels, text_frames, window_file


def seg(ch, s, e):
    return Segment("r", ch, f"spk{ch}", s, e, 0.9)


def test_short_recordings_are_one_window():
    assert choose_windows(50.0, [seg(0, 1, 2)], max_window=120, min_window=10) == [(0.0, 50.0)]


def test_long_recordings_are_cut_in_shared_silences():
    segs = [seg(0, 0, 55), seg(1, 50, 70), seg(0, 80, 150), seg(1, 160, 250)]
    windows = choose_windows(250.0, segs, max_window=120, min_window=10)
    assert windows[0] == (0.0, 75.0) and windows[-1][1] == 250.0
    cuts = [e for _, e in windows[:-1]]
    assert all(not any(s.start < c < s.end for s in segs) for c in cuts), "a cut inside speech"
    assert all(e - s <= 120 for s, e in windows)


def test_frame_labels_mark_speech_floor_and_listener_events_per_channel():
    segs = [seg(0, 0.0, 2.0), seg(1, 1.0, 1.4)]
    events = [Event("r", "turn", 0, 0.0, 2.0, 1.0), Event("r", "backchannel", 1, 1.0, 1.4, 1.0),
              Event("r", "overlap", None, 1.0, 1.4, 1.0, attributes={"channels": [0, 1]})]
    labels = frame_labels(2, 0.0, 2.0, segs, events, rate=10.0)
    assert labels.shape == (2, len(LABELS), 20)
    speech, floor, back, _, overlap = (LABELS.index(n) for n in ("speech", "floor", "backchannel", "interruption", "overlap"))
    assert labels[0, speech].sum() == 20 and labels[1, speech].tolist() == [0] * 10 + [1] * 4 + [0] * 6
    assert labels[0, floor].sum() == 20 and labels[1, floor].sum() == 0
    assert labels[1, back].sum() == 4 and labels[0, back].sum() == 0
    assert labels[0, overlap].sum() == labels[1, overlap].sum() == 4


def test_text_frames_point_at_the_word_under_each_frame():
    words = [dict(channel=0, start=0.0, end=0.3), dict(channel=1, start=0.5, end=0.52)]  # the 2nd is under a frame
    frames = text_frames(2, 1.0, words, rate=10.0)
    assert frames[0].tolist() == [1, 1, 1] + [0] * 7
    assert frames[1].tolist() == [0] * 5 + [2] + [0] * 4


def test_window_files_follow_the_declared_patterns():
    assert window_file(SamplesStage.AUDIO, 3) == "w0003.flac"
    assert SamplesStage.LABELS.matches(window_file(SamplesStage.LABELS, 12))


def test_speakers_sharing_a_channel_get_the_labels_they_would_have_on_their_own_channels():
    """A mono call's per-speaker rows equal the channel rows of the same talk on two channels."""
    import random

    from duplexcorpus.config import EventsConfig
    from duplexcorpus.stages.samples import shared_channel_speakers, speaker_frame_labels
    from duplexcorpus.turntaking import detect_events

    r = random.Random(5)
    for case in range(50):
        separate, t = [], 0.0
        for _ in range(12):
            t += r.uniform(-0.8, 1.5)  # negative: overlapped
            ch = r.randrange(2)
            separate.append(seg(ch, max(0.0, t), max(0.0, t) + r.choice([0.3, 0.8, 2.5])))
        shared = [Segment("r", 0, s.speaker_id, s.start, s.end, s.confidence) for s in separate]
        end = max(s.end for s in separate) + 1.0
        two = frame_labels(2, 0.0, end, separate, detect_events(separate, EventsConfig()), rate=12.5)
        speakers = shared_channel_speakers(shared)
        assert {c for _, c in speakers} == {0} and len(speakers) == len({s.speaker_id for s in shared})
        rows = speaker_frame_labels([s for s, _ in speakers], 0.0, end, shared,
                                    detect_events(shared, EventsConfig()), rate=12.5)
        order = [int(s[-1]) for s, _ in speakers]  # spk0 / spk1 in first-speech order
        assert np.array_equal(rows, two[order]), f"case {case}"
    assert shared_channel_speakers(separate) == []  # one speaker per channel: no speaker rows
