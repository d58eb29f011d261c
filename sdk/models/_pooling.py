"""Pooling over time of a [B, C, T] feature map, shared by the pretrained audio encoders."""
from __future__ import annotations

import torch

POOLINGS = ("mean", "max", "meanmax")


def pool_over_time(x: torch.Tensor, pooling: str) -> torch.Tensor:
    """[B, C, T] -> [B, C] ("mean", "max") or [B, 2C] ("meanmax": mean, then max)."""
    if pooling == "mean":
        return x.mean(dim=2)
    if pooling == "max":
        return x.amax(dim=2)
    return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)
