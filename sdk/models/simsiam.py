"""SSPL's SimSiam projector and predictor (docs/method.md, "Networks").

Attribute names follow the reference (``projector.layer1.0`` ...), so SSPL's released
``ssl_head_best.pth`` loads strictly.
"""
from __future__ import annotations

import torch
from torch import nn


def _fc_bn(in_dim: int, out_dim: int, relu: bool = True, affine: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(in_dim, out_dim, bias=False),
                               nn.BatchNorm1d(out_dim, affine=affine)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Projector(nn.Module):
    """[B, in_dim] -> [B, 2048]: FC-BN-ReLU, FC-BN-ReLU, FC-BN (non-affine)."""

    def __init__(self, in_dim: int = 512, hidden: int = 2048, out_dim: int = 2048):
        super().__init__()
        self.layer1 = _fc_bn(in_dim, hidden)
        self.layer2 = _fc_bn(hidden, hidden)
        self.layer3 = _fc_bn(hidden, out_dim, relu=False, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer3(self.layer2(self.layer1(x.flatten(1))))


class Predictor(nn.Module):
    """[B, 2048] -> [B, 2048] through a 512-d bottleneck: FC-BN-ReLU, FC (with bias)."""

    def __init__(self, dim: int = 2048, hidden: int = 512):
        super().__init__()
        self.layer1 = _fc_bn(dim, hidden)
        self.layer2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer2(self.layer1(x))


class SimSiamHead(nn.Module):
    """Two pooled audio-visual features -> (p1, p2, z1, z2), z detached (stop-gradient)."""

    def __init__(self, in_dim: int = 512):
        super().__init__()
        self.projector = Projector(in_dim)
        self.predictor = Predictor()

    def forward(self, f1: torch.Tensor, f2: torch.Tensor):
        z1, z2 = self.projector(f1), self.projector(f2)  # [B, 2048] each
        p1, p2 = self.predictor(z1), self.predictor(z2)
        return p1, p2, z1.detach(), z2.detach()
