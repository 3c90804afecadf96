"""Every broken sample is quarantined with its specific reason; good inputs pass with metadata."""
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from duplexcorpus.config import Workflow
from duplexcorpus.inputs import discover
from duplexcorpus.stages.base import Rejected
from duplexcorpus.stages.ingest import IngestStage
from tests.conftest import SAMPLES

EXPECTED = json.loads((SAMPLES / "truth" / "quarantine_expected.json").read_text())


@pytest.mark.parametrize("case", EXPECTED, ids=[c["input"] for c in EXPECTED])
def test_broken_file_rejected_with_specific_reason(case):
    stage = IngestStage(Workflow())
    found = {i.recording_id: i for i in discover(SAMPLES / "audio", Workflow().input).inputs}
    inp = found[case["input"].rsplit(".", 1)[0]]
    with pytest.raises(Rejected) as err:
        stage.validate(inp.__dict__)
    assert err.value.reason_code == case["reason_code"]
    assert case["input"] in err.value.reason or err.value.reason_code in ("bad_channel_count",)


def test_good_recording_gets_metadata_and_hash():
    stage = IngestStage(Workflow())
    found = {i.recording_id: i for i in discover(SAMPLES / "audio", Workflow().input).inputs}
    rec = stage.validate(found["en_chat_two_files"].__dict__)
    assert rec.num_channels == 2 and len(rec.source_paths) == 2
    assert [c.speaker_id for c in rec.channels] == ["spk_en_m1", "spk_en_f2"]
    assert rec.scenario == "casual_chat" and rec.language == "en" and len(rec.sha256) == 64


def test_manifest_groups_mono_files(tmp_path):
    for k in range(2):
        shutil.copy(SAMPLES / "audio" / f"en_chat_two_files.ch{k}.flac", tmp_path / f"side{k}.flac")
    (tmp_path / "m.csv").write_text("recording_id,channel,path,speaker_id\ncall 1,0,side0.flac,alice\ncall 1,1,side1.flac,bob\n")
    (inp,) = discover(tmp_path / "m.csv", Workflow().input).inputs
    assert inp.recording_id == "call_1" and [s[1] for s in inp.sources] == [0, 0]
    rec = IngestStage(Workflow()).validate(inp.__dict__)
    assert [c.speaker_id for c in rec.channels] == ["alice", "bob"]


def test_silent_channel_is_a_warning_not_a_rejection(tmp_path):
    audio = np.zeros((16000, 2), np.float32)
    audio[:, 0] = 0.1 * np.sin(np.arange(16000) / 5)
    sf.write(tmp_path / "one_sided.wav", audio, 16000)
    (inp,) = discover(tmp_path, Workflow().input).inputs
    rec = IngestStage(Workflow()).validate(inp.__dict__)
    assert any("channel 1 is silent" in w for w in rec.warnings)
