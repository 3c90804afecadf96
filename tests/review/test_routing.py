"""Routing risk and task windows (pure functions), and the shipped labeling configs."""
from duplexcorpus.config import ReviewConfig
from duplexcorpus.records import Event, Segment
from duplexcorpus.review.labeling import labeling_config
from duplexcorpus.review.routing import REASON_TEXT, SPOT_CHECK, choose_windows, plain_reasons, segment_risk
from tests.conftest import ROOT


def _seg(start, end, conf=0.9, text="hello there my friend", asr_low=0.95, xt=0.0, lang="en"):
    return Segment("r", 0, "a", start, end, conf, "vad", xt, {"text": text, "asr_low": asr_low, "language": lang})


def test_each_reason_raises_the_risk():
    cfg = ReviewConfig()
    calm = segment_risk(_seg(0, 2), [], [], "en", cfg)
    assert calm.score < 0.2 and calm.bucket == "high"
    assert segment_risk(_seg(0, 2, asr_low=0.3), [], [], "en", cfg).score > calm.score + 0.4
    assert "vad_borderline" in segment_risk(_seg(0, 2, conf=0.52), [], [], "en", cfg).reasons
    assert "crosstalk" in segment_risk(_seg(0, 2, xt=0.8), [], [], "en", cfg).reasons
    ov = Event("r", "overlap", None, 1.0, 1.8, 1.0, "rules", {"channels": [0, 1]})
    assert "overlap" in segment_risk(_seg(0, 2), [ov], [], "en", cfg).reasons
    dropped = [{"channel": 0, "start": 0.5, "end": 1.0}]
    assert segment_risk(_seg(0, 2), [], dropped, "en", cfg).reasons["dropped_text"] == 1.0
    assert segment_risk(_seg(0, 2, lang="zh", text="你好"), [], [], "en", cfg).reasons["language_switch"] == 1.0
    assert "text_mismatch" in segment_risk(_seg(0, 6, text=""), [], [], "en", cfg).reasons
    assert segment_risk(_seg(0, 2, asr_low=0.1), [], [], "en", cfg).bucket == "low"


def test_annotators_read_every_reason_as_a_plain_sentence():
    cfg = ReviewConfig()
    ov = Event("r", "overlap", None, 0.5, 1.9, 1.0, "rules", {"channels": [0, 1]})
    cut_in = Event("r", "interruption", 0, 0.5, 1.9, 1.0, "rules", {"successful": True})
    # a segment that trips every reason at once: all its codes have a sentence
    everything = segment_risk(_seg(0, 2, conf=0.52, text="你", asr_low=0.2, xt=0.8, lang="zh"), [ov, cut_in],
                              [{"channel": 0, "start": 0.5, "end": 1.0}], "en", cfg).reasons
    assert len(everything) >= 7 and set(everything) <= set(REASON_TEXT)
    mismatch = segment_risk(_seg(0, 6, text=""), [], [], "en", cfg).reasons
    assert set(mismatch) <= set(REASON_TEXT)
    for sentence in REASON_TEXT.values():  # words, not codes
        assert "_" not in sentence and sentence[0].isupper() and sentence.endswith(".")
    shown = plain_reasons(("low_asr", "overlap"))
    assert shown == "Whisper was unsure of these words. Two people speak at the same time here."
    assert plain_reasons(()) == SPOT_CHECK and plain_reasons(("new_reason",)) == "New reason."


def test_windows_respect_threshold_budget_and_length():
    cfg = ReviewConfig(threshold=0.3, budget_share=0.1, window=20.0, context=1.0)
    risky = [("r", f"s{i}", 10.0 * i, 10.0 * i + 2, 0.9 - 0.05 * i, {"low_asr": 0.5}) for i in range(10)]
    risky.append(("r", "long", 200.0, 260.0, 0.95, {"overlap": 1.0}))
    risky.append(("r", "calm", 300.0, 302.0, 0.1, {}))
    windows = choose_windows(risky, {"r": 400.0}, cfg)
    assert sum(w.end - w.start for w in windows) <= 0.1 * 400.0 + 1e-6
    assert all(w.end - w.start <= 20.0 + 1e-6 for w in windows)
    assert windows[0].segments == ("long",)  # most risky first
    assert not any("calm" in w.segments for w in windows)


def test_shipped_labeling_configs_are_generated():
    for n in (2, 3):
        assert (ROOT / "annotation_ui" / f"review_{n}ch.xml").read_text() == labeling_config(n)
    assert "Speech_C" in labeling_config(3) and 'perRegion="true"' in labeling_config(2)
