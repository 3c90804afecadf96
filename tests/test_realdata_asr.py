"""WER/CER of the embedded Whisper base through the whole pipeline on real human-transcribed
recordings in ../shared/realdata (read in place; skipped where ../shared is absent)."""
import pandas as pd
import pytest

from duplexcorpus.config import load_workflow
from duplexcorpus.realdata import asr_items, stage_items
from duplexcorpus.runner import run
from duplexcorpus.text import error_rate, join_text
from tests.conftest import realdata


@pytest.mark.slow  # Whisper through the whole pipeline
def test_real_read_speech_error_rates(tmp_path):
    root = realdata()
    items = [i for i in asr_items(root) if i.name in ("librispeech_1995-1837-0001", "aishell1_BAC009S0724W0121")]
    assert len(items) == 2
    run(stage_items(items, tmp_path / "in"), tmp_path / "out", load_workflow(None), executor="local")
    words = pd.read_parquet(tmp_path / "out" / "tables" / "words.parquet")
    rates = {}
    for it in items:
        hyp = join_text(words[words.recording_id == it.name].sort_values("start").word.tolist())
        rates[it.name] = error_rate(it.reference, hyp)["rate"]
    assert rates["librispeech_1995-1837-0001"] <= 0.05, rates  # measured 0.000
    assert rates["aishell1_BAC009S0724W0121"] <= 0.25, rates  # measured 0.167 (12 characters)
