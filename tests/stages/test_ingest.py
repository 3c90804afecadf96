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


# ------------------------------------------------------------------ more kinds of broken or odd input
# Every file is generated here (small, 2 s); nothing new is committed. Each kind asserts its exact code
# and that the message is specific (names the file, channel, value or line).
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

SR = 16000


def _talk(seconds=2.0, channels=2, seed=0, level=0.1):
    """Independent noise bursts per channel (a stand-in for two talkers: never copies of each other)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    env = (np.sin(np.arange(n)[:, None] * 2 * np.pi * (1.5 + np.arange(channels)) / SR) > 0).astype(np.float32)
    return (level * rng.standard_normal((n, channels)) * env).astype(np.float32)


def _validate(folder):
    (inp,) = discover(folder, Workflow().input).inputs
    return IngestStage(Workflow()).validate(inp.__dict__)


def _rejected(folder):
    with pytest.raises(Rejected) as err:
        _validate(folder)
    return err.value


def _flags(rec, code):
    return [w for w in rec.warnings if w.startswith(code + ": ")]


def test_wrong_extension_is_accepted_and_names_the_real_format(tmp_path):
    sf.write(tmp_path / "call.wav", _talk(), SR, format="FLAC")  # FLAC bytes behind a .wav name
    rec = _validate(tmp_path)
    (flag,) = _flags(rec, "extension_mismatch")
    assert "call.wav holds FLAC" in flag and rec.num_channels == 2 and rec.format.startswith("FLAC")


def test_8bit_pcm_is_accepted_and_flagged_low_bit_depth(tmp_path):
    sf.write(tmp_path / "call.wav", _talk(), SR, subtype="PCM_U8")
    rec = _validate(tmp_path)
    (flag,) = _flags(rec, "low_bit_depth")
    assert "call.wav is 8-bit unsigned PCM" in flag
    assert rec.warnings == (flag,)


def test_float_within_full_scale_is_accepted_without_warnings(tmp_path):
    sf.write(tmp_path / "call.wav", _talk(), SR, subtype="FLOAT")
    assert _validate(tmp_path).warnings == ()


def test_float_far_beyond_full_scale_is_quarantined_with_its_peak(tmp_path):
    audio = _talk() * 20  # peak about 8: most samples beyond ±1
    sf.write(tmp_path / "loud.wav", audio, SR, subtype="FLOAT")
    err = _rejected(tmp_path)
    assert err.reason_code == "over_full_scale"
    assert "loud.wav" in err.reason and f"peak {np.abs(audio).max():.3f}" in err.reason


def test_float_slightly_beyond_full_scale_is_flagged_with_its_peak(tmp_path):
    audio = _talk()
    audio[100, 0] = 1.5  # one sample over: tolerated like clipping, but said
    sf.write(tmp_path / "hot.wav", audio, SR, subtype="FLOAT")
    rec = _validate(tmp_path)
    (flag,) = _flags(rec, "over_full_scale")
    assert "hot.wav" in flag and "peak 1.500" in flag and "+3.5 dBFS" in flag


def test_long_dc_offset_is_flagged_with_channel_and_offset(tmp_path):
    audio = _talk()
    audio[:, 1] += 0.05  # -26 dBFS offset for the whole call on channel 1
    sf.write(tmp_path / "dc.flac", audio, SR)
    rec = _validate(tmp_path)
    (flag,) = _flags(rec, "dc_offset")
    assert "dc.flac channel 1" in flag and "+0.050 of full scale" in flag and "over 2.0 s" in flag


def test_short_dc_bump_is_not_a_long_offset(tmp_path):
    audio = _talk(seconds=3.0)
    audio[:SR // 2, 0] += 0.05  # half a second: a bump, not a long offset
    sf.write(tmp_path / "bump.flac", audio, SR)
    assert not _flags(_validate(tmp_path), "dc_offset")


def test_all_silent_file_is_quarantined(tmp_path):
    sf.write(tmp_path / "quiet.flac", np.zeros((2 * SR, 2), np.float32), SR)
    err = _rejected(tmp_path)
    assert err.reason_code == "silent"
    assert "quiet.flac channel 0" in err.reason and "quiet.flac channel 1" in err.reason and "-90 dBFS" in err.reason


def test_one_lsb_dither_is_still_digital_silence(tmp_path):
    rng = np.random.default_rng(1)
    sf.write(tmp_path / "dither.wav", rng.integers(-1, 2, (2 * SR, 1)).astype(np.int16), SR)
    assert _rejected(tmp_path).reason_code == "silent"


def test_dead_channel_is_flagged_and_the_other_side_kept(tmp_path):
    audio = _talk()
    audio[:, 0] = 0.0
    sf.write(tmp_path / "oneside.flac", audio, SR)
    rec = _validate(tmp_path)
    (flag,) = _flags(rec, "dead_channel")
    assert "oneside.flac channel 0 is silent" in flag and rec.num_channels == 2


def test_identical_channels_are_processed_as_mono_and_flagged(tmp_path):
    mono = _talk(channels=1)
    sf.write(tmp_path / "dup.flac", np.hstack([mono, mono]), SR)
    (tmp_path / "metadata.csv").write_text("recording_id,channel,speaker_id\ndup,0,alice\ndup,1,alice_copy\n")
    rec = _validate(tmp_path)
    (flag,) = _flags(rec, "identical_channels")
    assert "dup.flac channel 1 is a sample-exact copy of channel 0" in flag and "'alice_copy'" in flag
    # both people are on the one channel now: it carries two named speakers (diarize splits them)
    assert rec.num_channels == 1 and rec.channels[0].speaker_names() == ["alice", "alice_copy"]
    assert rec.channels[0].speakers == 2
    assert not _flags(rec, "metadata_extra_channel")


def test_metadata_declares_how_many_speakers_share_a_channel(tmp_path):
    sf.write(tmp_path / "meet.flac", _talk(channels=1), SR)
    (tmp_path / "metadata.csv").write_text("recording_id,channel,speaker_id,speakers\nmeet,0,,3\n")
    assert _validate(tmp_path).channels[0].speakers == 3
    (tmp_path / "metadata.csv").write_text("recording_id,channel,speaker_id,speakers\nmeet,0,,three\n")
    found = discover(tmp_path, Workflow().input)
    assert not found.inputs and [(code, "'three' is not a speaker count" in why) for _, code, why in found.problems] \
        == [("metadata", True)]


def test_phase_inverted_copy_is_processed_as_one_channel_and_flagged(tmp_path):
    mono = _talk(channels=1)
    sf.write(tmp_path / "inv.flac", np.hstack([mono, -mono]), SR)
    rec = _validate(tmp_path)
    (flag,) = _flags(rec, "phase_inverted_channels")
    assert "inv.flac channel 1 is a phase-inverted copy of channel 0" in flag and rec.num_channels == 1


def test_a_copy_among_three_channels_keeps_the_others_in_order(tmp_path):
    audio = _talk(channels=3)
    audio[:, 2] = audio[:, 0]
    sf.write(tmp_path / "meet.flac", audio, SR)
    rec = _validate(tmp_path)
    assert rec.num_channels == 2 and [c.source_channel for c in rec.channels] == [0, 1]
    assert _flags(rec, "identical_channels")


def test_per_speaker_files_of_different_rates_are_accepted_and_noted(tmp_path):
    audio = _talk()
    sf.write(tmp_path / "call.ch0.flac", audio[:, 0], SR)
    sf.write(tmp_path / "call.ch1.flac", audio[::2, 1], SR // 2)
    rec = _validate(tmp_path)
    (flag,) = _flags(rec, "mixed_sample_rates")
    assert "call.ch0.flac=16000 Hz" in flag and "call.ch1.flac=8000 Hz" in flag and rec.num_channels == 2


def test_per_speaker_files_of_different_lengths_are_accepted_and_noted(tmp_path):
    audio = _talk(seconds=3.0)
    sf.write(tmp_path / "call.ch0.flac", audio[:, 0], SR)
    sf.write(tmp_path / "call.ch1.flac", audio[: 2 * SR, 1], SR)
    rec = _validate(tmp_path)
    (flag,) = _flags(rec, "length_mismatch")
    assert "call.ch0.flac=3.00s" in flag and "call.ch1.flac=2.00s" in flag and rec.duration == 3.0


def _flac_bytes(tmp_path, seconds=3.0):
    sf.write(tmp_path / "src.flac", _talk(seconds=seconds), SR)
    data = (tmp_path / "src.flac").read_bytes()
    (tmp_path / "src.flac").unlink()
    return bytearray(data)


def test_file_that_decodes_halfway_then_fails_is_quarantined(tmp_path):
    data = _flac_bytes(tmp_path)
    mid = len(data) // 2
    data[mid: mid + 2000] = np.random.default_rng(2).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    (tmp_path / "damaged.flac").write_bytes(bytes(data))
    err = _rejected(tmp_path)
    assert err.reason_code == "decode_error"
    assert "damaged.flac: decoding fails at" in err.reason and "of 3.00 s" in err.reason


def test_file_cut_off_is_truncated_not_damaged(tmp_path):
    data = _flac_bytes(tmp_path)
    (tmp_path / "cut.flac").write_bytes(bytes(data[: len(data) // 2]))
    err = _rejected(tmp_path)
    assert err.reason_code == "truncated" and "cut.flac" in err.reason


def _without_root_file_access():
    """In the child, before exec: root reads any file through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH;
    drop both from the bounding set so file permissions apply to it for real (no-op for other users)."""
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unreadable_file_is_quarantined_permission_denied(tmp_path):
    folder = Path(os.path.realpath(tmp_path)) / "calls"
    folder.mkdir()
    sf.write(folder / "locked.flac", _talk(), SR)
    os.chmod(folder / "locked.flac", 0)
    code = ("import json, sys; from duplexcorpus.config import Workflow; from duplexcorpus.inputs import discover;"
            "from duplexcorpus.stages.base import Rejected; from duplexcorpus.stages.ingest import IngestStage\n"
            "(inp,) = discover(sys.argv[1], Workflow().input).inputs\n"
            "try:\n IngestStage(Workflow()).validate(inp.__dict__); print(json.dumps(['accepted', '']))\n"
            "except Rejected as err:\n print(json.dumps([err.reason_code, err.reason]))\n")
    done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2], preexec_fn=_without_root_file_access)
    assert done.returncode == 0, done.stderr
    got_code, reason = json.loads(done.stdout.strip().splitlines()[-1])
    assert got_code == "permission_denied" and "locked.flac: cannot be read" in reason


def test_symlink_loop_given_directly_is_quarantined(tmp_path):
    os.symlink("b.flac", tmp_path / "a.flac")
    os.symlink("a.flac", tmp_path / "b.flac")
    inp = {"recording_id": "a", "paths": [str(tmp_path / "a.flac")], "sources": [], "speakers": {}, "meta": {}}
    with pytest.raises(Rejected) as err:
        IngestStage(Workflow()).validate(inp)
    assert err.value.reason_code == "symlink_loop" and "a.flac: symbolic link loop" in err.value.reason


def test_file_vanished_after_discovery_is_missing_file(tmp_path):
    inp = {"recording_id": "gone", "paths": [str(tmp_path / "gone.flac")], "sources": [], "speakers": {}, "meta": {}}
    with pytest.raises(Rejected) as err:
        IngestStage(Workflow()).validate(inp)
    assert err.value.reason_code == "missing_file" and "gone.flac: file does not exist" in err.value.reason


def test_good_samples_get_no_new_warnings():
    """The checks stay quiet on the bundled good recordings (none has any of these conditions)."""
    stage = IngestStage(Workflow())
    for inp in discover(SAMPLES / "audio", Workflow().input).inputs:
        if inp.recording_id.startswith("broken_"):
            continue
        rec = stage.validate(inp.__dict__)
        assert rec.warnings == (), (inp.recording_id, rec.warnings)


# ------------------------------------------------------------------------- whole runs (no Whisper)
def _mixed_folder(root: Path) -> Path:
    """One good recording (5 s of a bundled call) among broken and odd files."""
    folder = root / "in"
    folder.mkdir()
    audio, sr = sf.read(SAMPLES / "audio" / "en_support_clean.flac", frames=5 * 16000, always_2d=True)
    sf.write(folder / "good.flac", audio, sr)
    sf.write(folder / "quiet.flac", np.zeros((2 * SR, 2), np.float32), SR)
    sf.write(folder / "mono_copy.flac", np.hstack([audio[:, :1], audio[:, :1]]), sr)
    os.symlink("loop.wav", folder / "loop.wav")
    (folder / "metadata.csv").write_text("recording_id,channel,speaker_id\ngood,0,alice\ngood,1,bob\n"
                                         "mono_copy,0,carol\nghost,0,casper\n")
    return folder


@pytest.mark.slow
def test_run_with_broken_inputs_quarantines_each_and_keeps_the_rest(tmp_path):
    import pandas as pd

    from duplexcorpus.config import load_workflow
    from duplexcorpus.runner import run

    result = run(_mixed_folder(tmp_path), tmp_path / "out", load_workflow(None, {"asr.enabled": False}), executor="local")
    quarantine = pd.read_parquet(tmp_path / "out" / "tables" / "quarantine.parquet")
    assert sorted(quarantine.reason_code) == ["metadata_without_audio", "silent", "symlink_loop"]
    recordings = pd.read_parquet(tmp_path / "out" / "tables" / "recordings.parquet").set_index("recording_id")
    assert sorted(recordings.index) == ["good", "mono_copy"] and result.recordings == 2
    assert list(recordings.loc["good", "warnings"]) == []
    (flag,) = recordings.loc["mono_copy", "warnings"]
    assert flag.startswith("identical_channels: mono_copy.flac channel 1") and recordings.loc["mono_copy", "num_channels"] == 1


def _limit_file_size(limit: int):
    def apply():  # in the child: writes past `limit` bytes fail with EFBIG (as on a full disk) instead of killing it
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.slow
def test_full_disk_stops_the_run_cleanly_and_a_rerun_resumes(tmp_path):
    folder, out = _mixed_folder(tmp_path), tmp_path / "out"
    cmd = [sys.executable, "-m", "duplexcorpus.cli", "run", str(folder), "--out", str(out), "--executor", "local",
           "--set", "asr.enabled=false"]
    root = Path(__file__).resolve().parents[2]
    full = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=root, preexec_fn=_limit_file_size(48_000))
    assert full.returncode == 1, full.stderr[-3000:]
    assert "out of space writing under" in full.stderr and str(out) in full.stderr and "file size limit" in full.stderr
    assert "Traceback" not in full.stderr
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == []  # nothing half-written
    assert not (out / "tables").exists()  # the run stopped; it did not quarantine every recording
    ingested = {p.parent.parent.name: p for p in (out / "cache" / "ingest").glob("*/*/_SUCCESS")}
    assert set(ingested) == {"good", "mono_copy"}  # ingest finished before the disk filled (quiet.flac is rejected)

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=root)
    assert again.returncode == 0, again.stderr[-3000:]
    assert all(p.exists() for p in ingested.values())  # finished work was reused, not redone
    import pandas as pd

    assert sorted(pd.read_parquet(out / "tables" / "recordings.parquet").recording_id) == ["good", "mono_copy"]
