"""VGGish (AudioSet) with the 128 -> 512 -> 512 head of SSPL and SACL (docs/method.md, "Networks").

Parameter names are torchvggish's (``features.*``, ``embeddings.*``) plus the reference
repositories' head (``fc.0``, ``fc.2``), so ``vggish-10086976.pth`` loads into the backbone
and the released SACL ``sound_best.pth`` loads into the whole module, both strictly.
"""
from __future__ import annotations

import torch
from torch import nn

from .vgg import vgg_layers

# conv channels, "M" = 2x2 max-pool: [N, 1, 96, 64] -> [N, 512, 6, 4]
LAYOUT = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")
FLAT = 512 * 6 * 4  # 12288
EMBED = 128


class VGGish(nn.Module):
    """Per 0.96 s example: log-mel [N, 1, 96, 64] -> (embedding [N, 128], a [N, out_dim]).

    The embedding is VGGish's (after its last ReLU, no PCA/quantisation); ``a`` is the head
    FC 128->512, ReLU, FC 512->out_dim. Averaging over the examples of a clip is AVNet's job.
    """

    def __init__(self, out_dim: int = 512):
        super().__init__()
        self.features = nn.Sequential(*vgg_layers(LAYOUT, 1))
        self.embeddings = nn.Sequential(
            nn.Linear(FLAT, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, EMBED), nn.ReLU(inplace=True))
        self.fc = nn.Sequential(nn.Linear(EMBED, 512), nn.ReLU(inplace=True),
                                nn.Linear(512, out_dim))
        self.embed_dim = EMBED
        self.out_dim = out_dim

    def backbone_modules(self) -> list[nn.Module]:
        """The AudioSet-pretrained part (frozen in SSPL)."""
        return [self.features, self.embeddings]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.features(x)  # [N, 512, 6, 4]
        # VGGish was trained in TensorFlow (NHWC): flatten in (H, W, C) order.
        x = x.permute(0, 2, 3, 1).flatten(1)  # [N, 12288]
        emb = self.embeddings(x)  # [N, 128]
        return emb, self.fc(emb)
