"""Close-talk attribution on real audio: the AMI 4-headset excerpt in ../shared/realdata
(en_ami_meeting60s_4ch: four per-speaker sources on one clock, human RTTM with 4 speakers), run as
one 4-channel recording through the pipeline and through plain per-channel silero (no leak
canceller, no crosstalk attribution) in the same process. Scores (`duplexcorpus.evaluate.
channel_attribution`): IPU attribution precision (an IPU on channel c is right when c's speaker
talks for at least half of it), recall of human turns >= 0.3 s, per-channel frame miss / false
alarm (DER components over the reference speech).

    .venv/bin/python bench/bench_ami_attribution.py [--set decrosstalk.method=hybrid] [--work /tmp/dxc-ami]

Channel -> speaker (realdata README, measured: each speaker 20-33 dB louder in their own turns):
source0 MEO015, source1 FEE013, source2 MEE014, source3 FEE016. Nothing was chosen on this file.
"""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import yaml

from duplexcorpus.config import load_workflow
from duplexcorpus.evaluate import channel_attribution
from duplexcorpus.runner import run

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("DUPLEXCORPUS_REALDATA", ROOT.parent / "shared" / "realdata"))
SOURCE = REAL / "en_ami_meeting60s_4ch"
SPEAKERS = ("MEO015", "FEE013", "MEE014", "FEE016")  # source0..3
SYSTEMS = {
    "pipeline": {"asr.enabled": False},
    "silero": {"asr.enabled": False, "crosstalk.enabled": False, "decrosstalk.enabled": False},
}


def rttm_turns(path: Path) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for line in path.read_text().splitlines():
        p = line.split()
        if p and p[0] == "SPEAKER":
            out.setdefault(p[7], []).append((float(p[3]), float(p[3]) + float(p[4])))
    return out


def write_input(audio_dir: Path) -> float:
    """The four sources as one 4-channel file (they share one clock); returns its duration."""
    chans = [sf.read(SOURCE / "sources" / f"source{k}.wav", dtype="float32")[0] for k in range(4)]
    n = min(len(c) for c in chans)
    audio_dir.mkdir(parents=True, exist_ok=True)
    sf.write(audio_dir / "ami_4ch.flac", np.stack([c[:n] for c in chans], axis=1), 16000, subtype="PCM_24")
    return n / 16000


def score(tables: Path, duration: float) -> dict:
    seg = pd.read_parquet(tables / "segments.parquet")
    turns = rttm_turns(SOURCE / "mixture.rttm")
    ipus = {c: [(r.start, r.end) for r in seg[seg.channel == c].itertuples()] for c in range(4)}
    return channel_attribution(ipus, {c: turns.get(s, []) for c, s in enumerate(SPEAKERS)}, duration)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="/tmp/dxc-ami")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="a workflow override for the pipeline (not the baseline)")
    a = ap.parse_args(argv)
    work = Path(a.work)
    duration = write_input(work / "audio")
    systems = {name: dict(o) for name, o in SYSTEMS.items()}
    for pair in a.sets:
        key, value = pair.split("=", 1)
        systems["pipeline"][key] = yaml.safe_load(value)
    results = {}
    for name, overrides in systems.items():
        out = work / f"run_{name}"
        shutil.rmtree(out, ignore_errors=True)
        run(work / "audio", out, load_workflow(None, overrides), executor="local")
        results[name] = score(out / "tables", duration)
    print(f"AMI 4-headset excerpt ({duration:.0f} s): attribution precision / turn recall (>= 0.3 s) / "
          "per-channel miss, false alarm")
    for name, r in results.items():
        chans = "  ".join(f"ch{c} {v['miss']:.2f}/{v['false_alarm']:.2f}" for c, v in r["channels"].items())
        print(f"  {name:9s} precision {r['precision']:.3f} ({r['ipus_right']}/{r['ipus']})  "
              f"recall {r['turn_recall']:.3f} ({r['turns_found']}/{r['turns']})  {chans}")
    return results


if __name__ == "__main__":
    main()
