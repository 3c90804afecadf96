"""`export moshi` (moved into duplexcorpus.exports): stereo wavs with the assistant on the left, and
alignments moshi-finetune can binary-search."""
from __future__ import annotations

import json

import numpy as np
import soundfile as sf
from click.testing import CliRunner

from duplexcorpus.cli import main
from duplexcorpus.runfolder import RunFolder
from duplexcorpus.stages.tracks import TracksStage


def test_two_channel_calls_export_with_the_assistant_left(finished_run, tmp_path):
    result = CliRunner().invoke(main, ["export", "moshi", str(finished_run), "--to", str(tmp_path),
                                       "--assistant-channel", "1"])
    assert result.exit_code == 0, result.output
    run = RunFolder(finished_run)
    recs, words = run.frame("recordings"), run.frame("words")
    two = recs[recs.num_channels == 2]
    lines = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert sorted(line["path"] for line in lines) == sorted(f"audio/{rid}.wav" for rid in two.recording_id)
    skipped = json.loads((tmp_path / "skipped.json").read_text())
    assert sorted(s["recording_id"] for s in skipped) == sorted(recs[recs.num_channels != 2].recording_id)
    rid = two.recording_id.iloc[0]
    stereo, rate = sf.read(tmp_path / "audio" / f"{rid}.wav", dtype="float32")
    source, _ = sf.read(run.path(rid, TracksStage.AUDIO), dtype="float32")
    assert stereo.shape == source.shape
    assert np.allclose(stereo[:, 0], source[:, 1], atol=1 / 2**14)  # PCM16: left = channel 1, the assistant
    alignments = json.loads((tmp_path / "audio" / f"{rid}.json").read_text())["alignments"]
    assert [a[1][0] for a in alignments] == sorted(a[1][0] for a in alignments)
    assert len(alignments) == (words.recording_id == rid).sum()
    main_words = {a[0] for a in alignments if a[2] == "SPEAKER_MAIN"}
    assert main_words <= set(words[(words.recording_id == rid) & (words.channel == 1)].word)



def test_a_recording_whose_speakers_share_a_channel_is_skipped_with_that_reason():
    import dataclasses
    from pathlib import Path

    from duplexcorpus.exports.moshi import skip_reason
    from tests.exports.conftest import two_speaker_recording

    rec = dataclasses.replace(two_speaker_recording(), audio=Path("x.flac"))
    assert rec.shared_channels == {} and skip_reason(rec) is None
    segs = rec.segments.copy()
    segs.loc[segs.segment_id == "r_c1_0", "channel"] = 0  # B diarized onto A's channel
    shared = dataclasses.replace(rec, segments=segs)
    assert shared.shared_channels == {0: ["A", "B"]}
    assert skip_reason(shared) == ("speakers share a channel (channel 0: A, B); the moshi layout needs one "
                                   "speaker per channel")
    assert "3 channel(s)" in skip_reason(dataclasses.replace(rec, num_channels=3))
    assert "no longer in the run folder" in skip_reason(dataclasses.replace(rec, audio=None))
