"""Fused SACL masked InfoNCE (SPEC section 5, step 3) in Triton: forward, backward, autograd.

The reference builds dots[i, j, p] = mask[i, p] <v[i, :, p], a[j]>, a [B, B, HW] tensor, and
takes its max over p. Here that tensor never exists:

    _pair_max_kernel   program (i, block of j): tl.dot tiles over (j, p), a running max and
                       argmax over p  ->  s [B, B] float32, argmax [B, B] int32
    _row_loss_kernel   program i: the -10 logit of removed pairs, float32 log-sum-exp over j,
                       the loss of row i and dL/ds[i, :] (the backward only rescales it)
    _grad_visual_kernel  dL/dv[i, :, p] = mask[i, p] sum_j [argmax[i, j] = p] dL/ds[i, j] a[j]
    _grad_audio_kernel   dL/da[j] = sum_i dL/ds[i, j] mask[i, p*] v[i, :, p*],  p* = argmax[i, j]

Both gradients are written as matmuls with a one-hot [p, j] weight built in registers, so they
run on the tensor cores and need no atomics; dL/da is split over i and the partial sums are
added in a fixed order (deterministic).

Precision: accumulation is always float32. float32 inputs use float32 FMA dots ("ieee"): on
the H100 with Triton 3.6 that beat 3-pass TF32 ("tf32x3", 1.6-2x slower), and TF32 alone would
put errors of ~1e-3 on logits scaled by 1 / tau = 200. float16 / bfloat16 inputs use native
tensor-core dots with exact products; in the backward the float32 one-hot weight is split into
two half-precision terms (hi + lo, ~16 significant bits).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from . import _alloc
from .reference import FALSE_NEGATIVE_LOGIT


@triton.jit
def _pair_max_kernel(
    v_ptr,  # [B, C, HW] L2-normalised visual maps, contiguous
    m_ptr,  # [B, HW] float32 positive masks
    a_ptr,  # [B, C] L2-normalised audio vectors, contiguous
    s_ptr,  # [B, B] float32 out: s[i, j] = max_p m[i, p] <v[i, :, p], a[j]>
    arg_ptr,  # [B, B] int32 out: the first p that attains s[i, j]
    B,
    C,
    HW,
    UPCAST: tl.constexpr,  # operands of different dtypes: compute both in float32
    PRECISION: tl.constexpr,  # tl.dot input_precision for float32 operands
    BLOCK_J: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid = tl.program_id(0)
    n_jb = tl.cdiv(B, BLOCK_J)
    i = (pid // n_jb).to(tl.int64)  # consecutive programs share v[i]: it stays in L2
    offs_j = (pid % n_jb) * BLOCK_J + tl.arange(0, BLOCK_J)
    j_ok = offs_j < B
    v_map = v_ptr + i * C * HW

    best = tl.full([BLOCK_J], float("-inf"), dtype=tl.float32)
    best_p = tl.zeros([BLOCK_J], dtype=tl.int32)
    for p0 in range(0, HW, BLOCK_P):
        offs_p = p0 + tl.arange(0, BLOCK_P)
        p_ok = offs_p < HW
        acc = tl.zeros([BLOCK_J, BLOCK_P], dtype=tl.float32)
        for k0 in range(0, C, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            k_ok = offs_k < C
            a = tl.load(a_ptr + offs_j[:, None] * C + offs_k[None, :],
                        mask=j_ok[:, None] & k_ok[None, :], other=0.0)
            v = tl.load(v_map + offs_k[:, None] * HW + offs_p[None, :],
                        mask=k_ok[:, None] & p_ok[None, :], other=0.0)
            if UPCAST:
                a = a.to(tl.float32)
                v = v.to(tl.float32)
            acc = tl.dot(a, v, acc, input_precision=PRECISION)
        m = tl.load(m_ptr + i * HW + offs_p, mask=p_ok, other=0.0)
        # masked positions score exactly 0 and take part in the max, as in the reference
        scores = tl.where(p_ok[None, :], acc * m[None, :], float("-inf"))
        tile_best, tile_arg = tl.max(scores, axis=1, return_indices=True)
        better = tile_best > best  # strict: ties keep the earlier position
        best = tl.where(better, tile_best, best)
        best_p = tl.where(better, p0 + tile_arg.to(tl.int32), best_p)
    tl.store(s_ptr + i * B + offs_j, best, mask=j_ok)
    tl.store(arg_ptr + i * B + offs_j, best_p, mask=j_ok)


@triton.jit
def _row_loss_kernel(
    s_ptr,  # [B, B] float32: pair similarities
    keep_ptr,  # [B, B] uint8: 1 where the pair keeps its own logit
    loss_ptr,  # [B] float32 out: cross-entropy of row i with target i
    g_ptr,  # [B, B] float32 out: dL/ds for L = mean of the rows' losses
    B,
    inv_tau,  # 1 / tau: a product rounds the same in every loop (a division may not)
    FN_LOGIT: tl.constexpr,  # logit given to removed pairs, before / tau
    BLOCK: tl.constexpr,
):
    i = tl.program_id(0).to(tl.int64)
    run_max = tl.full([], float("-inf"), dtype=tl.float32)
    run_sum = tl.zeros([], dtype=tl.float32)
    for j0 in range(0, B, BLOCK):
        offs = j0 + tl.arange(0, BLOCK)
        ok = offs < B
        s = tl.load(s_ptr + i * B + offs, mask=ok, other=0.0)
        keep = tl.load(keep_ptr + i * B + offs, mask=ok, other=0) != 0
        z = tl.where(ok, tl.where(keep, s, FN_LOGIT) * inv_tau, float("-inf"))
        new_max = tl.maximum(run_max, tl.max(z, axis=0))
        run_sum = run_sum * tl.exp(run_max - new_max) + tl.sum(tl.exp(z - new_max), axis=0)
        run_max = new_max
    # softmax = exp(z - max) / sum, never exp(z - lse): the GPU's exp and log are not exact
    # at 0 and 1, and a single logit (B = 1) must give softmax 1 and gradient 0 exactly.
    s_ii = tl.load(s_ptr + i * B + i)
    keep_ii = tl.load(keep_ptr + i * B + i) != 0
    z_ii = tl.where(keep_ii, s_ii, FN_LOGIT) * inv_tau
    tl.store(loss_ptr + i, (run_max - z_ii) + tl.log(run_sum))

    # d mean_i CE / d s[i, j] = keep[i, j] (softmax[i, j] - [i == j]) / (B tau)
    for j0 in range(0, B, BLOCK):
        offs = j0 + tl.arange(0, BLOCK)
        ok = offs < B
        s = tl.load(s_ptr + i * B + offs, mask=ok, other=0.0)
        keep = tl.load(keep_ptr + i * B + offs, mask=ok, other=0) != 0
        prob = tl.exp(tl.where(keep, s, FN_LOGIT) * inv_tau - run_max) / run_sum
        grad = tl.where(keep, (prob - tl.where(offs == i, 1.0, 0.0)) * (inv_tau / B), 0.0)
        tl.store(g_ptr + i * B + offs, grad, mask=ok)


@triton.jit
def _onehot_dot(onehot, x, acc, PRECISION: tl.constexpr, NATIVE: tl.constexpr):
    """acc + onehot @ x, onehot float32. NATIVE: x is half and onehot = hi + lo, two half
    MMAs (about 16 significant bits, exact products); else both in float32 at PRECISION."""
    if NATIVE:
        hi = onehot.to(x.dtype)
        lo = (onehot - hi.to(tl.float32)).to(x.dtype)
        acc = tl.dot(hi, x, acc)
        acc = tl.dot(lo, x, acc)
    else:
        acc = tl.dot(onehot, x.to(tl.float32), acc, input_precision=PRECISION)
    return acc


@triton.jit
def _grad_visual_kernel(
    g_ptr,  # [B, B] float32: dL/ds from the forward
    arg_ptr,  # [B, B] int32: argmax positions from the forward
    m_ptr,  # [B, HW] float32 masks
    a_ptr,  # [B, C] audio vectors
    gout_ptr,  # [] float32: incoming gradient of the loss
    gv_ptr,  # [B, C, HW] out, in v's dtype: dL/dv
    B,
    C,
    HW,
    PRECISION: tl.constexpr,
    NATIVE: tl.constexpr,  # both operands one half dtype: one-hot split in two, native MMAs
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_J: tl.constexpr,
):
    pid = tl.program_id(0)
    n_pb = tl.cdiv(HW, BLOCK_P)
    n_cb = tl.cdiv(C, BLOCK_C)
    i = (pid // (n_pb * n_cb)).to(tl.int64)
    offs_p = ((pid // n_cb) % n_pb) * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_c = (pid % n_cb) * BLOCK_C + tl.arange(0, BLOCK_C)
    p_ok = offs_p < HW
    c_ok = offs_c < C

    acc = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)
    for j0 in range(0, B, BLOCK_J):
        offs_j = j0 + tl.arange(0, BLOCK_J)
        j_ok = offs_j < B
        g = tl.load(g_ptr + i * B + offs_j, mask=j_ok, other=0.0)
        p_star = tl.load(arg_ptr + i * B + offs_j, mask=j_ok, other=-1)
        onehot = tl.where(offs_p[:, None] == p_star[None, :], g[None, :], 0.0)  # [P, J]
        a = tl.load(a_ptr + offs_j[:, None] * C + offs_c[None, :],
                    mask=j_ok[:, None] & c_ok[None, :], other=0.0)
        acc = _onehot_dot(onehot, a, acc, PRECISION, NATIVE)
    m = tl.load(m_ptr + i * HW + offs_p, mask=p_ok, other=0.0)
    acc = acc * (m * tl.load(gout_ptr))[:, None]
    tl.store(gv_ptr + i * C * HW + offs_c[None, :] * HW + offs_p[:, None],
             acc.to(gv_ptr.dtype.element_ty), mask=p_ok[:, None] & c_ok[None, :])


@triton.jit
def _grad_audio_kernel(
    g_ptr,  # [B, B] float32: dL/ds from the forward
    arg_ptr,  # [B, B] int32: argmax positions from the forward
    m_ptr,  # [B, HW] float32 masks
    v_ptr,  # [B, C, HW] visual maps
    gout_ptr,  # [] float32: incoming gradient of the loss
    part_ptr,  # [SPLITS, B, C] float32 out: dL/da summed over this split's rows i
    B,
    C,
    HW,
    ROWS_PER_SPLIT,
    PRECISION: tl.constexpr,
    NATIVE: tl.constexpr,
    BLOCK_J: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    pid = tl.program_id(0)
    n_jb = tl.cdiv(B, BLOCK_J)
    n_cb = tl.cdiv(C, BLOCK_C)
    split = pid // (n_jb * n_cb)
    offs_c = ((pid // n_jb) % n_cb) * BLOCK_C + tl.arange(0, BLOCK_C)
    offs_j = (pid % n_jb) * BLOCK_J + tl.arange(0, BLOCK_J)  # neighbours share v tiles
    j_ok = offs_j < B
    c_ok = offs_c < C

    acc = tl.zeros([BLOCK_J, BLOCK_C], dtype=tl.float32)
    first = split * ROWS_PER_SPLIT
    # 64-bit pointers walk the rows, so large B * C * HW cannot overflow an index
    g_row = g_ptr + first.to(tl.int64) * B
    arg_row = arg_ptr + first.to(tl.int64) * B
    m_row = m_ptr + first.to(tl.int64) * HW
    v_map = v_ptr + first.to(tl.int64) * C * HW
    for _ in range(first, tl.minimum(B, first + ROWS_PER_SPLIT)):
        g = tl.load(g_row + offs_j, mask=j_ok, other=0.0)
        p_star = tl.load(arg_row + offs_j, mask=j_ok, other=-1)
        for p0 in range(0, HW, BLOCK_P):
            offs_p = p0 + tl.arange(0, BLOCK_P)
            p_ok = offs_p < HW
            m = tl.load(m_row + offs_p, mask=p_ok, other=0.0)
            onehot = tl.where(p_star[:, None] == offs_p[None, :], g[:, None] * m[None, :], 0.0)
            v = tl.load(v_map + offs_c[None, :] * HW + offs_p[:, None],
                        mask=p_ok[:, None] & c_ok[None, :], other=0.0)
            acc = _onehot_dot(onehot, v, acc, PRECISION, NATIVE)  # [J, P] @ [P, C]
        g_row += B
        arg_row += B
        m_row += HW
        v_map += C * HW
    acc = acc * tl.load(gout_ptr)
    tl.store(part_ptr + split.to(tl.int64) * B * C + offs_j[:, None] * C + offs_c[None, :],
             acc, mask=j_ok[:, None] & c_ok[None, :])


@dataclass(frozen=True)
class Tiles:
    """Block sizes and launch settings of the four kernels (benchmarks may pass their own)."""

    pair_j: int = 64
    pair_p: int = 64
    pair_k: int = 32
    pair_warps: int = 4
    gv_p: int = 64
    gv_c: int = 64
    gv_j: int = 32
    gv_warps: int = 4
    ga_j: int = 64
    ga_c: int = 128
    ga_p: int = 32
    ga_warps: int = 4
    ga_programs: int = 512  # split the sum over i until about this many programs run
    stages: int = 3
    row_block: int = 1024
    fp32_dot: str = "ieee"  # tl.dot input_precision for float32 operands: never below fp32
    split_onehot: bool = True  # half inputs: backward one-hot as two native half MMAs


# Under the interpreter every program costs milliseconds: few, small ones.
INTERPRETER_TILES = Tiles(
    pair_j=16, pair_p=32, pair_k=32, pair_warps=1, gv_p=32, gv_c=32, gv_j=16, gv_warps=1,
    ga_j=16, ga_c=32, ga_p=32, ga_warps=1, ga_programs=4, stages=1, row_block=16,
)


def default_tiles(B: int, dtype: torch.dtype, on_gpu: bool) -> Tiles:
    """Block sizes picked from the H100 sweep in benchmarks/results/kernels_h100.md."""
    if not on_gpu:
        return INTERPRETER_TILES
    cap = max(16, triton.next_power_of_2(B))  # no wider than the batch
    if dtype == torch.float32:
        return Tiles(pair_j=min(128, cap), pair_p=32, pair_k=32, pair_warps=4,
                     gv_p=64, gv_c=128, gv_j=min(32, cap), gv_warps=8,
                     ga_j=min(128, cap), ga_c=128, ga_p=32, ga_warps=8, stages=4)
    return Tiles(pair_j=min(128, cap), pair_p=32, pair_k=64, pair_warps=4,
                 gv_p=32, gv_c=128, gv_j=min(64, cap), gv_warps=4,
                 ga_j=min(128, cap), ga_c=64, ga_p=64, ga_warps=4, stages=4)


def _precision(tiles: Tiles, *tensors: torch.Tensor) -> str:
    # float32 operands: "ieee" or "tf32x3" (two TF32 halves each, float32 accuracy). Half
    # operands ignore it; upcast to float32, TF32 holds them exactly.
    return tiles.fp32_dot if any(t.dtype == torch.float32 for t in tensors) else "tf32"


def _native(tiles: Tiles, visual_hat: torch.Tensor, audio_hat: torch.Tensor) -> bool:
    return (tiles.split_onehot and visual_hat.dtype == audio_hat.dtype
            and visual_hat.dtype in (torch.float16, torch.bfloat16))


def _forward(visual_hat, mask, audio_hat, keep, tau: float, tiles: Tiles):
    """-> (loss rows [B], dL/ds [B, B], argmax [B, B]); inputs contiguous, mask float32."""
    B, C, HW = visual_hat.shape
    dev = visual_hat.device
    sims = _alloc.empty((B, B), torch.float32, dev)
    argmax = _alloc.empty((B, B), torch.int32, dev)
    upcast = visual_hat.dtype != audio_hat.dtype
    _pair_max_kernel[(B * triton.cdiv(B, tiles.pair_j),)](
        visual_hat, mask, audio_hat, sims, argmax, B, C, HW,
        UPCAST=upcast, PRECISION=_precision(tiles, visual_hat, audio_hat),
        BLOCK_J=tiles.pair_j, BLOCK_P=tiles.pair_p, BLOCK_K=tiles.pair_k,
        num_warps=tiles.pair_warps, num_stages=tiles.stages,
    )
    rows = _alloc.empty((B,), torch.float32, dev)
    grad_sims = _alloc.empty((B, B), torch.float32, dev)
    _row_loss_kernel[(B,)](
        sims, keep, rows, grad_sims, B, 1.0 / float(tau), FN_LOGIT=FALSE_NEGATIVE_LOGIT,
        BLOCK=min(tiles.row_block, triton.next_power_of_2(B)),
    )
    return rows, grad_sims, argmax


def _grad_visual(grad_sims, argmax, mask, audio_hat, gout, visual_hat, tiles: Tiles):
    B, C, HW = visual_hat.shape
    grad = _alloc.empty((B, C, HW), visual_hat.dtype, grad_sims.device)
    grid = (B * triton.cdiv(HW, tiles.gv_p) * triton.cdiv(C, tiles.gv_c),)
    _grad_visual_kernel[grid](
        grad_sims, argmax, mask, audio_hat, gout, grad, B, C, HW,
        PRECISION=_precision(tiles, visual_hat, audio_hat),
        NATIVE=_native(tiles, visual_hat, audio_hat), BLOCK_P=tiles.gv_p, BLOCK_C=tiles.gv_c,
        BLOCK_J=tiles.gv_j, num_warps=tiles.gv_warps, num_stages=tiles.stages,
    )
    return grad


def _grad_audio(grad_sims, argmax, mask, visual_hat, gout, audio_hat, tiles: Tiles):
    B, C, HW = visual_hat.shape
    blocks = triton.cdiv(B, tiles.ga_j) * triton.cdiv(C, tiles.ga_c)
    # Split the reduction over i until there are enough programs to fill the GPU.
    splits = max(1, min(B, tiles.ga_programs // blocks))
    rows_per_split = triton.cdiv(B, splits)
    splits = triton.cdiv(B, rows_per_split)
    partial = _alloc.empty((splits, B, C), torch.float32, visual_hat.device)
    _grad_audio_kernel[(splits * blocks,)](
        grad_sims, argmax, mask, visual_hat, gout, partial, B, C, HW, rows_per_split,
        PRECISION=_precision(tiles, visual_hat, audio_hat),
        NATIVE=_native(tiles, visual_hat, audio_hat), BLOCK_J=tiles.ga_j, BLOCK_C=tiles.ga_c,
        BLOCK_P=tiles.ga_p, num_warps=tiles.ga_warps, num_stages=tiles.stages,
    )
    return partial.sum(dim=0).to(audio_hat.dtype)


class MaskedInfoNCE(torch.autograd.Function):
    """(visual_hat [B, C, HW], mask [B, HW], audio_hat [B, C], keep [B, B], tau) -> loss [].

    The loss is float32 whatever the input dtype. Gradients flow to visual_hat and audio_hat
    (in their own dtypes) through the argmax position of each pair; mask and keep get none.
    """

    @staticmethod
    def forward(ctx, visual_hat, mask, audio_hat, keep, tau, tiles=None):
        visual_hat = visual_hat.contiguous()
        audio_hat = audio_hat.contiguous()
        mask = mask.to(torch.float32).contiguous()
        keep = keep.to(torch.bool).to(torch.uint8).contiguous()
        B = visual_hat.shape[0]
        tiles = tiles or default_tiles(B, visual_hat.dtype, visual_hat.is_cuda)
        rows, grad_sims, argmax = _forward(visual_hat, mask, audio_hat, keep, tau, tiles)
        ctx.save_for_backward(visual_hat, mask, audio_hat, grad_sims, argmax)
        ctx.tiles = tiles
        return rows.mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss):
        visual_hat, mask, audio_hat, grad_sims, argmax = ctx.saved_tensors
        gout = grad_loss.to(torch.float32).reshape(()).contiguous()
        grad_visual = grad_audio = None
        if ctx.needs_input_grad[0]:
            grad_visual = _grad_visual(grad_sims, argmax, mask, audio_hat, gout, visual_hat,
                                       ctx.tiles)
        if ctx.needs_input_grad[2]:
            grad_audio = _grad_audio(grad_sims, argmax, mask, visual_hat, gout, audio_hat,
                                     ctx.tiles)
        return grad_visual, None, grad_audio, None, None, None


def masked_infonce(visual_hat, mask, audio_hat, keep, tau: float = 0.005, tiles: Tiles | None = None):
    """Triton twin of ``reference.masked_infonce`` (no argument checks; see the package)."""
    return MaskedInfoNCE.apply(visual_hat, mask, audio_hat, keep, tau, tiles)
