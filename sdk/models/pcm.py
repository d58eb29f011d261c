"""SSPL's predictive coding module (PCM), after zjsong/SSPL sspl_w_pcm/models/pc_net.py.

A three-level recurrent hierarchy over the visual map, 14x14 (level 2, the input) ->
7x7 (level 1) -> 3x3 (level 0), topped by a prediction of the 128-d audio embedding:

* top-down (feedback): each level predicts the one above it, ``PredProcess[l + 1]``
  (3x3 conv + 2x2 max-pool); ``PredProcess[0]`` (1x1 conv 512 -> 128, GELU, global
  average pool) predicts the audio embedding from level 0;
* bottom-up (feed-forward): the prediction error of the level above is sent back down,
  ``ErrorProcess[l]`` (1x1 / stride-2 3x3 / upsample + 3x3 transposed convs), and added
  to the level's representation;
* updates are GELU(BatchNorm(.)) with their own BatchNorm per step, mixed by learned
  per-channel rates kept non-negative by a ReLU: ``b0`` (feedback, init 0.5) and ``a0``
  (feed-forward, init 1.0);
* one initial pass, then ``cycles`` (4) full cycles; ``ErrorProcess[3]`` (1x1 transposed
  conv with bias) maps the level-2 representation to the output [B, 512, 14, 14].

Attribute names (``PredProcess``, ``ErrorProcess``, ``b0``, ``a0``, ``BNPred``,
``BNError``, ``BNPred_step``, ``BNError_step``) are the reference's, so SSPL's released
``pcm_best.pth`` loads strictly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEVELS = 3  # 3x3, 7x7, 14x14


class _Predict(nn.Module):
    """Top-down step: 3x3 conv then 2x2 max-pool (reference: ``pred_module``)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv2d = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.Downsample = nn.MaxPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.Downsample(self.conv2d(x))


class _Correct(nn.Module):
    """Bottom-up step: 2x bilinear upsample (align_corners) then 3x3 transposed conv."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.convtrans2d = nn.ConvTranspose2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.Upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convtrans2d(self.Upsample(x))


def _rate(init: float, channels: int) -> nn.Parameter:
    return nn.Parameter(torch.full((1, channels, 1, 1), init))


class PredictiveCoding(nn.Module):
    """PCM: (visual [B, 512, 14, 14], audio [B, audio_dim]) -> [B, out_channels, 14, 14].

    ``audio`` is the clip's 128-d VGGish embedding, averaged over examples and
    L2-normalised (as the reference feeds it). Only 14x14 inputs give consistent shapes
    across levels (14 -> 7 -> 3 -> 7 -> 14), i.e. 224x224 frames through a stride-16 trunk.
    """

    def __init__(self, cycles: int = 4, audio_dim: int = 128, channels: int = 512,
                 out_channels: int = 512):
        super().__init__()
        self.cycles = cycles
        self.PredProcess = nn.ModuleList([
            nn.Conv2d(channels, audio_dim, 1),
            _Predict(channels, channels),
            _Predict(channels, channels)])
        self.ErrorProcess = nn.ModuleList([
            nn.ConvTranspose2d(audio_dim, channels, 1, bias=False),
            nn.ConvTranspose2d(channels, channels, 3, stride=2, bias=False),  # 3x3 -> 7x7
            _Correct(channels, channels),  # 7x7 -> 14x14
            nn.ConvTranspose2d(channels, out_channels, 1)])
        self.b0 = nn.ParameterList([_rate(0.5, channels) for _ in range(LEVELS)])
        self.a0 = nn.ParameterList([_rate(1.0, channels) for _ in range(LEVELS)])
        bn = nn.BatchNorm2d
        self.BNPred = nn.ModuleList([bn(channels) for _ in range(LEVELS - 1)])
        self.BNError = nn.ModuleList([bn(channels) for _ in range(LEVELS)])
        self.BNPred_step = nn.ModuleList([bn(channels) for _ in range((LEVELS - 1) * cycles)])
        self.BNError_step = nn.ModuleList([bn(channels) for _ in range(LEVELS * cycles)])

    def rate_parameters(self) -> list[nn.Parameter]:
        """The mixing rates; SSPL trains them without weight decay."""
        return list(self.b0) + list(self.a0)

    def _audio_error(self, audio: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
        """Audio embedding minus its prediction from level 0, broadcast to level 0's grid."""
        predicted = F.gelu(self.PredProcess[0](top)).mean(dim=(2, 3))  # [B, audio_dim]
        return (audio - predicted)[:, :, None, None].expand(-1, -1, *top.shape[2:])

    def _feedforward(self, pred: list, state: list, audio: torch.Tensor, norms) -> None:
        """Bottom-up error correction of every level, top first (in place on ``state``)."""
        error = self._audio_error(audio, state[0])
        for level in range(LEVELS):
            if level:
                error = state[level - 1] - pred[level - 1]
            rate = F.relu(self.a0[level])
            state[level] = F.gelu(norms[level](state[level] + rate * self.ErrorProcess[level](error)))

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        # pred[l]: top-down prediction at level l; pred[2] is the visual map itself.
        pred = [None, None, visual]
        for level in (1, 0):
            pred[level] = F.gelu(self.BNPred[level](self.PredProcess[level + 1](pred[level + 1])))
        # Initial feed-forward pass; the first error correction starts from the predictions.
        state = list(pred)
        self._feedforward(pred, state, audio, self.BNError)

        for t in range(self.cycles):
            rate = F.relu(self.b0[2])
            state[2] = F.gelu((1 - rate) * state[2] + rate * pred[2])  # no BatchNorm here
            for level in (1, 0):
                pred[level] = self.PredProcess[level + 1](state[level + 1])
                rate = F.relu(self.b0[level])
                norm = self.BNPred_step[(LEVELS - 1) * t + level]
                state[level] = F.gelu(norm((1 - rate) * state[level] + rate * pred[level]))
            self._feedforward(pred, state, audio, self.BNError_step[LEVELS * t: LEVELS * (t + 1)])

        return self.ErrorProcess[3](state[2])
