"""Fused audio-visual similarity map in Triton: forward, backward, autograd.

The map is docs/method.md, "Similarity map".

One program per clip b walks the positions in blocks of BLOCK_P, holding every channel of a
block in registers, so each pass reads the visual map v[b] exactly once:

    forward   S[p] = <v_p, a> / (|v_p| |a|), the running min / max of S, and two channel
              vectors: sum_p (S[p] - S[0]) v_p and sum_p v_p. The min-max attention is affine in
              S, so f = sum_p A[p] v_p = (sum_p (S[p] - S[0]) v_p + (S[0] - lo) sum_p v_p) / span
              once lo and span are known (the shift by S[0], which lies in [lo, hi], keeps the
              two terms of the size of the result). A then comes from S, re-read from [B, HW].
    backward dL/dA[p] gains <dL/df, v_p>, and dL/dS[p] = dL/dS[p] + dL/dA[p] / span for every
              position: dL/dv and dL/da follow per block. Only the positions of lo and hi also
              carry the min / max terms (sums over all positions): their two columns are
              written last, with those terms added.

No [B, C, HW] temporary is written: the normalised map, the masked copies and the products
that the reference builds stay in registers. The twin is ``reference.av_similarity``.
"""
from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from . import _alloc
from ._grad import first_order
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
    BLOCK_C: tl.constexpr,  # >= C
    BLOCK_P: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    offs_c = tl.arange(0, BLOCK_C)
    c_ok = offs_c < C
    v_map = v_ptr + b * C * HW
    a = tl.load(a_ptr + b * C + offs_c, mask=c_ok, other=0.0).to(tl.float32)
    anorm = tl.maximum(tl.sqrt(tl.sum(a * a, axis=0)), NORM_EPS)
    # S[0], the shift of the pooled sum
    v0 = tl.load(v_map + offs_c * HW, mask=c_ok, other=0.0).to(tl.float32)
    s0 = tl.sum(v0 * a, axis=0) / (tl.maximum(tl.sqrt(tl.sum(v0 * v0, axis=0)), NORM_EPS) * anorm)

    lo = tl.full([], float("inf"), dtype=tl.float32)
    hi = tl.full([], float("-inf"), dtype=tl.float32)
    i_lo = tl.zeros([], dtype=tl.int32)
    i_hi = tl.zeros([], dtype=tl.int32)
    nans = tl.zeros([], dtype=tl.int32)  # NaN positions of S: they make lo and hi NaN
    shifted = tl.zeros([BLOCK_C], dtype=tl.float32)  # sum_p (S[p] - S[0]) v_p
    total = tl.zeros([BLOCK_C], dtype=tl.float32)  # sum_p v_p
    for p0 in range(0, HW, BLOCK_P):
        offs_p = p0 + tl.arange(0, BLOCK_P)
        p_ok = offs_p < HW
        v = tl.load(v_map + offs_c[:, None] * HW + offs_p[None, :],
                    mask=c_ok[:, None] & p_ok[None, :], other=0.0).to(tl.float32)
        vnorm = tl.maximum(tl.sqrt(tl.sum(v * v, axis=0)), NORM_EPS)
        sim = tl.sum(v * a[:, None], axis=0) / (vnorm * anorm)
        tl.store(s_ptr + b * HW + offs_p, sim, mask=p_ok)
        tl.store(vnorm_ptr + b * HW + offs_p, vnorm, mask=p_ok)
        blk_lo, blk_i_lo = tl.min(tl.where(p_ok, sim, float("inf")), axis=0, return_indices=True)
        blk_hi, blk_i_hi = tl.max(tl.where(p_ok, sim, float("-inf")), axis=0,
                                  return_indices=True)
        lower = blk_lo < lo  # strict: ties keep the first position, as torch's min / max
        i_lo = tl.where(lower, p0 + blk_i_lo.to(tl.int32), i_lo)
        lo = tl.where(lower, blk_lo, lo)
        higher = blk_hi > hi
        i_hi = tl.where(higher, p0 + blk_i_hi.to(tl.int32), i_hi)
        hi = tl.where(higher, blk_hi, hi)
        nans += tl.sum((p_ok & (sim != sim)).to(tl.int32), axis=0)
        shifted += tl.sum(v * tl.where(p_ok, sim - s0, 0.0)[None, :], axis=1)
        total += tl.sum(v, axis=1)
    # torch's min / max return NaN when S has one; the strict comparisons above skip it
    lo = tl.where(nans > 0, float("nan"), lo)
    hi = tl.where(nans > 0, float("nan"), hi)
    span = hi - lo + MINMAX_EPS
    pooled = (shifted + (s0 - lo) * total) / span
    tl.store(f_ptr + b * C + offs_c, pooled.to(f_ptr.dtype.element_ty), mask=c_ok)
    tl.store(anorm_ptr + b, anorm)
    tl.store(ext_ptr + 2 * b, i_lo)
    tl.store(ext_ptr + 2 * b + 1, i_hi)

    tl.debug_barrier()  # this program's S, written above by other threads, is read back
    for p0 in range(0, HW, BLOCK_P):
        offs_p = p0 + tl.arange(0, BLOCK_P)
        p_ok = offs_p < HW
        sim = tl.load(s_ptr + b * HW + offs_p, mask=p_ok, other=0.0)
        tl.store(att_ptr + b * HW + offs_p, (sim - lo) / span, mask=p_ok)


@triton.jit
def _extreme_column(q, delta, enabled, v_map, gv_map, b, offs_c, c_ok, gf, a_hat, span, s_ptr,
                    att_ptr, vnorm_ptr, gs_ptr, gatt_ptr, HW, NORM_EPS: tl.constexpr):
    """dL/dv[:, q] for the position q of lo or hi, whose dL/dS gains ``delta``; -> the extra
    terms of sum_p dL/dS[p] v_hat_p and sum_p dL/dS[p] S[p] that delta adds."""
    v = tl.load(v_map + offs_c * HW + q, mask=c_ok, other=0.0).to(tl.float32)
    at = b * HW + q
    sim = tl.load(s_ptr + at)
    vnorm = tl.load(vnorm_ptr + at)
    g_att = tl.load(gatt_ptr + at) + tl.sum(v * gf, axis=0)
    g_sim = tl.load(gs_ptr + at) + g_att / span + delta
    v_hat = v / vnorm
    v_live = tl.where(vnorm > NORM_EPS, 1.0, 0.0)
    gv = tl.load(att_ptr + at) * gf + (g_sim / vnorm) * (a_hat - v_live * sim * v_hat)
    tl.store(gv_map + offs_c * HW + q, gv.to(gv_map.dtype.element_ty), mask=c_ok & enabled)
    keep = tl.where(enabled, delta, 0.0)
    return keep * v_hat, keep * sim


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
    BLOCK_C: tl.constexpr,  # >= C
    BLOCK_P: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    offs_c = tl.arange(0, BLOCK_C)
    c_ok = offs_c < C
    v_map = v_ptr + b * C * HW
    gv_map = gv_ptr + b * C * HW
    anorm = tl.load(anorm_ptr + b)
    a_hat = tl.load(a_ptr + b * C + offs_c, mask=c_ok, other=0.0).to(tl.float32) / anorm
    gf = tl.load(gf_ptr + b * C + offs_c, mask=c_ok, other=0.0)
    i_lo = tl.load(ext_ptr + 2 * b)
    i_hi = tl.load(ext_ptr + 2 * b + 1)
    span = tl.load(s_ptr + b * HW + i_hi) - tl.load(s_ptr + b * HW + i_lo) + MINMAX_EPS
    # one position: A = (S - S) / eps is 0 whatever S is, so no gradient goes through it (an
    # infinite span zeroes every A term instead of cancelling two terms of size 1 / eps)
    span = tl.where(HW > 1, span, float("inf"))

    # S[p] = <v_p / |v_p|, a / |a|>; a clamped norm is a constant, so its projection term drops.
    g_va = tl.zeros([BLOCK_C], dtype=tl.float32)  # sum_p dL/dS[p] v_hat_p
    g_dot = tl.zeros([], dtype=tl.float32)  # sum_p dL/dS[p] S[p]
    g_lo_sum = tl.zeros([], dtype=tl.float32)  # sum_p dL/dA[p] (A[p] - 1)
    g_hi_sum = tl.zeros([], dtype=tl.float32)  # sum_p dL/dA[p] A[p]
    for p0 in range(0, HW, BLOCK_P):
        offs_p = p0 + tl.arange(0, BLOCK_P)
        p_ok = offs_p < HW
        row = b * HW + offs_p
        tile = c_ok[:, None] & p_ok[None, :]
        v = tl.load(v_map + offs_c[:, None] * HW + offs_p[None, :], mask=tile,
                    other=0.0).to(tl.float32)
        sim = tl.load(s_ptr + row, mask=p_ok, other=0.0)
        att = tl.load(att_ptr + row, mask=p_ok, other=0.0)
        vnorm = tl.load(vnorm_ptr + row, mask=p_ok, other=1.0)
        # f depends on A: dL/dA[p] gains <dL/df, v_p>
        g_att = tl.where(p_ok, tl.load(gatt_ptr + row, mask=p_ok, other=0.0)
                         + tl.sum(v * gf[:, None], axis=0), 0.0)
        g_lo_sum += tl.sum(g_att * (att - 1.0), axis=0)
        g_hi_sum += tl.sum(g_att * att, axis=0)
        # A = (S - lo) / span: S itself here; lo and hi add theirs to two positions below
        g_sim = tl.where(p_ok, tl.load(gs_ptr + row, mask=p_ok, other=0.0) + g_att / span, 0.0)
        v_hat = v / vnorm[None, :]
        v_live = tl.where(vnorm > NORM_EPS, 1.0, 0.0)
        gv = att[None, :] * gf[:, None] + (g_sim / vnorm)[None, :] * (
            a_hat[:, None] - (v_live * sim)[None, :] * v_hat)
        extreme = (offs_p == i_lo) | (offs_p == i_hi)  # written last, complete
        tl.store(gv_map + offs_c[:, None] * HW + offs_p[None, :],
                 gv.to(gv_ptr.dtype.element_ty), mask=tile & ~extreme[None, :])
        g_va += tl.sum(g_sim[None, :] * v_hat, axis=1)
        g_dot += tl.sum(g_sim * sim, axis=0)

    g_lo = g_lo_sum / span
    g_hi = -g_hi_sum / span
    same = i_lo == i_hi  # a constant map: one position takes both
    extra_va, extra_dot = _extreme_column(
        i_lo, g_lo + tl.where(same, g_hi, 0.0), True, v_map, gv_map, b, offs_c, c_ok, gf,
        a_hat, span, s_ptr, att_ptr, vnorm_ptr, gs_ptr, gatt_ptr, HW, NORM_EPS)
    g_va += extra_va
    g_dot += extra_dot
    extra_va, extra_dot = _extreme_column(
        i_hi, g_hi, ~same, v_map, gv_map, b, offs_c, c_ok, gf, a_hat, span, s_ptr, att_ptr,
        vnorm_ptr, gs_ptr, gatt_ptr, HW, NORM_EPS)
    g_va += extra_va
    g_dot += extra_dot
    a_live = tl.where(anorm > NORM_EPS, 1.0, 0.0)
    ga = (g_va - a_live * g_dot * a_hat) / anorm
    tl.store(ga_ptr + b * C + offs_c, ga.to(ga_ptr.dtype.element_ty), mask=c_ok)


@functools.lru_cache(maxsize=64)  # per step: no JIT helper calls on the host
def _blocks(C: int, HW: int):
    """(BLOCK_C, BLOCK_P, warps): every channel by a block of positions, ~4K elements a tile.

    Larger tiles spill registers in the backward on sm_90 (benchmarks/kernel_resources.py:
    8K elements, 8 warps: 255 registers and 128-160 bytes of stack; 4K: 222, none)."""
    block_c = triton.next_power_of_2(C)
    block_p = max(2, min(triton.next_power_of_2(HW), 4096 // block_c))
    num_warps = 8 if block_p * block_c >= 4096 else 4
    return block_c, block_p, num_warps


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
    block_c, block_p, num_warps = _blocks(C, HW)
    _similarity_fwd_kernel[(B,)](
        visual, audio, sim, att, pooled, vnorm, anorm, ext, C, HW,
        NORM_EPS=NORM_EPS, MINMAX_EPS=MINMAX_EPS, BLOCK_C=block_c, BLOCK_P=block_p,
        num_warps=num_warps,
    )
    return sim, att, pooled, (vnorm, anorm, ext)


def _backward(visual, audio, sim, att, vnorm, anorm, ext, g_sim, g_att, g_pooled):
    B, C, HW = visual.shape
    dev = visual.device
    grad_visual = _alloc.empty((B, C, HW), visual.dtype, dev)
    grad_audio = _alloc.empty((B, C), audio.dtype, dev)
    block_c, block_p, num_warps = _blocks(C, HW)
    _similarity_bwd_kernel[(B,)](
        visual, audio, sim, att, vnorm, anorm, ext,
        g_sim, g_att, g_pooled, grad_visual, grad_audio, C, HW,
        NORM_EPS=NORM_EPS, MINMAX_EPS=MINMAX_EPS, BLOCK_C=block_c, BLOCK_P=block_p,
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
        with torch.no_grad():
            grads = _backward(visual, audio, sim, att, vnorm, anorm, ext,
                              _as_f32(g_sim), _as_f32(g_att), _as_f32(g_pooled))
        return first_order("av_similarity", grads, (visual, audio, g_sim, g_att, g_pooled))


def av_similarity(visual: torch.Tensor, audio: torch.Tensor):
    """Triton twin of ``reference.av_similarity`` for [B, C, HW] maps (no argument checks)."""
    return AVSimilarity.apply(visual, audio)
