"""Speaker-disjoint train/valid/test splits.

Recordings that share a speaker are connected; every connected group goes to one split, chosen by a
stable hash of the group's smallest speaker id (so adding recordings never moves existing groups
unless they join a group). `split.pinned` forces a speaker's whole group into a split.
"""
from __future__ import annotations

import hashlib

from duplexcorpus.config import SplitConfig
from duplexcorpus.records import Recording

SPLITS = ("train", "valid", "test")


def _find(parent: dict[str, str], x: str) -> str:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def speaker_groups(recordings: list[Recording]) -> dict[str, list[str]]:
    """Connected components of speakers; returns group root -> recording ids."""
    parent: dict[str, str] = {}
    for rec in recordings:
        speakers = [c.speaker_id for c in rec.channels]
        for s in speakers:
            parent.setdefault(s, s)
        for s in speakers[1:]:
            a, b = _find(parent, speakers[0]), _find(parent, s)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[str, list[str]] = {}
    for rec in recordings:
        groups.setdefault(_find(parent, rec.channels[0].speaker_id), []).append(rec.recording_id)
    return groups


def assign_splits(recordings: list[Recording], cfg: SplitConfig) -> dict[str, str]:
    total = cfg.train + cfg.valid + cfg.test
    if total <= 0:
        raise ValueError("split ratios must sum to a positive number")
    bounds = [cfg.train / total, (cfg.train + cfg.valid) / total]
    by_id = {r.recording_id: r for r in recordings}
    out = {}
    for root, rids in speaker_groups(recordings).items():
        speakers = {c.speaker_id for rid in rids for c in by_id[rid].channels}
        pinned = {cfg.pinned[s] for s in speakers if s in cfg.pinned}
        if len(pinned) > 1:
            raise ValueError(f"speakers {sorted(speakers)} are connected but pinned to {sorted(pinned)}")
        if pinned:
            split = pinned.pop()
        else:
            u = int(hashlib.sha256(f"{cfg.seed}:{root}".encode()).hexdigest()[:12], 16) / 16**12
            split = SPLITS[0] if u < bounds[0] else SPLITS[1] if u < bounds[1] else SPLITS[2]
        for rid in rids:
            out[rid] = split
    return out
