"""`export lhotse`: the manifests load back with lhotse itself and hold every IPU and word of the run."""
from __future__ import annotations

import json

import numpy as np
import soundfile as sf
from lhotse import CutSet, load_manifest, load_manifest_lazy
from lhotse.qa import validate_recordings_and_supervisions
from lhotse.recipes.utils import read_manifests_if_cached

from duplexcorpus.exports.lhotse import PREFIX, export_lhotse, manifest_name
from duplexcorpus.runfolder import RunFolder
from duplexcorpus.stages.tracks import TracksStage


def test_manifests_hold_every_recording_ipu_and_word(finished_run, tmp_path):
    report = export_lhotse(finished_run, tmp_path)
    run = RunFolder(finished_run)
    recs, segs, words = run.frame("recordings"), run.frame("segments"), run.frame("words")
    assert report["recordings"] == len(recs) and report["supervisions"] == len(segs) and report["skipped"] == 0
    splits = sorted(recs.split.unique())
    found = read_manifests_if_cached(splits, tmp_path, prefix=PREFIX)  # lhotse's own recipe naming
    assert sorted(found) == splits
    supervisions = {}
    for split in splits:
        recordings = load_manifest(tmp_path / manifest_name("recordings", split))
        lazy = load_manifest_lazy(tmp_path / manifest_name("supervisions", split))
        sups = lazy.to_eager()
        validate_recordings_and_supervisions(recordings, sups)  # every IPU inside its recording and channel
        assert sorted(r.id for r in recordings) == sorted(recs[recs.split == split].recording_id)
        supervisions.update({s.id: s for s in sups})
    assert sorted(supervisions) == sorted(segs.segment_id)
    for seg in segs.itertuples():
        sup = supervisions[seg.segment_id]
        assert (sup.recording_id, sup.channel, sup.speaker) == (seg.recording_id, seg.channel, seg.speaker_id)
        assert abs(sup.start - seg.start) < 1e-3 and abs(sup.end - seg.end) < 1e-3
        attrs = json.loads(seg.attributes)
        assert sup.text == attrs.get("text") and sup.language in ("en", "zh")
        assert sup.custom.get("confidence_bucket") == attrs.get("confidence_bucket")  # trainers filter on it
        mine = words[words.segment_id == seg.segment_id].sort_values("start")
        assert [a.symbol for a in sup.alignment["word"]] == list(mine.word)
        assert np.allclose([a.start for a in sup.alignment["word"]], mine.start, atol=1e-3)
    assert sum(len(s.alignment["word"]) for s in supervisions.values()) == words.segment_id.notna().sum()
    # a mono call diarized into two speakers keeps both, on channel 0
    mono = recs[recs.num_channels == 1].recording_id
    for rid in mono:
        assert {s.channel for s in supervisions.values() if s.recording_id == rid} == {0}
        assert len({s.speaker for s in supervisions.values() if s.recording_id == rid}) == \
            segs[segs.recording_id == rid].speaker_id.nunique()


def test_cuts_load_the_runs_audio_from_a_copy(finished_run, tmp_path):
    export_lhotse(finished_run, tmp_path, split="train", copy_audio=True)
    assert not (tmp_path / manifest_name("recordings", "test")).exists()  # --split
    recordings = load_manifest(tmp_path / manifest_name("recordings", "train"))
    assert all(r.sources[0].source == str((tmp_path / "audio" / f"{r.id}.flac").resolve()) for r in recordings)
    cuts = CutSet.from_manifests(recordings=recordings,
                                 supervisions=load_manifest(tmp_path / manifest_name("supervisions", "train")))
    run = RunFolder(finished_run)
    cut = next(c for c in cuts if c.num_channels == 2)
    reference, rate = sf.read(run.path(cut.recording_id, TracksStage.AUDIO), dtype="float32", always_2d=True)
    audio = cut.load_audio()
    assert audio.shape == reference.T.shape and cut.sampling_rate == rate
    assert np.allclose(audio, reference.T, atol=1e-4)
    # one IPU as its own cut: the samples of its span on its channel, its words go with it
    sup = max(cut.supervisions, key=lambda s: len(s.alignment["word"]))
    piece = cut.truncate(offset=sup.start, duration=sup.duration)
    first = int(round(sup.start * rate))
    own = piece.load_audio()[sup.channel]
    assert np.allclose(own, reference[first:first + len(own), sup.channel], atol=1e-4)
    inside = [s for s in piece.supervisions if s.id == sup.id][0]
    assert abs(inside.start) < 1e-6 and inside.alignment["word"][0].symbol == sup.alignment["word"][0].symbol


def test_a_run_without_its_audio_is_reported_not_crashed(finished_run, tmp_path):
    import shutil

    bare = tmp_path / "bare"  # the tables and outputs.json, the cache (audio) gone
    shutil.copytree(finished_run, bare, ignore=shutil.ignore_patterns("cache", "shards"))
    report = export_lhotse(bare, tmp_path / "lhotse")
    assert report["recordings"] == 0 and report["skipped"] == len(RunFolder(bare).frame("recordings"))
    reasons = json.loads((tmp_path / "lhotse" / "skipped.json").read_text())
    assert all("audio is no longer in the run folder" in r["reason"] for r in reasons)


def test_supervisions_of_a_hand_built_recording():
    from lhotse import SupervisionSegment

    from duplexcorpus.exports.lhotse import supervisions
    from tests.exports.conftest import two_speaker_recording

    sups = supervisions(two_speaker_recording(), duration=4.0)  # the audio is shorter than B's IPU
    a, b = sups  # the third IPU (5.0-5.8 s) lies past the end of the audio: no supervision
    assert (a.channel, a.speaker, a.text, a.language) == (0, "A", 'he said "no"', "en")  # language of the channel
    assert [w.symbol for w in a.alignment["word"]] == ["he", "said", "x", '"no"']  # every word, as aligned
    assert b.text is None and b.end == 4.0 and b.alignment["word"] == []
    assert SupervisionSegment.from_dict(b.to_dict()) == b  # nothing NaN or unserialisable inside
