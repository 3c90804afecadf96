"""The stage contract: outputs are checked before the cache commits, and only tunable settings
enter cache keys."""
from __future__ import annotations

from pathlib import Path

import pytest

from duplexcorpus.config import Workflow, load_workflow
from duplexcorpus.records import load_segments
from duplexcorpus.runner import run_stage
from duplexcorpus.stages import BY_NAME, PROCESSING, STAGES
from duplexcorpus.stages.asr import AsrStage
from duplexcorpus.stages.base import Output, Stage, StageOutputError, WorkItem
from duplexcorpus.storage import StageCache


class _Writes(Stage):
    """A stand-in stage (test-only) that writes whatever the test tells it to."""

    name = "writes"
    SEGMENTS = Output("segments.json", read=load_segments)
    NOTES = Output("notes.json", optional=True)
    files: tuple[str, ...] = ()

    def process(self, item: WorkItem, out_dir: Path) -> None:
        for name in self.files:
            (out_dir / name).write_text("[]")


def _item() -> WorkItem:
    return WorkItem(input={"recording_id": "rec", "paths": ["/nowhere.wav"]})


def _run(files: tuple[str, ...], tmp_path: Path) -> tuple[WorkItem, StageCache]:
    stage = type("Stage_", (_Writes,), {"files": files})(Workflow())
    cache = StageCache(tmp_path / "cache")
    item = run_stage(stage, [_item()], cache)[0]
    return item, cache


def test_declared_outputs_are_committed_and_read_by_constant(tmp_path):
    item, cache = _run(("segments.json",), tmp_path)
    assert item.quarantine is None
    assert item.path(_Writes.SEGMENTS).parent.name == item.keys["writes"]
    assert item.read(_Writes.SEGMENTS) == []


@pytest.mark.parametrize("files, problem", [((), "missing ['segments.json']"),
                                             (("segments.json", "debug.txt"), "undeclared ['debug.txt']")])
def test_a_broken_output_contract_is_caught_before_the_cache_commits(tmp_path, files, problem):
    item, cache = _run(files, tmp_path)
    assert item.quarantine["reason_code"] == "stage_error"
    assert problem in item.quarantine["reason"]
    assert not list((tmp_path / "cache").rglob("_SUCCESS")), "nothing may be committed"
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_dir() and p.name.startswith(".")]


def test_check_outputs_accepts_per_window_patterns(tmp_path):
    from duplexcorpus.stages.samples import SamplesStage, window_file

    for k in range(2):
        for out in (SamplesStage.AUDIO, SamplesStage.LABELS, SamplesStage.SAMPLE):
            (tmp_path / window_file(out, k)).write_text("")
    (tmp_path / SamplesStage.WINDOWS.file).write_text("{}")
    SamplesStage.check_outputs(tmp_path)  # TEXT is optional
    (tmp_path / "w0001.wav").write_text("")
    with pytest.raises(StageOutputError, match="w0001.wav"):
        SamplesStage.check_outputs(tmp_path)


def test_every_stage_declares_outputs_and_reads_only_earlier_stages():
    seen = set()
    for cls in STAGES:
        assert cls.outputs(), cls.name
        assert all(o.stage == cls.name for o in cls.outputs())
        assert set(cls.reads) <= seen, f"{cls.name} reads a later stage"
        assert cls.config_section is None or hasattr(Workflow(), cls.config_section)
        seen.add(cls.name)
    assert BY_NAME["asr"] is AsrStage and AsrStage in PROCESSING


def _key(stage_cls, overrides):
    from duplexcorpus.records import ChannelInfo, Recording

    rec = Recording("r", ("/nowhere/r.wav",), ("abc",), "abc", "WAV", 16000, 1, 1.0,
                    (ChannelInfo(0, "spk", "/nowhere/r.wav", 0),), None, None, None, None)
    item = WorkItem(input={"recording_id": "r", "paths": []}, recording=rec.row(None),
                    keys={s: "k" for s in stage_cls.reads})
    return stage_cls(load_workflow(None, overrides)).cache_key(item)


def test_execution_knobs_never_enter_cache_keys():
    from duplexcorpus.stages.vad import VadStage

    base = _key(AsrStage, {})
    assert _key(AsrStage, {"asr.threads": 2, "asr.batch_size": 32, "ray.batch_recordings": 2,
                           "ray.resources": {"asr": {"gpus": 1, "actors": 4}}}) == base
    assert _key(AsrStage, {"asr.beam_size": 1}) != base
    assert _key(VadStage, {"vad.threads": 4, "vad.block_seconds": 5.0}) == _key(VadStage, {})


def test_canceller_and_attribution_have_their_own_sections():
    from duplexcorpus.stages.crosstalk import CrosstalkStage
    from duplexcorpus.stages.decrosstalk import DecrosstalkStage

    assert _key(CrosstalkStage, {"decrosstalk.select_db": 6.0}) == _key(CrosstalkStage, {})
    assert _key(DecrosstalkStage, {"decrosstalk.select_db": 6.0}) != _key(DecrosstalkStage, {})
    assert _key(DecrosstalkStage, {"crosstalk.rho2_threshold": 0.5}) == _key(DecrosstalkStage, {})
