"""Speaker-disjoint splits: connected speakers share a split; pins drag their whole group."""
from __future__ import annotations

import pytest

from duplexcorpus.config import SplitConfig
from duplexcorpus.records import ChannelInfo, Recording
from duplexcorpus.splits import assign_splits, speaker_groups


def rec(rid, *speakers):
    chans = tuple(ChannelInfo(i, s, f"/x/{rid}.wav", i) for i, s in enumerate(speakers))
    return Recording(rid, (f"/x/{rid}.wav",), ("h",), rid, "WAV", 16000, len(speakers), 10.0, chans,
                     None, None, None, None)


def test_recordings_sharing_a_speaker_form_one_group():
    groups = speaker_groups([rec("a", "s1", "s2"), rec("b", "s2", "s3"), rec("c", "s4", "s5")])
    assert sorted(map(sorted, groups.values())) == [["a", "b"], ["c"]]


def test_splits_are_speaker_disjoint_and_stable():
    recs = [rec(f"r{i}", f"s{i}", f"s{i + 1}" if i % 3 else f"t{i}") for i in range(40)]
    splits = assign_splits(recs, SplitConfig())
    by_speaker = {}
    for r in recs:
        for c in r.channels:
            by_speaker.setdefault(c.speaker_id, set()).add(splits[r.recording_id])
    assert all(len(s) == 1 for s in by_speaker.values())
    assert assign_splits(list(reversed(recs)), SplitConfig()) == splits


def test_pins_move_the_whole_group_and_conflicts_are_errors():
    recs = [rec("a", "s1", "s2"), rec("b", "s2", "s3")]
    assert set(assign_splits(recs, SplitConfig(pinned={"s3": "test"})).values()) == {"test"}
    with pytest.raises(ValueError, match="pinned"):
        assign_splits(recs, SplitConfig(pinned={"s1": "test", "s3": "train"}))
