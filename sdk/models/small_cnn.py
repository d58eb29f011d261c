"""A small log-mel CNN: the edge model's audio encoder.

Why not VGGish: VGGish has 72.1 M parameters (67.6 M in its three FC layers) and costs
about 0.86 GMAC per 0.96 s example, and no VGGish weights ship with any package here, so
it would have to be trained from scratch. This network has about 0.8 M parameters and costs
about 0.022 GMAC per example (~40x less compute, ~90x fewer parameters): a few epochs over a
few thousand clips train in minutes on a 2-core CPU, and it quantizes like the visual trunk
(conv + BatchNorm + ReLU only). Global average pooling over time and frequency replaces
VGGish's huge flatten-FC, which is where its parameters are.
"""
from __future__ import annotations

import torch
from torch import nn

WIDTHS = (32, 64, 128, 256)


def _conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class SmallAudioCNN(nn.Module):
    """Per 0.96 s example: log-mel [N, 1, 96, 64] -> (None, a [N, out_dim]).

    Four conv-BN-ReLU stages (32, 64, 128, 256 channels; the first strided by 2, 2x2
    max-pool between them: 96x64 -> 6x4), global average pool, then the same kind of head as VGGish's
    (FC 256 -> 512, ReLU, FC 512 -> out_dim). There is no 128-d AudioSet embedding, so
    the first output is None, unless ``embedding=True``: then it is the pooled 256-d
    vector that feeds the head, the counterpart of VGGish's 128-d embedding (SSPL's PCM
    predicts it). The flag adds no parameters.
    """

    def __init__(self, out_dim: int = 512, embedding: bool = False):
        super().__init__()
        # log(mel + 0.01) spans roughly [-4.6, 5]: a BatchNorm on the input learns the
        # shift and scale instead of hard-coding dataset statistics.
        self.input_norm = nn.BatchNorm2d(1)
        stages: list[nn.Module] = []
        in_ch = 1
        for index, width in enumerate(WIDTHS):
            if index:
                stages.append(nn.MaxPool2d(2, 2))
            # the first conv strides by 2: full-resolution 96x64 maps with 32 channels
            # cost as much as the three later stages together, and a log-mel bin is
            # already coarse
            stages.append(_conv_bn_relu(in_ch, width, stride=2 if index == 0 else 1))
            in_ch = width
        self.features = nn.Sequential(*stages)
        self.fc = nn.Sequential(nn.Linear(in_ch, 512), nn.ReLU(inplace=True),
                                nn.Linear(512, out_dim))
        self.embed_dim = in_ch if embedding else None
        self.out_dim = out_dim

    def backbone_modules(self) -> list[nn.Module]:
        return []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        pooled = self.features(self.input_norm(x)).mean(dim=(2, 3))  # [N, 256]
        return (pooled if self.embed_dim else None), self.fc(pooled)
