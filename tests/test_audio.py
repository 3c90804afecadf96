"""ChannelStream: several files onto one timeline, including files from another device's clock."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from duplexcorpus.audio import ChannelStream

RATE = 16000


def clicks(times_s, length_s, rate=RATE):
    x = np.zeros(int(length_s * rate), np.float32)
    for t in times_s:
        k = int(round(t * rate))
        if 0 <= k < len(x):
            x[k] = 0.9
    return x


@pytest.mark.parametrize("offset_s, drift_ppm", [(2.5, 150.0), (-1.25, -200.0), (0.0, 0.0)])
def test_a_file_from_another_clock_lands_on_the_first_files_timeline(tmp_path, offset_s, drift_ppm):
    truth = np.arange(5.0, 115.0, 10.0)  # reference-clock times of the clicks
    sf.write(tmp_path / "a.wav", clicks(truth, 120.0), RATE)
    # the other device started offset_s later and its clock runs drift_ppm fast
    tau = (truth - offset_s) * (1 + drift_ppm * 1e-6)
    sf.write(tmp_path / "b.wav", clicks(tau, 120.0), RATE)
    stream = ChannelStream([(str(tmp_path / "a.wav"), 0), (str(tmp_path / "b.wav"), 0)], RATE, 7.0,
                           clocks={str(tmp_path / "b.wav"): (offset_s, drift_ppm)})
    out = np.concatenate(list(stream.blocks()), axis=1)
    for t in truth:
        k = int(round(t * RATE))
        window = out[1, k - 40: k + 40]
        if tau[list(truth).index(t)] < 0:  # before the other file started
            continue
        peak = (int(np.argmax(np.abs(window))) - 40) / RATE
        assert abs(peak) <= 1e-3, f"click at {t} s lands {peak * 1000:.2f} ms off"
        assert np.abs(out[0, k]) > 0.5


@pytest.mark.parametrize("clocks", [{}, {"b.wav": (3.0, 0.0)}, {"b.wav": (-2.0, 120.0)}])
def test_files_of_different_lengths_end_in_silence_not_in_a_crash(tmp_path, clocks):
    """One phone's file ends long before the other's (stress_0168: 24.9 s against 34.4 s, unsynced).
    The stream goes on to the longest file's end, the ended file silent from its end on."""
    long_x = clicks(np.arange(0.5, 30.0, 1.0), 30.0)
    short_x = clicks(np.arange(0.5, 12.0, 1.0), 12.3)
    sf.write(tmp_path / "a.wav", long_x, RATE)
    sf.write(tmp_path / "b.wav", short_x, RATE)
    stream = ChannelStream([(str(tmp_path / "a.wav"), 0), (str(tmp_path / "b.wav"), 0)], RATE, 2.0,
                           clocks={str(tmp_path / k): v for k, v in clocks.items()})
    out = np.concatenate(list(stream.blocks()), axis=1)
    assert out.shape[0] == 2 and out.shape[1] >= len(long_x)
    np.testing.assert_allclose(out[0, :len(long_x)], long_x, atol=1e-4)  # PCM16 round trip
    offset = clocks.get("b.wav", (0.0, 0.0))[0]
    ended = int((offset + 12.3 + 0.01) * RATE)  # past the short file's end on this timeline
    assert np.abs(out[1, ended:]).max() == 0.0
    assert np.abs(out[1, :ended]).max() > 0.5
