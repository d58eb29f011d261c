"""SACL objective: rank-based false-negative removal + masked InfoNCE over two views.

docs/method.md, "SACL loss"; the reference is ``NetWrapper.forward`` / ``mask_pos_infonce`` in
zjsong/SACL main.py. The InfoNCE itself is ``avsdk.kernels.masked_infonce`` (the Triton
kernel on CUDA where ``infonce_triton_pays`` says the measurements favour it, the PyTorch twin
elsewhere).

Plain InfoNCE (``keep=None``): every other clip of the batch is a negative. The reference's
``select_neg_mask=None`` branch writes the logit -10 on every off-diagonal pair, which
contradicts its own comment ("all other samples are negatives") and is never reached by its
training loop; we implement the comment.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from avsdk.errors import bad_input, renamed_keyword
from avsdk.kernels import masked_infonce

TAU = 0.005
NEGATIVE_RATIO = 0.75


def false_negative_keep(embedding: torch.Tensor, ratio: float = NEGATIVE_RATIO) -> torch.Tensor:
    """Which pairs stay in the softmax: each clip itself plus its least similar clips.

    Args:
        embedding: audio embeddings [B, D] (the 128-d VGGish ones in the reference); they
            are L2-normalised here, and no gradient flows through the ranking.
        ratio: fraction of the batch kept as negatives per anchor, int(ratio * B) of them.

    Returns:
        keep [B, B] bool: keep[i, j] is True for j == i and for the int(ratio * B) clips j
        with the smallest cosine similarity to i (ascending stable sort, as argsort).
    """
    if embedding.dim() != 2:
        raise bad_input("embedding", "a tensor [B, D]", embedding)
    if not 0.0 <= ratio <= 1.0:
        raise bad_input("ratio", "a fraction in [0, 1]", ratio)
    unit = F.normalize(embedding.detach().float(), p=2, dim=1)
    similarity = unit @ unit.t()  # [B, B]
    batch = similarity.shape[0]
    least_similar = torch.argsort(similarity, dim=1, stable=True)[:, : int(ratio * batch)]
    keep = torch.eye(batch, dtype=torch.bool, device=embedding.device)
    return keep.scatter(1, least_similar, True)


@renamed_keyword("backend", "kernel")  # its old name, kept for one release
def sacl_loss(
    visual1: torch.Tensor,
    visual2: torch.Tensor,
    audio: torch.Tensor,
    mask1: torch.Tensor,
    mask2: torch.Tensor,
    keep: torch.Tensor | None = None,
    tau: float = TAU,
    kernel: str = "auto",
) -> torch.Tensor:
    """Sum over the two views of the masked InfoNCE (docs/method.md, "SACL loss", step 3), float32.

    Args:
        visual1, visual2: visual maps of the two views, [B, C, H, W] or [B, C, HW]
            (not normalised).
        audio: audio vectors [B, C] (not normalised; the 512-d ``a``).
        mask1, mask2: positive-region masks [B, H, W] or [B, HW].
        keep: [B, B] bool from ``false_negative_keep``; None keeps every pair (plain InfoNCE).
        tau: temperature.
        kernel: "auto" | "triton" | "torch", passed to ``masked_infonce`` (``backend=``, its
            old name, still works with a DeprecationWarning).

    Returns:
        scalar float32 loss.
    """
    if visual1.shape != visual2.shape or visual1.dim() not in (3, 4):
        raise bad_input("visual1, visual2", "two maps of one shape [B, C, H, W]",
                        (tuple(visual1.shape), tuple(visual2.shape)))
    batch, channels = visual1.shape[:2]
    if audio.shape != (batch, channels):
        raise bad_input("audio", f"a tensor [{batch}, {channels}]", audio)
    if keep is None:
        keep = torch.ones(batch, batch, dtype=torch.bool, device=audio.device)
    elif keep.shape != (batch, batch):
        raise bad_input("keep", f"a bool tensor [{batch}, {batch}]", keep)
    # float32 at least (logits reach 1 / tau = 200); float64 stays float64 (gradcheck)
    dtype = torch.promote_types(torch.promote_types(visual1.dtype, audio.dtype), torch.float32)
    audio_hat = F.normalize(audio.to(dtype), p=2, dim=1)
    loss = audio_hat.new_zeros(())
    for visual, mask in ((visual1, mask1), (visual2, mask2)):
        visual_hat = F.normalize(visual.flatten(2).to(dtype), p=2, dim=1)  # [B, C, HW]
        loss = loss + masked_infonce(visual_hat, mask.reshape(batch, -1).to(dtype), audio_hat,
                                     keep.bool(), tau=tau, kernel=kernel)
    return loss
