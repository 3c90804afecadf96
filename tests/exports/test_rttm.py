"""`export rttm`: pyannote reads every file back with each speaker's speech time from the IPUs table."""
from __future__ import annotations

import json

from click.testing import CliRunner
from pyannote.database.util import load_rttm, load_uem

from duplexcorpus.cli import main
from duplexcorpus.exports.rttm import rttm_name
from duplexcorpus.runfolder import RunFolder


def speech_seconds(spans: list[tuple[float, float]]) -> float:
    """Length of the union of spans (a speaker's own IPUs may touch)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def test_rttm_reads_back_with_each_speakers_speech(finished_run, tmp_path):
    result = CliRunner().invoke(main, ["export", "rttm", str(finished_run), "--to", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    run = RunFolder(finished_run)
    recs, segs = run.frame("recordings"), run.frame("segments")
    assert report["exported"] == len(recs) and report["speaker_lines"] == len(segs)
    for rec in recs.itertuples():
        mine = segs[segs.recording_id == rec.recording_id]
        annotation = load_rttm(tmp_path / f"{rec.recording_id}.rttm")[rttm_name(rec.recording_id)]
        assert len(list(annotation.itertracks())) == len(mine)
        assert sorted(annotation.labels()) == sorted(rttm_name(s) for s in mine.speaker_id.unique())
        for speaker, rows in mine.groupby("speaker_id"):
            expected = speech_seconds(list(zip(rows.start, rows.end)))
            assert abs(annotation.label_duration(rttm_name(speaker)) - expected) < 1e-3 * len(rows), speaker
        uem = load_uem(tmp_path / f"{rec.recording_id}.uem")[rttm_name(rec.recording_id)]
        assert abs(uem.duration() - rec.duration) < 1e-3


def test_speaker_names_with_spaces_are_made_rttm_safe():
    assert rttm_name(" Dr. Jane  Doe ") == "Dr._Jane_Doe"
