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


@pytest.mark.slow  # the whole pipeline
def test_a_given_mandarin_transcript_times_every_character_inside_its_ipu(tmp_path):
    """Real dev clips (zh_mixed_dev) with their human transcripts given beside the audio: every
    character (and the English title) is a row, in the transcript's order, timed by the aligner (not
    interpolated), inside an IPU. bench/bench_zh_align.py measures all 15 clips."""
    import json

    import soundfile as sf

    from duplexcorpus.realdata import kaldi_text
    from duplexcorpus.asr.units import pieces

    folder = realdata("zh_mixed_dev")
    texts = kaldi_text(folder / "text")
    # "中国", "现在", "位置" are one Whisper token each; a code-switched command with an English title
    names = ["aishell1-BAC009S0150W0137", "aishellsample-BAC009S0150W0048"]
    inp = tmp_path / "in"
    inp.mkdir()
    rows = ["recording_id,channel,speaker_id,language"]
    for name in names:
        audio = folder / f"{name}.wav"
        (inp / audio.name).symlink_to(audio.resolve())
        given = [dict(channel=0, start=0.0, end=sf.info(audio).duration, text=texts[name])]
        (inp / f"{name}.transcript.json").write_text(json.dumps(given, ensure_ascii=False))
        rows.append(f"{name},0,{name}_spk,zh")
    (inp / "metadata.csv").write_text("\n".join(rows) + "\n")
    run(inp, tmp_path / "out", load_workflow(None), executor="local", metadata=inp / "metadata.csv")
    words = pd.read_parquet(tmp_path / "out" / "tables" / "words.parquet")
    segments = pd.read_parquet(tmp_path / "out" / "tables" / "segments.parquet")
    for name in names:
        mine = words[words.recording_id == name].sort_values("start", kind="stable")
        reference = [u for u, _, _ in pieces(texts[name], "zh") if u]
        assert mine.word.tolist() == reference, name  # every unit, in order, one per row
        assert (mine.source == "transcript").all()
        assert not mine.interpolated.any(), mine[mine.interpolated]  # measured: none on these two
        starts, ends = mine.start.to_numpy(), mine.end.to_numpy()
        assert (ends > starts).all() and (starts[1:] >= ends[:-1] - 1e-3).all(), mine
        # scores are the text's own tokens' probabilities (characters encoded alone score near 0:
        # the read clip's median was 0.43 that way, 0.97 now)
        assert mine.score.median() >= 0.5, mine
        ipus = segments[segments.recording_id == name]
        for w in mine.itertuples():
            assert any(s.start - 1e-3 <= w.start and w.end <= s.end + 1e-3 for s in ipus.itertuples()), w
