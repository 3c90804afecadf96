"""One stage's time on data_samples, this tree against an earlier commit, in one run (as a ratio).

    .venv/bin/python bench/bench_stage_time.py --base 21d0aba --stage asr --rounds 2

Each tree runs the samples workflow once to fill its cache. Then, per round and tree in turn: the
cached outputs of the stage and of the stages after it are deleted and the run resumed (it redoes
just those), and the run is resumed once more with everything cached (start-up, planning, tables,
shards: the overhead). The stage's time is the difference, in CPU seconds of the child processes
(user + system; less disturbed by other work on a shared machine than wall time) and in wall seconds.
Downstream stages that are cheap and exist in both trees (events, samples) are inside both numbers;
`--off` turns off stages only the newer tree has (e.g. nonverbal.enabled=false) so they are not.

The earlier commit is checked out as a detached git worktree under /tmp; a tree from before the
package rename (`pipeline/cli.py`) runs as `python -m pipeline.cli` from its root, a newer one as
`python -m duplexcorpus.cli` with its own `pipeline/` first on the path. Both use this checkout's
virtual environment.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = ROOT / ".venv" / "bin" / "python"
AFTER_ASR = ("asr", "nonverbal", "events", "samples")  # the stage and what reads it, in any tree


def checkout(ref: str) -> Path:
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref], capture_output=True, text=True,
                         check=True).stdout.strip()
    tree = Path(f"/tmp/dxc-stage-{sha}")
    if not tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), sha], check=True,
                       capture_output=True)
    return tree


def command(tree: Path, out: Path, sets: list[str]) -> tuple[list[str], dict, Path]:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    args = ["run", str(ROOT / "data_samples" / "audio"), "--out", str(out), "--workflow",
            str(tree / "workflows" / "samples.yaml"), "--executor", "local"]
    for s in sets:
        args += ["--set", s]
    if (tree / "pipeline" / "duplexcorpus").is_dir():
        env["PYTHONPATH"] = str(tree / "pipeline")
        return [str(PY), "-m", "duplexcorpus.cli", *args], env, tree
    return [str(PY), "-m", "pipeline.cli", *args], env, tree


def timed(cmd: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="the earlier commit")
    ap.add_argument("--stage", default="asr", choices=("asr",), help="the stage timed (with what reads it)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--off", action="append", default=[], metavar="KEY=VALUE",
                    help="workflow overrides for this tree only, e.g. nonverbal.enabled=false")
    args = ap.parse_args()
    trees = {"base": (checkout(args.base), []), "this": (ROOT, args.off)}
    work = Path("/tmp/dxc-stage-runs")
    shutil.rmtree(work, ignore_errors=True)
    cmds = {name: command(tree, work / name, sets) for name, (tree, sets) in trees.items()}
    for name, (cmd, env, cwd) in cmds.items():  # fill each cache once
        timed(cmd, env, cwd)
    cpu = {name: [] for name in cmds}
    wall = {name: [] for name in cmds}
    for r in range(args.rounds):
        for name, (cmd, env, cwd) in cmds.items():
            for stage in AFTER_ASR:
                shutil.rmtree(work / name / "cache" / stage, ignore_errors=True)
            c1, w1 = timed(cmd, env, cwd)
            c0, w0 = timed(cmd, env, cwd)  # everything cached: the overhead
            cpu[name].append(c1 - c0)
            wall[name].append(w1 - w0)
            print(f"round {r + 1} {name:5s} {args.stage} + downstream: cpu {c1 - c0:6.1f} s  wall {w1 - w0:6.1f} s"
                  f"  (overhead cpu {c0:.1f} s)", flush=True)
    base, this = min(cpu["base"]), min(cpu["this"])
    print(f"\n{args.stage} on data_samples, best of {args.rounds}: base {args.base} cpu {base:.1f} s, this tree "
          f"cpu {this:.1f} s -> ratio {this / base:.2f}  (wall {min(wall['this']) / min(wall['base']):.2f})")


if __name__ == "__main__":
    sys.exit(main())
