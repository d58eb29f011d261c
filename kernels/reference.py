"""Pure-PyTorch twins of the fused kernels: the spec, the CPU path, the ONNX path, the oracle.

Each function here has the same signature and return values as its Triton counterpart in
this package. docs/method.md ("Similarity map", "SACL loss") defines the math; the reference
repositories (zjsong/SSPL, zjsong/SACL) are the final word on details such as the 1e-10 in the
min-max attention and the -10 logit given to removed false negatives.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

MINMAX_EPS = 1e-10  # added to (max - min) in the attention, as the reference code does
FALSE_NEGATIVE_LOGIT = -10.0  # logit (before / tau) of a pair that is neither positive nor kept


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float32 for half inputs; float64 stays float64 (no silent downgrade; fp64 gradcheck)."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def av_similarity(visual: torch.Tensor, audio: torch.Tensor):
    """Cosine similarity map, min-max attention and attention-pooled feature.

    Args:
        visual: visual feature map, [B, C, H, W] or [B, C, HW] (not normalised).
        audio: audio vectors, [B, C] (not normalised).

    Returns:
        (S, A, f): S and A have the spatial shape of ``visual`` ([B, H, W] or [B, HW]);
        S[b, p] = <v[b,:,p]/|v[b,:,p]|, a[b]/|a[b]|>; A is S min-max normalised per b;
        f[b] = sum_p A[b, p] * v[b, :, p] with the un-normalised v, [B, C].
        S, A and f keep the input dtype (computed in float32 internally, float64 for
        float64 input).
    """
    spatial = visual.shape[2:]
    compute = _compute_dtype(visual, audio)
    v = visual.flatten(2).to(compute)  # [B, C, HW]
    a = audio.to(compute)
    v_hat = F.normalize(v, p=2, dim=1)
    a_hat = F.normalize(a, p=2, dim=1)
    sim = torch.einsum("bcp,bc->bp", v_hat, a_hat)  # [B, HW]
    lo = sim.min(dim=1, keepdim=True).values
    hi = sim.max(dim=1, keepdim=True).values
    if sim.shape[1] == 1:  # A = 0 whatever S is: no gradient, not two terms of 1 / eps that
        att = sim * 0.0    # cancel (in float32, dL/dS would be lost with them)
    else:
        att = (sim - lo) / (hi - lo + MINMAX_EPS)
    pooled = torch.einsum("bcp,bp->bc", v, att)  # [B, C]
    dtype = visual.dtype
    return (
        sim.to(dtype).reshape(visual.shape[0], *spatial),
        att.to(dtype).reshape(visual.shape[0], *spatial),
        pooled.to(dtype),
    )


def masked_similarity_logits(visual_hat, mask, audio_hat):
    """s[i, j] = max_p mask[i, p] * <visual_hat[i, :, p], audio_hat[j]>, [B, B] float32 (or 64).

    Masked positions contribute 0 to the max (the reference multiplies the normalised map by
    the mask before the dot product), so a row whose mask is all zero gets s = 0.

    ``max(dim).values``, as the SACL code's ``torch.max(sim, dim=0).values``, sends the whole
    gradient of s[i, j] to one position; ``amax`` would share it among tied positions. The
    two differ only on exact ties between unmasked positions (tied masked positions get no
    gradient either way, since the mask multiplies it), and the fused kernel follows max.
    """
    compute = _compute_dtype(visual_hat, audio_hat)
    # the mask is a constant (no gradient goes to it, as in the kernel)
    v = visual_hat.to(compute) * mask.detach().to(compute).unsqueeze(1)  # [B, C, HW]
    a = audio_hat.to(compute)  # [B, C]
    dots = torch.einsum("icp,jc->ijp", v, a)  # [B, B, HW]
    return dots.max(dim=2).values


def masked_infonce(visual_hat, mask, audio_hat, keep, tau: float = 0.005):
    """SACL masked InfoNCE for one view (docs/method.md, "SACL loss", step 3), float32.

    Args:
        visual_hat: L2-normalised visual maps, [B, C, HW].
        mask: positive-region masks, [B, HW] (binary; any float/bool dtype).
        audio_hat: L2-normalised audio vectors, [B, C].
        keep: [B, B] bool; keep[i, j] True where the pair enters the softmax with its own
            logit (the positive j == i and the kept negatives). Every other pair gets the
            logit -10 before the division by tau, exactly as the reference code.
        tau: temperature (0.005 in SACL).

    Returns:
        scalar float32 loss (float64 for float64 input): mean over i of
        cross-entropy(s[i] / tau, target i).
    """
    logits = masked_similarity_logits(visual_hat, mask, audio_hat)
    logits = torch.where(keep.bool(), logits, torch.full_like(logits, FALSE_NEGATIVE_LOGIT))
    target = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits / tau, target)
