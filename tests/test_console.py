"""The console of `duplexcorpus run`: a line per stage, one per quarantined recording, the summary;
Ray's and the libraries' output in OUT/logs/. Fast tests drive the display and the log routing
directly (the terminal case through pyte, a terminal emulator); the slow ones run the real CLI on a
copy of two sample recordings plus an empty .wav, as a user would (subprocesses, real Ray)."""
from __future__ import annotations

import dataclasses
import io
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyte
import pytest

from duplexcorpus.config import load_workflow
from duplexcorpus.console import NORMAL, QUIET, VERBOSE, RunConsole
from duplexcorpus.evaluate import score_table
from duplexcorpus.inputs import discover
from duplexcorpus.runner import INGEST, execute_local
from duplexcorpus.stages.base import WorkItem
from duplexcorpus.storage import StageCache
from tests.conftest import ROOT, SAMPLES

STAGE_NAMES = ["tracks", "vad", "asr"]


def _events() -> list[tuple[str, dict]]:
    """A small run as the runner reports it: 3 inputs, one empty, one failing in `tracks` with a
    two-line message, `vad` hearing of `a` before `tracks` has finished with `b`."""
    return [
        ("discover", {"recordings": 3, "ignored": [], "problems": 0}),
        ("plan", {"stages": ["ingest"], "recordings": 3}),
        ("ingest", {"recording": "a", "status": "done", "seconds": 1800.0}),
        ("ingest", {"recording": "c", "status": "quarantined", "seconds": 0.0, "code": "empty",
                    "reason": "in/c.wav: file is empty (0 bytes)"}),
        ("ingest", {"recording": "b", "status": "cached", "seconds": 1800.0}),
        ("ingest", {"accepted": 2, "quarantined": 1}),
        ("plan", {"stages": STAGE_NAMES, "recordings": 2}),
        ("tracks", {"recording": "a", "status": "done", "seconds": 1800.0}),
        ("vad", {"recording": "a", "status": "done", "seconds": 1800.0}),
        ("tracks", {"recording": "b", "status": "quarantined", "seconds": 1800.0, "code": "stage_error",
                    "reason": "tracks failed: ValueError: bad\n  second line at tracks.py:12"}),
        ("asr", {"recording": "a", "status": "done", "seconds": 1800.0}),
        ("process", {"recordings": 2}),
    ]


def _feed(console: RunConsole, pause: float = 0.0) -> None:
    with console:
        for step, info in _events():
            console(step, info)
            time.sleep(pause)


def test_off_a_terminal_each_stage_prints_one_line_in_order_and_each_quarantine_one_line():
    stream = io.StringIO()
    _feed(RunConsole(stream, NORMAL))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "3 recordings found"
    assert lines[1] == "quarantined c (ingest, empty): in/c.wav: file is empty (0 bytes)"
    assert lines[2].split()[:2] == ["ingest", "2/3"] and "1.00 h audio" in lines[2]
    assert "(1 from cache, 1 quarantined)" in lines[2]
    # the failure is one line (its message's line break folded), and it names the recording and stage
    assert lines[3] == "quarantined b (tracks, stage_error): tracks failed: ValueError: bad second line at tracks.py:12"
    # vad finished `a` first, but prints after tracks: b never reaches it, so vad is done at 1/1
    assert [line.split()[:2] for line in lines[4:]] == [["tracks", "1/2"], ["vad", "1/1"], ["asr", "1/1"]]
    assert len(lines) == 7


def test_quiet_prints_only_quarantined_recordings_and_verbose_every_event():
    quiet, verbose = io.StringIO(), io.StringIO()
    _feed(RunConsole(quiet, QUIET))
    _feed(RunConsole(verbose, VERBOSE))
    assert [line.split()[:2] for line in quiet.getvalue().splitlines()] == [["quarantined", "c"], ["quarantined", "b"]]
    printed = verbose.getvalue().splitlines()
    assert len(printed) == len(_events())  # one plain line per event, as `run` printed before
    assert printed[2] == "[ingest] recording=a, status=done, seconds=1800.0"


def test_on_a_terminal_the_stage_bars_are_redrawn_in_place():
    stream = io.StringIO()
    _feed(RunConsole(stream, NORMAL, force_terminal=True, width=120), pause=0.3)  # rich redraws 4x a second
    raw = stream.getvalue()
    screen = pyte.Screen(120, 50)
    screen.set_mode(pyte.modes.LNM)  # a newline returns to the first column, as on a terminal's tty
    pyte.Stream(screen).feed(raw)
    shown = [line.rstrip() for line in screen.display if line.strip()]
    # what stays on screen: the found line, two quarantine lines, one bar per stage, each bar once
    assert len(shown) == 3 + 1 + len(STAGE_NAMES), shown
    assert shown[0] == "3 recordings found" and shown[1].startswith("quarantined c (ingest, empty)")
    bars = {line.split()[0]: line for line in shown[3:]}
    assert set(bars) == {"ingest", *STAGE_NAMES}
    # a bar counts recordings handled (done or quarantined), and says how many were quarantined
    assert "3/3" in bars["ingest"] and bars["ingest"].endswith("1 quarantined")
    assert "2/2" in bars["tracks"] and bars["tracks"].endswith("1 quarantined")
    assert "1/1" in bars["vad"] and "1/1" in bars["asr"] and "quarantined" not in bars["asr"]
    assert " 1.00 h audio " in bars["ingest"] and " 0.50 h audio " in bars["asr"]
    assert raw.count("\n") > 2 * len(shown)  # drawn many times, seen once: redrawn in place


def test_evaluate_prints_one_row_per_metric_and_the_weakest_recordings_in_one_line():
    score = {"f1": 0.9, "precision": 0.8, "recall": 1.0, "tp": 9, "fp": 2, "fn": 0, "median_boundary_error_ms": 4.0}
    report = {"ipu": score, **{f"ipu:rec{i:02d}": {**score, "f1": 1 - i / 100} for i in range(20)},
              "pause": score, "gap": {**score, "median_boundary_error_ms": float("nan")}}
    lines = score_table(report)
    assert len(lines) == 1 + 3 + 1
    assert lines[0].split()[:4] == ["metric", "F1", "precision", "recall"]
    assert lines[1].split() == ["ipu", "0.900", "0.800", "1.000", "9", "2", "0", "4.0"]
    assert "lowest 3 of 20: rec19 0.810, rec18 0.820, rec17 0.830" in lines[-1]
    every = score_table(report, by_recording=True)
    assert len(every) == 1 + 3 + 20 and every[-1].split()[:3] == ["ipu", "rec19", "0.810"]


LOGS_PROBE = textwrap.dedent("""
    import logging, os, sys, warnings
    from duplexcorpus.runlogs import run_logs
    with run_logs(sys.argv[1], sys.argv[2]) as console:
        os.write(1, b"C-level stdout\\n")
        os.write(2, b"C-level stderr\\n")
        print("a library's print")
        logging.getLogger("somelibrary").warning("a library's warning")
        warnings.warn("a Python warning")
        logging.getLogger("duplexcorpus.probe").debug("our debug line")
        console.err.write("progress line\\n")
    print("after the run")
""")


@pytest.mark.parametrize("verbosity", [NORMAL, VERBOSE])
def test_run_logs_keep_the_console_for_ours_and_put_everything_else_in_out_logs(tmp_path, verbosity):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "pipeline")}
    done = subprocess.run([sys.executable, "-c", LOGS_PROBE, str(tmp_path), verbosity], env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    libraries = (tmp_path / "logs" / "ray.log").read_text()
    ours = (tmp_path / "logs" / "duplexcorpus.log").read_text()
    assert "our debug line" in ours and "our debug line" not in libraries
    assert "a library's warning" in libraries and "a Python warning" in libraries
    if verbosity == NORMAL:
        assert done.stdout == "after the run\n" and done.stderr == "progress line\n"
        for text in ("C-level stdout", "C-level stderr", "a library's print"):
            assert text in libraries
    else:  # --verbose: everything still prints, the files are written too
        assert "C-level stdout" in done.stdout and "a library's print" in done.stdout
        assert "C-level stderr" in done.stderr and "progress line" in done.stderr


def test_a_stage_reports_each_recording_through_the_hook(tmp_path):
    """The real ingest stage, in this process: one event per recording, the empty file named with
    its reason; a second pass reports the finished one as cached."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(SAMPLES / "audio" / "en_support_clean.flac", folder)
    shutil.copy(SAMPLES / "audio" / "broken_empty.wav", folder)
    workflow = load_workflow(None)
    found = discover(folder, workflow.input, None)
    cache = StageCache(tmp_path / "out" / "cache")
    for expected in ("done", "cached"):
        heard: list[tuple[str, dict]] = []
        items = [WorkItem(input=dataclasses.asdict(i)) for i in found.inputs]
        execute_local([INGEST], items, workflow, cache, lambda step, info: heard.append((step, info)))
        by_id = {info["recording"]: (step, info) for step, info in heard}
        assert len(heard) == 2 and set(by_id) == {"en_support_clean", "broken_empty"}
        step, info = by_id["en_support_clean"]
        assert step == "ingest" and info["status"] == expected and info["seconds"] == pytest.approx(37.5, abs=0.1)
        step, info = by_id["broken_empty"]
        assert info["status"] == "quarantined" and info["code"] == "empty" and "broken_empty.wav" in info["reason"]


# ----------------------------------------------------------------------- the real CLI (slow)
RECORDINGS = ("en_support_clean", "en_planning_mismatch")
SUMMARY_LINES = 4  # done / words / tables / logs


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "FORCE_COLOR", "TTY_COMPATIBLE")}
    env["PYTHONPATH"] = str(ROOT / "pipeline")
    for _ in range(2):  # on an overloaded 2-core machine a local Ray sometimes times out starting: once more
        done = subprocess.run([sys.executable, "-c", "from duplexcorpus.cli import main; main()", *args], env=env,
                              capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        if "a local Ray did not start" not in done.stderr:
            break
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


def _lines(done: subprocess.CompletedProcess) -> list[str]:
    """Everything printed, in order: progress and quarantines (stderr) come before the summary (stdout)."""
    return done.stderr.splitlines() + done.stdout.splitlines()


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """Two sample recordings and an empty .wav: a fresh run and `evaluate` (the demo, smaller), then
    the same run again (everything cached) with --verbose on Ray and with --quiet in-process."""
    folder = tmp_path_factory.mktemp("console") / "in"
    folder.mkdir()
    for name in RECORDINGS:
        shutil.copy(SAMPLES / "audio" / f"{name}.flac", folder)
    shutil.copy(SAMPLES / "audio" / "broken_empty.wav", folder)
    rows = (SAMPLES / "audio" / "metadata.csv").read_text().splitlines()
    (folder / "metadata.csv").write_text("\n".join([rows[0]] + [r for r in rows[1:] if r.split(",")[0] in RECORDINGS]) + "\n")
    out = folder.parent / "out"
    runs = {"normal": _cli("run", str(folder), "--out", str(out))}
    runs["evaluate"] = _cli("evaluate", str(out), "--truth", str(SAMPLES / "truth"))
    runs["verbose"] = _cli("run", str(folder), "--out", str(out), "--verbose")
    runs["quiet"] = _cli("run", str(folder), "--out", str(out), "--quiet", "--executor", "local")
    return out, runs


@pytest.mark.slow
def test_the_demo_prints_a_line_per_stage_per_quarantine_and_the_summary(cli_runs):
    from duplexcorpus.stages import STAGES

    _, runs = cli_runs
    printed, scores = _lines(runs["normal"]), _lines(runs["evaluate"])
    assert len(printed) == 1 + 1 + len(STAGES) + SUMMARY_LINES, printed
    assert len(printed) + len(scores) <= 40
    assert printed[0] == "3 recordings found"
    assert [line.split()[0] for line in printed[2:2 + len(STAGES)]] == [s.name for s in STAGES]
    assert printed[2].split()[:2] == ["ingest", "2/3"] and all(" 2/2 " in line for line in printed[3:2 + len(STAGES)])
    assert printed[-SUMMARY_LINES].startswith("done: 2 recordings, 1 quarantined")
    for noise in ("logging_progress", "core_worker", "INFO", "WARNING", "Execution plan", "Ray"):
        assert not any(noise in line for line in printed), noise
    assert scores[0].split()[:2] == ["metric", "F1"] and scores[1].split()[0] == "ipu" and float(scores[1].split()[1]) > 0.9


@pytest.mark.slow
def test_an_empty_wav_prints_one_line_naming_it(cli_runs):
    _, runs = cli_runs
    for how in ("normal", "quiet"):
        named = [line for line in _lines(runs[how]) if "broken_empty" in line and "quarantine" in line
                 and "quarantine.parquet" not in line]
        assert named == [f"quarantined broken_empty (ingest, empty): {cli_runs[0].parent / 'in' / 'broken_empty.wav'}: "
                         "file is empty (0 bytes)"], how


@pytest.mark.slow
def test_ray_and_library_logs_are_in_out_logs(cli_runs):
    out, _ = cli_runs
    ray_log = (out / "logs" / "ray.log").read_text()
    assert "Started a local Ray instance" in ray_log and "Execution plan" in ray_log
    assert "core_worker" in ray_log  # Ray's C++ core writes to fd 2: caught there, not on the console
    sessions = [s for s in (out / "logs" / "ray").iterdir() if list(s.glob("worker-*.err"))]
    assert len(sessions) == 2  # the fresh and the verbose run (the quiet one ran in-process)
    assert all((s / "raylet.out").exists() and (s / "gcs_server.out").exists() for s in sessions)
    ours = (out / "logs" / "duplexcorpus.log").read_text()
    assert "'recording': 'broken_empty', 'status': 'quarantined'" in ours and "[asr] {'recording': 'en_support_clean'" in ours
    assert "run finished: 2 recordings, 1 quarantined" in ours


@pytest.mark.slow
def test_quiet_prints_the_quarantine_and_the_summary_and_verbose_prints_everything(cli_runs):
    _, runs = cli_runs
    quiet, normal, verbose = _lines(runs["quiet"]), _lines(runs["normal"]), _lines(runs["verbose"])
    assert len(quiet) == 1 + SUMMARY_LINES, quiet
    assert quiet[0].startswith("quarantined broken_empty") and quiet[1].startswith("done: 2 recordings")
    assert len(verbose) > 3 * len(normal)
    assert any("[asr] recording=en_support_clean, status=cached" in line for line in verbose)
    assert any("Started a local Ray instance" in line for line in verbose)  # Ray's own logging, as before


@pytest.mark.slow
def test_a_ray_that_does_not_start_is_one_error_line_naming_its_logs(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    shutil.copy(SAMPLES / "audio" / "en_support_clean.flac", folder)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "pipeline")}
    done = subprocess.run([sys.executable, "-c", "from duplexcorpus.cli import main; main()", "run", str(folder),
                           "--out", str(out), "--set", "ray.object_store_memory=1000"],  # below Ray's minimum
                          env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 1
    printed = done.stderr.splitlines() + done.stdout.splitlines()
    assert printed[0] == "1 recording found" and len(printed) == 2, printed
    assert printed[1].startswith("Error: a local Ray did not start (ValueError: ") and "Traceback" not in done.stderr
    kept = next((out / "logs" / "ray").iterdir())
    assert f"its logs are in {kept}." in printed[1] and (kept / "gcs_server.out").exists()
