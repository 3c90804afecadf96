"""duplexcorpus.evaluate.channel_attribution: close-talk channels scored against a speaker RTTM."""
import pytest

from duplexcorpus.evaluate import channel_attribution


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
