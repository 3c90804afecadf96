"""Where a model runs: `auto` picks CUDA when this worker can see a GPU (Ray hides GPUs from
workers that asked for none), else the CPU."""
from __future__ import annotations


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested
