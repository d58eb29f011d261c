"""The edge model's pretrained audio encoder: frozen SoundNet-8 + a trainable head.

A from-scratch audio CNN trained on a few recordings per class learns those recordings, not
the classes: new recordings of a heard class fall to chance. SoundNet-8 was trained on two
million unlabelled Flickr videos (to predict what ImageNet and Places networks see in their
frames), and its intermediate features tell classes apart across recordings it never heard
(``benchmarks/probe_audio.py``: leave-one-recording-out linear probe on the asset pack,
``benchmarks/results/audio_probe.md``). It stays frozen: its features are what transfers.

    net = SoundNetAudio(512)                    # random trunk until weights are loaded
    emb, a = net(waveform22k)                   # [B, T] in [-1, 1] -> [B, D], [B, 512]
"""
from __future__ import annotations

import torch
from torch import nn

from .soundnet import INPUT_SCALE, SAMPLE_RATE, SoundNet8

LAYER = "pool5"  # the probe's best layer (conv5 after its max-pool, 256 channels)
POOLING = "meanmax"  # mean and max over time, concatenated: 512


class SoundNetAudio(nn.Module):
    """Waveform [B, T] at 22050 Hz in [-1, 1] -> (emb [B, D] frozen SoundNet embedding,
    a [B, out_dim]).

    The head is FC D -> 512, ReLU, FC 512 -> out_dim, as VGGish's 128 -> 512 -> 512 head.
    ``emb`` ranks false negatives in SACL (as the reference ranks them by VGGish's pretrained
    embedding): it is not trained in the same run.
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, out_dim: int = 512, layer: str = LAYER, pooling: str = POOLING):
        super().__init__()
        self.soundnet = SoundNet8(layer, pooling).requires_grad_(False)
        self.soundnet.heads = nn.ModuleDict()  # unused by the embedding; see load_soundnet
        self.embed_dim = self.soundnet.embedding_size
        self.head = nn.Sequential(nn.Linear(self.embed_dim, 512), nn.ReLU(inplace=True), nn.Linear(512, out_dim))

    def load_soundnet(self, path=None) -> None:
        """Load SoundNet-8 strictly from ``sound8.npy`` (default: the installed ``soundnet``
        package's), then drop its ImageNet / Places heads: the embedding does not use them
        (11.5 M parameters that checkpoints and graphs need not carry)."""
        from .soundnet import load_soundnet

        loaded = load_soundnet(self.soundnet.layer, self.soundnet.pooling, path)
        loaded.heads = nn.ModuleDict()
        self.soundnet = loaded

    def backbone_modules(self) -> list[nn.Module]:
        return [self.soundnet]

    def embed(self, waveform: torch.Tensor) -> torch.Tensor:
        """The frozen embedding [B, D] (no gradient flows into SoundNet)."""
        with torch.no_grad():
            return self.soundnet(waveform * INPUT_SCALE)

    def forward(self, waveform: torch.Tensor):
        emb = self.embed(waveform)
        return emb, self.head(emb)
