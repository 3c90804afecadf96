"""Does a refactor change what users see? Run data_samples with an older commit and with this
checkout, then compare: every table equal (columns the newer contract adds are listed, never
compared away silently) and every shard byte-identical.

    python bench/identical_outputs.py --ref 21d0aba          # the commit before the house (issue 9)
    python bench/identical_outputs.py --ref REF --baseline /tmp/old-run   # reuse a finished old run

The old commit runs from a git worktree with this venv; before the package rename its import name
was `pipeline`, so the command module is found either way. Both runs use the in-process executor
(the Ray executor gives the same bytes; `tests/test_end_to_end.py` checks that for the new code).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("recordings", "segments", "words", "events", "quarantine")


def run_checkout(src: Path, out: Path, module: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(src if module == "pipeline.cli" else src / "pipeline")}
    cmd = [sys.executable, "-m", module, "run", str(ROOT / "data_samples" / "audio"), "--out", str(out),
           "--workflow", str(ROOT / "workflows" / "samples.yaml"), "--executor", "local"]
    subprocess.run(cmd, check=True, env=env, cwd=src)


def old_run(ref: str, out: Path) -> None:
    tree = Path(tempfile.mkdtemp(prefix="dxc-ref-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref], check=True)
    try:
        module = "duplexcorpus.cli" if (tree / "pipeline" / "duplexcorpus").is_dir() else "pipeline.cli"
        run_checkout(tree, out, module)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def compare(old: Path, new: Path) -> list[str]:
    problems, notes = [], []
    for table in TABLES:
        a = pd.read_parquet(old / "tables" / f"{table}.parquet")
        b = pd.read_parquet(new / "tables" / f"{table}.parquet")
        added = [c for c in b.columns if c not in a.columns]
        missing = [c for c in a.columns if c not in b.columns]
        if missing:
            problems.append(f"{table}: columns gone {missing}")
        if added:
            notes.append(f"{table}: new columns {added} (named by the issue; not compared)")
        shared = [c for c in a.columns if c in b.columns]
        if len(a) != len(b):
            problems.append(f"{table}: {len(a)} rows before, {len(b)} after")
            continue
        for col in shared:
            if not a[col].astype(str).equals(b[col].astype(str)):
                bad = (a[col].astype(str) != b[col].astype(str)).sum()
                problems.append(f"{table}.{col}: {bad} of {len(a)} rows differ")
        print(f"{table:12s} {len(b):6d} rows, {len(shared)} columns equal" if not problems else f"{table:12s} checked")
    old_shards = sorted(p.name for p in (old / "shards").glob("*.tar"))
    new_shards = sorted(p.name for p in (new / "shards").glob("*.tar"))
    if old_shards != new_shards:
        problems.append(f"shard files differ: {old_shards} vs {new_shards}")
    for name in sorted(set(old_shards) & set(new_shards)):
        ha = hashlib.sha256((old / "shards" / name).read_bytes()).hexdigest()
        hb = hashlib.sha256((new / "shards" / name).read_bytes()).hexdigest()
        print(f"{name:24s} {'identical' if ha == hb else 'DIFFERENT'} sha256 {hb[:16]}")
        if ha != hb:
            problems.append(f"{name}: bytes differ")
    for note in notes:
        print("note:", note)
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", default="21d0aba", help="the older commit to compare against")
    ap.add_argument("--baseline", type=Path, help="a finished run of the older commit (skips running it)")
    ap.add_argument("--current", type=Path, help="a finished run of this checkout (skips running it)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "dxc-identical")
    args = ap.parse_args()
    old = args.baseline or args.work / "old"
    if not args.baseline:
        old_run(args.ref, old)
    new = args.current or args.work / "new"
    if not args.current:
        run_checkout(ROOT, new, "duplexcorpus.cli")
    problems = compare(old, new)
    print("IDENTICAL" if not problems else "DIFFERENT:\n  " + "\n  ".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
