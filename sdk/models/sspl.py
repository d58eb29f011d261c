"""SSPL for training: AVNet (VGG16 + VGGish [+ PCM]) and the SimSiam head over two views.

Inference needs only the AVNet (``model.net``); the head exists for the negative-free loss
of docs/method.md, "SSPL loss", which lives in avsdk.training.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import nn

from .avnet import AVNet
from .config import ModelConfig
from .simsiam import SimSiamHead

from avsdk.kernels import av_similarity


class SSPLOutput(NamedTuple):
    """Predictions p, detached projections z (stop-gradient) and similarity maps S."""

    p1: torch.Tensor  # [B, 2048]
    p2: torch.Tensor
    z1: torch.Tensor  # [B, 2048], detached
    z2: torch.Tensor
    s1: torch.Tensor  # [B, h, w] raw cosine map of view 1
    s2: torch.Tensor


class SSPL(nn.Module):
    """Self-supervised predictive learning (Song et al., CVPR 2022).

    Each view's visual map (after the PCM, when there is one) is pooled by its own min-max
    attention to the clip's audio vector (docs/method.md, "Similarity map"); the SimSiam head
    projects and predicts the pooled features of the two views.
    """

    def __init__(self, config: Optional[ModelConfig] = None, net: Optional[AVNet] = None):
        super().__init__()
        self.net = net if net is not None else AVNet(config or ModelConfig.sspl())
        self.head = SimSiamHead(self.net.config.embed_dim)

    def forward(self, view1: torch.Tensor, view2: torch.Tensor, log_mel: torch.Tensor) -> SSPLOutput:
        """view1, view2 [B, 3, 224, 224] (two crops of one frame), log_mel [B, N, 1, 96, 64]."""
        emb, a = self.net.audio_features(log_mel)
        pooled, maps = [], []
        for view in (view1, view2):
            v = self.net.refine(self.net.visual_features(view), emb)
            s, _, f = av_similarity(v, a)
            pooled.append(f)
            maps.append(s)
        p1, p2, z1, z2 = self.head(*pooled)
        return SSPLOutput(p1, p2, z1, z2, maps[0], maps[1])
