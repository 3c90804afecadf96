"""Crosstalk attribution (stages/crosstalk.py): a frame the estimated leak path explains is leak at
any delay; the speaker's own speech under the other's leak is not."""
from types import SimpleNamespace

import numpy as np
import pytest

from duplexcorpus.config import CrosstalkConfig
from duplexcorpus.stages.crosstalk import attribute, path_share


def test_path_share_is_predicted_over_observed_energy():
    observed = np.array([[1.0, 4.0, 2.0], [1.0, 1.0, 1.0]])
    predicted = np.zeros((2, 2, 2))  # the canceller's grid ended a frame early
    predicted[0, 1] = [0.8, 1.0]
    share = path_share(observed, predicted, frames=3)
    assert share.shape == (2, 2, 3)
    np.testing.assert_allclose(share[0, 1], [0.8, 0.25, 0.0], rtol=1e-6)
    assert not share[1, 0].any()


def _case():
    """Channel 1 talks in frames 0-9; channel 0 holds its leak there (same energy level as channel 0's
    own speech in frames 10-19, so level rules cannot tell them apart), and talks itself in 10-19."""
    frames = 20
    probs = np.zeros((2, frames), np.float32)
    probs[1, :10] = 0.9
    probs[0, :] = 0.9  # silero hears speech on channel 0 all along (leak in 0-9)
    energy_db = np.full((2, frames), -40.0)
    energy_db[1, :10] = -20.0
    share = np.zeros((2, 2, frames), np.float32)
    share[0, 1, :10] = 0.9  # the path from 1 predicts 90 % of channel 0's energy there
    share[0, 1, 10:] = 0.05
    rho2 = np.zeros((2, 2, frames))  # the leak is later than the +-25 ms correlation searches
    return energy_db, rho2, probs, share


def test_leak_frames_follow_the_path_not_the_lag_range():
    energy_db, rho2, probs, share = _case()
    cfg = CrosstalkConfig()
    mask, source, evidence = attribute(energy_db, rho2, probs, cfg, share)
    assert mask[0, :10].all() and (source[0, :10] == 1).all()
    assert not mask[0, 10:].any(), "own speech is not leak"
    assert not mask[1, :10].any(), "the source's own speech is not leak"
    np.testing.assert_allclose(evidence[0, :10], 0.9, rtol=1e-6)
    # without a path the same frames are kept (the former behaviour: no evidence within +-25 ms)
    mask_old, _, _ = attribute(energy_db, rho2, probs, cfg, None)
    assert not mask_old[0, :10].any()


def test_path_share_threshold_and_source_activity():
    energy_db, rho2, probs, share = _case()
    share[0, 1, :5] = 0.4  # the leak carries less than half of these frames: something else is there
    probs[1, 8:10] = 0.0  # the source is silent here: nothing of it can leak
    mask, _, _ = attribute(energy_db, rho2, probs, CrosstalkConfig(), share)
    assert not mask[0, :5].any() and mask[0, 5:8].all() and not mask[0, 8:10].any()
    off = SimpleNamespace(**{**CrosstalkConfig().__dict__, "path_share": 2.0})  # never reached
    assert not attribute(energy_db, rho2, probs, off, share)[0][0].any()


@pytest.mark.slow
def test_loud_reverberant_late_leak_end_to_end(tmp_path):
    """A generated call (bench/stress/make_stress.py, seed 123: outside the choose and report ranges)
    with a leak 180 ms late, -11 dB, through a room (RT60 0.4 s), a 9 dB gain difference and little
    noise (28 dB SNR), the case the +-25 ms attribution kept as IPUs. The whole pipeline (asr off)
    against the call's exact truth, plain per-channel silero beside it."""
    import importlib.util
    import shutil
    import sys
    from pathlib import Path

    from duplexcorpus.config import load_workflow
    from duplexcorpus.evaluate import score_run
    from duplexcorpus.runner import run

    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("needs espeak-ng and sox")
    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("make_stress", root / "bench" / "stress" / "make_stress.py")
    stress = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_stress", stress)
    spec.loader.exec_module(stress)
    data = tmp_path / "data"
    stress.render_seed(123, data, leak_delay_ms=180.0, leak_db=-11.0, reverb=True, rt60_s=0.4, snr_db=28.0,
                       gain_db_ch0=0.0, gain_db_ch1=-9.0, telephone=False, two_file=False)
    scores = {}
    for name, overrides in (("pipeline", {"asr.enabled": False}),
                            ("silero", {"asr.enabled": False, "crosstalk.enabled": False, "decrosstalk.enabled": False})):
        run(data / "audio", tmp_path / name, load_workflow(None, overrides), executor="local")
        scores[name] = score_run(tmp_path / name / "tables", data / "truth")["ipu"]["f1"]
    assert scores["pipeline"] >= 0.9, scores
    assert scores["pipeline"] >= scores["silero"] + 0.2, scores
