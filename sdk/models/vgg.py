"""VGG16 conv1_1 .. conv5_3 (torchvision ``features[0:29]``), SSPL's visual encoder.

The module is a Sequential named ``features`` with torchvision's indices, so the keys are
``features.N.weight`` and ``vgg16-*.pth`` loads strictly (its ``classifier.*`` keys are not
used). The last ReLU and pool are left out, as in SSPL: the map is conv5_3's raw output.
"""
from __future__ import annotations

import torch
from torch import nn

# channels per conv, "M" = 2x2 max-pool; ends at conv5_3 (index 28).
LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


def vgg_layers(layout, in_channels: int) -> list[nn.Module]:
    """VGG-style stack: an int is a 3x3 conv (padding 1) + ReLU, "M" a 2x2 max-pool.

    Shared by VGG16 and VGGish, so the layer indices (the state_dict keys
    ``features.N.*``) come out as in torchvision and torchvggish.
    """
    layers: list[nn.Module] = []
    for item in layout:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_channels, item, 3, padding=1), nn.ReLU(inplace=True)]
            in_channels = item
    return layers


class VGG16Conv5(nn.Module):
    """[B, 3, H, W] -> [B, 512, H/16, W/16] (conv5_3 before its ReLU)."""

    out_channels = 512

    def __init__(self):
        super().__init__()
        layers = vgg_layers(LAYOUT, 3)
        self.features = nn.Sequential(*layers[:-1])  # drop conv5_3's ReLU: indices 0..28

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
