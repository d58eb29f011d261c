"""One training step's loss for either scheme, from the model's pieces.

``Objective`` is an nn.Module so that DistributedDataParallel can wrap it: the whole loss is
computed inside ``forward``, which DDP needs to hook gradient synchronisation.
"""
from __future__ import annotations

import torch
from torch import nn

from avsdk.kernels import av_similarity
from avsdk.models import AVNet, SimSiamHead

from .sacl import false_negative_keep, sacl_loss
from .segmentation import positive_masks
from .sspl import sspl_loss


class Objective(nn.Module):
    """Loss of one batch. Holds the AVNet and, for SSPL, the SimSiam head.

    The visual input is either frames (full mode: the trunk runs here) or cached trunk
    features (fast mode: ``trunk_features=True``; only the projection, PCM and heads run).
    """

    def __init__(self, model: AVNet, scheme: str, config):
        super().__init__()
        self.model, self.scheme, self.config = model, scheme, config
        self.head = SimSiamHead(model.config.embed_dim) if scheme == "sspl" else None

    def visual(self, x: torch.Tensor, trunk_features: bool) -> torch.Tensor:
        """[B, 3, 224, 224] frames or [B, C_trunk, 14, 14] features -> [B, C, 14, 14]."""
        return self.model.project(x.float()) if trunk_features else self.model.visual_features(x)

    def forward(self, view1, view2, log_mel, seg1=None, seg2=None, trunk_features: bool = False,
                audio_embedded: bool = False):
        """Scalar loss. view1, view2: the two visual views; log_mel [B, N, 1, 96, 64] (or the
        model's waveform input, or with ``audio_embedded`` its frozen audio embedding);
        seg1, seg2 [B, 14, 14] segment ids (SACL)."""
        emb, a = self.model.audio_features(log_mel, embedded=audio_embedded)
        v1 = self.model.refine(self.visual(view1, trunk_features), emb)
        v2 = self.model.refine(self.visual(view2, trunk_features), emb)
        if self.scheme == "sspl":
            _, _, f1 = av_similarity(v1, a)
            _, _, f2 = av_similarity(v2, a)
            return sspl_loss(*self.head(f1, f2))
        with torch.no_grad():
            sim1, _, _ = av_similarity(v1, a)
            sim2, _, _ = av_similarity(v2, a)
            masks = positive_masks(sim1, sim2, seg1, seg2, self.config.retain)
        keep = None
        if self.config.remove_false_negatives:
            # the 128-d VGGish embedding as the reference; the small CNN has none (unless
            # the model has a PCM), so its 512-d audio vector ranks the clips instead
            keep = false_negative_keep(emb if emb is not None else a, self.config.negative_ratio)
        return sacl_loss(v1, v2, a, *masks, keep=keep, tau=self.config.tau)

    def param_groups(self) -> list[dict]:
        """AdamW groups: SACL one lr for all trainable parameters; SSPL the groups of
        docs/method.md, "SSPL loss"."""
        if self.scheme == "sacl":
            return [{"params": [p for p in self.model.parameters() if p.requires_grad], "lr": self.config.lr}]
        from .sspl import sspl_param_groups

        model = self.model
        grouped = {id(p) for m in (model.audio_net, self.head) for p in m.parameters()}
        if model.pcm is not None:
            grouped |= {id(p) for p in model.pcm.parameters()}
        rest = [p for p in model.parameters() if id(p) not in grouped]  # e.g. the 1x1 projection
        return sspl_param_groups(model.audio_net, self.head, model.pcm, self.config.lr_audio,
                                 self.config.lr_pcm, self.config.lr_head, extra=rest)
