"""stats.py: what the corpus holds. Coverage of words over IPUs."""
from __future__ import annotations

from duplexcorpus.records import Segment
from duplexcorpus.stats import asr_coverage


def _seg(start: float, end: float, speaker: str = "a", **attrs) -> Segment:
    return Segment("rec", 0, speaker, start, end, 0.9, attributes=attrs)


def test_asr_coverage_counts_ipus_and_seconds_with_words_and_why_not():
    cov = asr_coverage([_seg(0, 3, words=5), _seg(4, 5, words=0, no_words_reason="no_speech")])
    assert cov["ipus"] == 2 and cov["ipus_with_words"] == 0.5
    assert cov["speech_seconds_with_words"] == 0.75
    assert cov["ipus_without_words_by_reason"] == {"no_speech": 1}
    assert asr_coverage([_seg(0, 1)]) is None  # ASR did not run


def test_speech_under_another_speakers_ipu_is_not_an_ipu_without_words():
    """A diarized listener's "mm-hmm" under the talker's IPU on a mono channel is a segment of its own
    (overlapped), but its audio is inside the talker's IPU, whose clip has the words heard there."""
    talker = _seg(0, 4, words=9)
    listener = _seg(1.2, 1.6, "b", words=0, overlapped=True, no_words_reason="overlapped_speech")
    cov = asr_coverage([talker, listener, _seg(5, 6, words=0, no_words_reason="no_speech")])
    assert cov["ipus"] == 2 and cov["ipus_with_words"] == 0.5 and cov["overlapped_segments"] == 1
    assert cov["ipus_without_words_by_reason"] == {"no_speech": 1}
    assert cov["speech_seconds_with_words"] == 0.8
