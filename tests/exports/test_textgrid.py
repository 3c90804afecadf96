"""`export textgrid`: praatio opens every TextGrid, and its tiers hold the run's IPUs, words and events."""
from __future__ import annotations

import json

from praatio import textgrid

from duplexcorpus.exports.textgrid import NO_TEXT, POINT_EVENTS, export_textgrid, lanes
from duplexcorpus.runfolder import RunFolder


def test_textgrids_hold_the_tables(finished_run, tmp_path):
    report = export_textgrid(finished_run, tmp_path)
    run = RunFolder(finished_run)
    recs, segs, words, events = (run.frame(n) for n in ("recordings", "segments", "words", "events"))
    assert report["exported"] == len(recs) and report["left_out"]["ipus"] == report["left_out"]["events"] == 0
    words_seen = 0
    for rec in recs.itertuples():
        tg = textgrid.openTextgrid(str(tmp_path / f"{rec.recording_id}.TextGrid"), includeEmptyIntervals=False,
                                   reportingMode="error")
        assert abs(tg.maxTimestamp - rec.duration) < 1e-6
        mine = segs[segs.recording_id == rec.recording_id]
        for speaker, rows in mine.groupby("speaker_id"):
            ipus = tg.getTier(f"{speaker} IPUs").entries
            texts = [json.loads(a).get("text") or NO_TEXT for a in rows.sort_values("start").attributes]
            assert [i.label for i in ipus] == texts
            assert [round(i.start, 3) for i in ipus] == [round(s, 3) for s in sorted(rows.start)]
            spoken = words[(words.recording_id == rec.recording_id) & (words.speaker_id == speaker)]
            tier = [w.label for w in tg.getTier(f"{speaker} words").entries]
            assert len(spoken) - len(tier) <= report["left_out"]["words"]
            assert set(tier) <= set(spoken.word)
            words_seen += len(tier)
        for kind, rows in events[events.recording_id == rec.recording_id].groupby("type"):
            tiers = [n for n in tg.tierNames if n == kind or n.startswith(f"{kind} ")]
            entries = [e for n in tiers for e in tg.getTier(n).entries]
            assert len(entries) == len(rows), kind  # no event lost to the lanes
            if kind in POINT_EVENTS:  # where the next turn starts
                turns = events[(events.recording_id == rec.recording_id) & (events.type == "turn")]
                assert all(min(abs(turns.start - p.time)) < 1e-6 for p in entries)
            else:
                assert sorted(round(e.start, 6) for e in entries) == sorted(round(s, 6) for s in rows.start)
    assert words_seen == len(words) - report["left_out"]["words"]


def test_overlapping_events_of_one_type_get_lanes_not_cuts():
    turns = [(0.0, 3.0, "A"), (2.5, 5.0, "B"), (3.0, 4.0, "A"), (4.5, 6.0, "C")]
    placed = lanes(turns)
    assert sorted(e for lane in placed for e in lane) == sorted(turns)
    assert len(placed) == 2  # at most two at once
    for lane in placed:
        assert all(a[1] <= b[0] for a, b in zip(lane, lane[1:]))
    assert len(lanes([(1.0, "x"), (1.0, "y"), (2.0, "z")], points=True)) == 2  # a point per time per tier


def test_layout_is_valid_praat_and_keeps_every_event(tmp_path):
    from duplexcorpus.exports.textgrid import recording_textgrid
    from tests.exports.conftest import two_speaker_recording

    tg, left_out = recording_textgrid(two_speaker_recording())
    tg.save(str(tmp_path / "r.TextGrid"), format="long_textgrid", includeBlankSpaces=True)
    back = textgrid.openTextgrid(str(tmp_path / "r.TextGrid"), includeEmptyIntervals=False, reportingMode="error")
    assert back.tierNames == ("A IPUs", "A words", "B IPUs", "B words", "floor_transfer", "interruption",
                              "overlap", "turn", "turn 2")
    assert [i.label for i in back.getTier("A IPUs").entries] == ['he said "no"', "yes"]  # quotes survive Praat's escaping
    assert [i.label for i in back.getTier("B IPUs").entries] == [NO_TEXT]
    # "said" starts inside "he": clipped to start at its end; "x" lies inside "said": left out and counted
    assert [(w.label, w.start) for w in back.getTier("A words").entries] == [("he", 0.5), ("said", 1.0), ('"no"', 1.6)]
    assert left_out == {"ipus": 0, "words": 1, "events": 0}
    # where the next turn starts: inside the overlap (offset < 0), and a zero offset is a point too
    assert [(p.time, p.label) for p in back.getTier("floor_transfer").entries] == [(2.5, "A -> B -0.500 s"),
                                                                                   (5.0, "B -> A +0.000 s")]
    assert back.getTier("overlap").entries[0].label == "A + B between"
    assert back.getTier("interruption").entries[0].label == "B successful"
    assert [t.label for n in ("turn", "turn 2") for t in back.getTier(n).entries] == ["A", "A", "B"]
