"""The finished run the export tests read: the session's real run on the bundled samples, or, to
iterate quickly, an existing finished run named by DUPLEXCORPUS_TEST_RUN (only read, never written)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def finished_run(request) -> Path:
    given = os.environ.get("DUPLEXCORPUS_TEST_RUN")
    if given:
        return Path(given)
    return request.getfixturevalue("sample_run").out


def pytest_collection_modifyitems(config, items):
    # finished_run asks for sample_run only at run time, so the root conftest cannot see it: a test
    # that reads a whole run is slow (kept out of `make test-fast`)
    for item in items:
        if "finished_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def two_speaker_recording():
    """A recording built by hand, no run: two speakers whose turns overlap, a word inside its neighbour,
    an IPU without text, a floor transfer with offset 0."""
    import pandas as pd

    from duplexcorpus.exports.corpus import ExportRecording, parse_segment_attributes

    seg = lambda sid, ch, spk, s, e, text: dict(recording_id="r", segment_id=sid, channel=ch, speaker_id=spk,  # noqa: E731
                                               start=s, end=e, confidence=0.9, source="vad",
                                               attributes=json.dumps({"text": text} if text else {}))
    word = lambda ch, spk, w, s, e: dict(recording_id="r", segment_id="r_c0_0", channel=ch, speaker_id=spk,  # noqa: E731
                                         word=w, start=s, end=e, score=0.8)
    event = lambda kind, ch, spk, s, e, attrs: dict(recording_id="r", type=kind, channel=ch, speaker_id=spk,  # noqa: E731
                                                   start=s, end=e, attributes=json.dumps(attrs))
    return ExportRecording(
        recording_id="r", split="train", duration=6.0, num_channels=2, language="en",
        channels=({"channel": 0, "speaker_id": "A"}, {"channel": 1, "speaker_id": "B"}),
        segments=parse_segment_attributes(pd.DataFrame([seg("r_c0_0", 0, "A", 0.5, 3.0, 'he said "no"'),
                                                        seg("r_c1_0", 1, "B", 2.5, 5.0, None),
                                                        seg("r_c0_1", 0, "A", 5.0, 5.8, "yes")])),
        words=pd.DataFrame([word(0, "A", "he", 0.5, 1.0), word(0, "A", "said", 0.9, 1.6), word(0, "A", "x", 1.2, 1.3),
                            word(0, "A", '"no"', 1.6, 3.0)]),
        events=pd.DataFrame([event("turn", 0, "A", 0.5, 3.0, {}), event("turn", 1, "B", 2.5, 5.0, {}),
                             event("turn", 0, "A", 5.0, 5.8, {}),
                             event("overlap", None, None, 2.5, 3.0, {"channels": [0, 1], "kind": "between"}),
                             event("floor_transfer", 1, "B", 2.5, 3.0, {"offset": -0.5, "from_channel": 0, "to_channel": 1}),
                             event("floor_transfer", 0, "A", 5.0, 5.0, {"offset": 0.0, "from_channel": 1, "to_channel": 0}),
                             event("interruption", 1, "B", 2.5, 3.0, {"successful": True})]),
        audio=None)
