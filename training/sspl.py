"""SSPL objective: negative-free SimSiam loss with stop-gradient, and its optimiser groups.

docs/method.md, "SSPL loss"; the reference is zjsong/SSPL sspl_w_pcm (``SimSiamLoss``,
``create_optimizer``).
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F

from avsdk.errors import bad_input

LR_AUDIO_HEAD = 2e-5
LR_PCM = 2e-5
LR_SIMSIAM = 5e-5
WEIGHT_DECAY = 1e-4


def sspl_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """L = 0.5 * (-cos(p1, sg(z2)) - cos(p2, sg(z1))), each cosine averaged over the batch.

    Args:
        p1, p2: predictor outputs of the two views, [B, D].
        z1, z2: projector outputs of the two views, [B, D]; detached here (stop-gradient).

    Returns:
        scalar loss in [-1, 1].
    """
    if not p1.shape == p2.shape == z1.shape == z2.shape or p1.dim() != 2:
        raise bad_input("p1, p2, z1, z2", "four tensors of one shape [B, D]", [tuple(t.shape) for t in (p1, p2, z1, z2)])
    return 0.5 * (
        -F.cosine_similarity(p1, z2.detach(), dim=1).mean() - F.cosine_similarity(p2, z1.detach(), dim=1).mean()
    )


def _pcm_rate_parameters(pcm: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The PCM's learned update rates, which the reference trains without weight decay."""
    rates = getattr(pcm, "rate_parameters", None)
    if callable(rates):
        return list(rates())
    return [p for name, p in pcm.named_parameters() if "rate" in name or name.split(".")[0] in ("a0", "b0")]


def sspl_param_groups(
    audio_head: torch.nn.Module,
    ssl_head: torch.nn.Module,
    pcm: torch.nn.Module | None = None,
    lr_audio: float = LR_AUDIO_HEAD,
    lr_pcm: float = LR_PCM,
    lr_head: float = LR_SIMSIAM,
    extra: Iterable[torch.nn.Parameter] = (),
) -> list[dict]:
    """AdamW parameter groups of docs/method.md, "SSPL loss" (use with weight_decay=1e-4).

    Groups: the audio head (128->512->512) at lr_audio; the PCM convolutions and BatchNorms
    at lr_pcm; the PCM rates at lr_pcm with weight decay 0; the SimSiam projector and
    predictor at lr_head; ``extra`` parameters (e.g. a trainable 1x1 visual projection of
    the edge model, which the reference has not) at lr_pcm.
    """
    groups = [{"params": [p for p in audio_head.parameters() if p.requires_grad], "lr": lr_audio}]
    if pcm is not None:
        rates = _pcm_rate_parameters(pcm)
        rate_ids = {id(p) for p in rates}
        convs = [p for p in pcm.parameters() if id(p) not in rate_ids and p.requires_grad]
        groups.append({"params": convs, "lr": lr_pcm})
        groups.append({"params": rates, "lr": lr_pcm, "weight_decay": 0.0})
    groups.append({"params": [p for p in ssl_head.parameters() if p.requires_grad], "lr": lr_head})
    extra = [p for p in extra if p.requires_grad]
    if extra:
        groups.append({"params": extra, "lr": lr_pcm})
    return [g for g in groups if g["params"]]
