"""duplexcorpus.evaluate: run tables scored against reference tables; close-talk channels scored
against a speaker RTTM (channel_attribution)."""
import json

import pandas as pd
import pytest

from duplexcorpus.evaluate import channel_attribution, score_run


def _tables(folder, segments, events=()):
    folder.mkdir(parents=True)
    cols = dict(segment_id="s", confidence=1.0, source="x", crosstalk_suppressed=0.0, attributes="{}")
    pd.DataFrame([dict(cols, recording_id=r, channel=c, speaker_id=spk, start=a, end=b)
                  for r, c, spk, a, b in segments]).to_parquet(folder / "segments.parquet")
    ev = [dict(recording_id=r, type=t, channel=c, start=a, end=b, attributes=json.dumps({})) for r, t, c, a, b in events]
    pd.DataFrame(ev, columns=["recording_id", "type", "channel", "start", "end", "attributes"]).to_parquet(
        folder / "events.parquet")
    pd.DataFrame({"recording_id": sorted({s[0] for s in segments})}).to_parquet(folder / "recordings.parquet")
    return folder


def test_a_reference_without_speakers_scores_speech_not_speaker_pieces(tmp_path):
    """data_samples' mono mix names no speakers ("mix"): a diarized run's pieces of one IPU, and a
    listener's segment under the talker's, are one stretch of speech there; its events are not scored
    (the reference has none), while a two-channel recording beside it is scored as always."""
    truth = _tables(tmp_path / "truth", [("mono", 0, "mix", 0.0, 4.0), ("mono", 0, "mix", 5.0, 6.0),
                                         ("call", 0, "a", 0.0, 2.0), ("call", 1, "b", 2.5, 4.0)],
                    [("call", "gap", None, 2.0, 2.5)])
    run = _tables(tmp_path / "run", [("mono", 0, "m_spk0", 0.0, 2.5), ("mono", 0, "m_spk1", 2.5, 4.0),
                                     ("mono", 0, "m_spk1", 1.0, 1.4),  # under spk0's piece
                                     ("mono", 0, "m_spk0", 5.0, 6.0),
                                     ("call", 0, "a", 0.0, 2.0), ("call", 1, "b", 2.5, 4.0)],
                  [("mono", "overlap", None, 1.0, 1.4), ("call", "gap", None, 2.0, 2.5)])
    report = score_run(run, truth)
    assert report["ipu:mono"]["f1"] == 1.0 and report["ipu"]["f1"] == 1.0
    assert report["overlap"]["fp"] == 0 and report["gap"]["tp"] == 1
    # a channel whose reference names its speaker keeps every piece as an IPU of its own
    split = _tables(tmp_path / "split", [("call", 0, "a", 0.0, 1.0), ("call", 0, "a", 1.0, 2.0),
                                         ("call", 1, "b", 2.5, 4.0)])
    assert score_run(split, truth, recordings=["call"])["ipu"]["fp"] >= 1


def test_channel_attribution_counts():
    turns = {0: [(0.0, 2.0), (5.0, 5.2)], 1: [(2.5, 4.0)]}
    ipus = {
        0: [(0.1, 2.0),  # right
            (2.6, 3.9)],  # channel 1's speaker leaking into channel 0: wrong
        1: [(2.4, 4.2),  # right (speaker talks 1.5 of 1.8 s)
            (0.0, 1.5)],  # wrong
    }
    r = channel_attribution(ipus, turns, duration=6.0)
    assert (r["ipus"], r["ipus_right"]) == (4, 2) and r["precision"] == 0.5
    # the 0.2 s turn is below min_turn; the other two are covered
    assert (r["turns"], r["turns_found"]) == (2, 2) and r["turn_recall"] == 1.0
    ch0 = r["channels"][0]
    assert ch0["miss"] == pytest.approx((0.1 + 0.2) / 2.2, abs=0.01)
    assert ch0["false_alarm"] == pytest.approx(1.3 / 2.2, abs=0.01)


def test_missed_turn_and_empty_channel():
    r = channel_attribution({0: []}, {0: [(1.0, 3.0)]}, duration=4.0)
    assert r["turn_recall"] == 0.0 and r["precision"] == 1.0 and r["channels"][0]["miss"] == 1.0


@pytest.mark.slow
def test_ami_headsets_attribution_beats_plain_silero(tmp_path, monkeypatch):
    """The real AMI 4-headset excerpt (bench/bench_ami_attribution.py, human RTTM): the pipeline's IPUs
    are attributed right more often than plain per-channel silero's, and it finds as many human turns.
    Measured: precision 0.846 vs 0.686, turn recall 0.786 vs 0.786 (the issue asks 0.95 / 0.90: not met;
    of the 4 wrong IPUs two are boundaries around sub-0.3 s turns and one is sound on FEE013's own
    headset at 0-1.7 s that the RTTM does not mark)."""
    import importlib.util
    import sys

    from tests.conftest import REALDATA, realdata

    realdata("en_ami_meeting60s_4ch", "mixture.rttm")
    monkeypatch.setenv("DUPLEXCORPUS_REALDATA", str(REALDATA))
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("bench_ami_attribution", root / "bench" / "bench_ami_attribution.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_ami_attribution", bench)
    spec.loader.exec_module(bench)
    r = bench.main(["--work", str(tmp_path)])
    ours, plain = r["pipeline"], r["silero"]
    assert ours["precision"] >= 0.8 and ours["precision"] >= plain["precision"] + 0.1, (ours, plain)
    assert ours["turn_recall"] >= plain["turn_recall"], (ours, plain)
