"""Fused audio-visual similarity map (SPEC section 3) in Triton: forward, backward, autograd.

One program per clip b holds the whole spatial row [HW] in registers and walks the channels
in blocks of BLOCK_C:

    forward   pass 1 over v[b]: <v, a>, |v|^2, |a|^2      -> S, min-max attention A
              pass 2 over v[b]: f = sum_p A[p] v[:, p]     (v[b] is hot in L2 by then)
    backward  pass 1 over v[b]: <gf, v[:, p]>              -> dL/dA, then dL/dS incl. min/max
              pass 2 over v[b]: dL/dv and dL/da

No [B, C, HW] temporary is written: the normalised map, the masked copies and the products
that the reference builds stay in registers. The twin is ``reference.av_similarity``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import _alloc
from .reference import MINMAX_EPS

NORM_EPS = 1e-12  # F.normalize's eps: norms are clamped to at least this


@triton.jit
def _similarity_fwd_kernel(
    v_ptr,  # [B, C, HW] visual map (not normalised), contiguous
    a_ptr,  # [B, C] audio vectors (not normalised), contiguous
    s_ptr,  # [B, HW] float32 out: cosine map S
    att_ptr,  # [B, HW] float32 out: min-max attention A
    f_ptr,  # [B, C] out, in f's dtype: attention-pooled feature
    vnorm_ptr,  # [B, HW] float32 out: max(|v[b, :, p]|, eps), for the backward
    anorm_ptr,  # [B] float32 out: max(|a[b]|, eps), for the backward
    ext_ptr,  # [B, 2] int32 out: argmin and argmax of S[b], where the min/max gradient goes
    C,
    HW,
    NORM_EPS: tl.constexpr,
    MINMAX_EPS: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_HW: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    offs_p = tl.arange(0, BLOCK_HW)
    p_ok = offs_p < HW
    v_map = v_ptr + b * C * HW

    dot = tl.zeros([BLOCK_HW], dtype=tl.float32)
    v_sq = tl.zeros([BLOCK_HW], dtype=tl.float32)
    a_sq = tl.zeros([BLOCK_C], dtype=tl.float32)
    for c0 in range(0, C, BLOCK_C):
        offs_c = c0 + tl.arange(0, BLOCK_C)
        c_ok = offs_c < C
        v = tl.load(v_map + offs_c[:, None] * HW + offs_p[None, :],
                    mask=c_ok[:, None] & p_ok[None, :], other=0.0).to(tl.float32)
        a = tl.load(a_ptr + b * C + offs_c, mask=c_ok, other=0.0).to(tl.float32)
        dot += tl.sum(v * a[:, None], axis=0)
        v_sq += tl.sum(v * v, axis=0)
        a_sq += a * a
    vnorm = tl.maximum(tl.sqrt(v_sq), NORM_EPS)
    anorm = tl.maximum(tl.sqrt(tl.sum(a_sq, axis=0)), NORM_EPS)
    sim = dot / (vnorm * anorm)

    lo, i_lo = tl.min(tl.where(p_ok, sim, float("inf")), axis=0, return_indices=True)
    hi, i_hi = tl.max(tl.where(p_ok, sim, float("-inf")), axis=0, return_indices=True)
    att = tl.where(p_ok, (sim - lo) / (hi - lo + MINMAX_EPS), 0.0)

    tl.store(s_ptr + b * HW + offs_p, sim, mask=p_ok)
    tl.store(att_ptr + b * HW + offs_p, att, mask=p_ok)
    tl.store(vnorm_ptr + b * HW + offs_p, vnorm, mask=p_ok)
    tl.store(anorm_ptr + b, anorm)
    tl.store(ext_ptr + 2 * b, i_lo.to(tl.int32))
    tl.store(ext_ptr + 2 * b + 1, i_hi.to(tl.int32))

    for c0 in range(0, C, BLOCK_C):
        offs_c = c0 + tl.arange(0, BLOCK_C)
        c_ok = offs_c < C
        v = tl.load(v_map + offs_c[:, None] * HW + offs_p[None, :],
                    mask=c_ok[:, None] & p_ok[None, :], other=0.0).to(tl.float32)
        pooled = tl.sum(v * att[None, :], axis=1)
        tl.store(f_ptr + b * C + offs_c, pooled.to(f_ptr.dtype.element_ty), mask=c_ok)


@triton.jit
def _similarity_bwd_kernel(
    v_ptr,  # [B, C, HW] visual map, as in the forward
    a_ptr,  # [B, C] audio vectors, as in the forward
    s_ptr,  # [B, HW] float32: S from the forward
    att_ptr,  # [B, HW] float32: A from the forward
    vnorm_ptr,  # [B, HW] float32: clamped visual norms from the forward
    anorm_ptr,  # [B] float32: clamped audio norms from the forward
    ext_ptr,  # [B, 2] int32: argmin, argmax of S[b]
    gs_ptr,  # [B, HW] float32: dL/dS
    gatt_ptr,  # [B, HW] float32: dL/dA
    gf_ptr,  # [B, C] float32: dL/df
    gv_ptr,  # [B, C, HW] out, in v's dtype: dL/dv
    ga_ptr,  # [B, C] out, in a's dtype: dL/da
    C,
    HW,
    NORM_EPS: tl.constexpr,
    MINMAX_EPS: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_HW: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    offs_p = tl.arange(0, BLOCK_HW)
    p_ok = offs_p < HW
    v_map = v_ptr + b * C * HW
    row = b * HW + offs_p

    sim = tl.load(s_ptr + row, mask=p_ok, other=0.0)
    att = tl.load(att_ptr + row, mask=p_ok, other=0.0)
    vnorm = tl.load(vnorm_ptr + row, mask=p_ok, other=1.0)
    anorm = tl.load(anorm_ptr + b)
    i_lo = tl.load(ext_ptr + 2 * b)
    i_hi = tl.load(ext_ptr + 2 * b + 1)
    span = tl.load(s_ptr + b * HW + i_hi) - tl.load(s_ptr + b * HW + i_lo) + MINMAX_EPS

    # f depends on A: dL/dA[p] gains <dL/df, v[:, p]>.
    g_pool = tl.zeros([BLOCK_HW], dtype=tl.float32)
    for c0 in range(0, C, BLOCK_C):
        offs_c = c0 + tl.arange(0, BLOCK_C)
        c_ok = offs_c < C
        v = tl.load(v_map + offs_c[:, None] * HW + offs_p[None, :],
                    mask=c_ok[:, None] & p_ok[None, :], other=0.0).to(tl.float32)
        gf = tl.load(gf_ptr + b * C + offs_c, mask=c_ok, other=0.0)
        g_pool += tl.sum(v * gf[:, None], axis=0)
    g_att = tl.load(gatt_ptr + row, mask=p_ok, other=0.0) + g_pool

    # A = (S - lo) / span: S itself, then lo and hi, which send theirs to one position each.
    g_lo = tl.sum(g_att * (att - 1.0), axis=0) / span
    g_hi = -tl.sum(g_att * att, axis=0) / span
    g_sim = tl.load(gs_ptr + row, mask=p_ok, other=0.0) + g_att / span
    g_sim += tl.where(offs_p == i_lo, g_lo, 0.0) + tl.where(offs_p == i_hi, g_hi, 0.0)
    g_sim = tl.where(p_ok, g_sim, 0.0)

    # S[p] = <v_p / |v_p|, a / |a|>; a clamped norm is a constant, so its projection term drops.
    v_live = tl.where(vnorm > NORM_EPS, 1.0, 0.0)
    a_live = tl.where(anorm > NORM_EPS, 1.0, 0.0)
    g_dot = tl.sum(g_sim * sim, axis=0)
    for c0 in range(0, C, BLOCK_C):
        offs_c = c0 + tl.arange(0, BLOCK_C)
        c_ok = offs_c < C
        tile = c_ok[:, None] & p_ok[None, :]
        v = tl.load(v_map + offs_c[:, None] * HW + offs_p[None, :], mask=tile, other=0.0).to(tl.float32)
        a = tl.load(a_ptr + b * C + offs_c, mask=c_ok, other=0.0).to(tl.float32)
        gf = tl.load(gf_ptr + b * C + offs_c, mask=c_ok, other=0.0)
        v_hat = v / vnorm[None, :]
        a_hat = a / anorm
        gv = att[None, :] * gf[:, None] + (g_sim / vnorm)[None, :] * (
            a_hat[:, None] - (v_live * sim)[None, :] * v_hat)
        tl.store(gv_ptr + b * C * HW + offs_c[:, None] * HW + offs_p[None, :],
                 gv.to(gv_ptr.dtype.element_ty), mask=tile)
        ga = (tl.sum(g_sim[None, :] * v_hat, axis=1) - a_live * g_dot * a_hat) / anorm
        tl.store(ga_ptr + b * C + offs_c, ga.to(ga_ptr.dtype.element_ty), mask=c_ok)


def _blocks(C: int, HW: int, on_gpu: bool):
    block_hw = triton.next_power_of_2(HW)
    # ~8K fp32 elements per tile on a GPU; the interpreter pays per op, not per element.
    budget = 8192 if on_gpu else 4096
    block_c = max(1, min(triton.next_power_of_2(C), budget // block_hw))
    num_warps = 8 if block_hw * block_c >= 8192 else 4
    return block_c, block_hw, num_warps


def _forward(visual: torch.Tensor, audio: torch.Tensor):
    """visual [B, C, HW], audio [B, C], both contiguous -> (S, A, f, saved for the backward)."""
    B, C, HW = visual.shape
    dev = visual.device
    sim = _alloc.empty((B, HW), torch.float32, dev)
    att = _alloc.empty((B, HW), torch.float32, dev)
    pooled = _alloc.empty((B, C), visual.dtype, dev)
    vnorm = _alloc.empty((B, HW), torch.float32, dev)
    anorm = _alloc.empty((B,), torch.float32, dev)
    ext = _alloc.empty((B, 2), torch.int32, dev)
    block_c, block_hw, num_warps = _blocks(C, HW, visual.is_cuda)
    _similarity_fwd_kernel[(B,)](
        visual, audio, sim, att, pooled, vnorm, anorm, ext, C, HW,
        NORM_EPS=NORM_EPS, MINMAX_EPS=MINMAX_EPS, BLOCK_C=block_c, BLOCK_HW=block_hw,
        num_warps=num_warps,
    )
    return sim, att, pooled, (vnorm, anorm, ext)


def _backward(visual, audio, sim, att, vnorm, anorm, ext, g_sim, g_att, g_pooled):
    B, C, HW = visual.shape
    dev = visual.device
    grad_visual = _alloc.empty((B, C, HW), visual.dtype, dev)
    grad_audio = _alloc.empty((B, C), audio.dtype, dev)
    block_c, block_hw, num_warps = _blocks(C, HW, visual.is_cuda)
    _similarity_bwd_kernel[(B,)](
        visual, audio, sim, att, vnorm, anorm, ext,
        g_sim, g_att, g_pooled, grad_visual, grad_audio, C, HW,
        NORM_EPS=NORM_EPS, MINMAX_EPS=MINMAX_EPS, BLOCK_C=block_c, BLOCK_HW=block_hw,
        num_warps=num_warps,
    )
    return grad_visual, grad_audio


def _as_f32(grad: torch.Tensor) -> torch.Tensor:
    return grad.to(torch.float32).contiguous()


class AVSimilarity(torch.autograd.Function):
    """(visual [B, C, HW], audio [B, C]) -> (S [B, HW], A [B, HW], f [B, C]).

    S and A are float32 for float32 input and in visual's dtype otherwise, as the reference;
    all arithmetic is float32. Gradients come back in each input's own dtype.
    """

    @staticmethod
    def forward(ctx, visual, audio):
        visual = visual.contiguous()
        audio = audio.contiguous()
        sim, att, pooled, (vnorm, anorm, ext) = _forward(visual, audio)
        ctx.save_for_backward(visual, audio, sim, att, vnorm, anorm, ext)
        return sim.to(visual.dtype), att.to(visual.dtype), pooled

    @staticmethod
    def backward(ctx, g_sim, g_att, g_pooled):
        visual, audio, sim, att, vnorm, anorm, ext = ctx.saved_tensors
        grad_visual, grad_audio = _backward(
            visual, audio, sim, att, vnorm, anorm, ext,
            _as_f32(g_sim), _as_f32(g_att), _as_f32(g_pooled),
        )
        return grad_visual, grad_audio


def av_similarity(visual: torch.Tensor, audio: torch.Tensor):
    """Triton twin of ``reference.av_similarity`` for [B, C, HW] maps (no argument checks)."""
    return AVSimilarity.apply(visual, audio)
