"""Fused SACL masked InfoNCE in Triton: forward, backward, autograd.

The loss is docs/method.md, "SACL loss", step 3.

The reference builds dots[i, j, p] = mask[i, p] <v[i, :, p], a[j]>, a [B, B, HW] tensor, and
takes its max over p. Here that tensor never exists:

    _pair_max_kernel     program (i, block of j): tl.dot tiles over (j, p), a running max and
                         argmax over p  ->  s [B, B] float32, argmax [B, B] int32
    _row_loss_kernel     program i: the -10 logit of removed pairs, float32 log-sum-exp over j,
                         the loss of row i and dL/ds[i, :] (the backward only rescales it)
    _grad_visual_kernel  dL/dv[i, :, p] = mask[i, p] sum_j [argmax[i, j] = p] dL/ds[i, j] a[j]
    _grad_audio_kernel   dL/da[j] = sum_i dL/ds[i, j] mask[i, p*] v[i, :, p*],  p* = argmax[i, j]

Both gradients are matmuls with a one-hot [p, j] weight built in registers, so they run on the
tensor cores and need no atomics; dL/da is split over i and the partial sums are added in a
fixed order (deterministic).

Precision: accumulation is always float32. float16 / bfloat16 inputs use native tensor-core
dots with exact products; in the backward the float32 one-hot weight is split into two
half-precision terms (hi + lo, ~16 significant bits). float32 inputs use float32 FMA dots
("ieee"): on the H100 that beat 3-pass TF32 by 1.5x, and TF32 alone would put errors of ~1e-3
on logits scaled by 1 / tau = 200; it is still slower than eager
(benchmarks/results/kernels_h100.md), so ``kernel="auto"`` runs the twin for float32.
``Tiles(fp32_dot="f16x3")`` is the candidate for that case, not timed yet: float32 data split
into float16 pieces (_split_f16: ~22 significant bits, exact products), the forward as three
and dL/dv as two float16 tensor-core dots per tile (the one-hot is exactly 0 / 1 there);
dL/da keeps its float32 FMA dots.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from . import _alloc
from ._grad import first_order
from .reference import FALSE_NEGATIVE_LOGIT


SPLIT_SCALE: tl.constexpr = tl.constexpr(2048.0)  # 2^11: float16 keeps 11 significant bits


@triton.jit
def _split_f16(x):
    """float32 x -> float16 (hi, lo) with x = hi + lo / 2^11 to about 22 significant bits.

    |x - hi| <= 2^-11 |x|, so lo = (x - hi) 2^11 is no larger than x and fits float16 whenever
    x does (|x| < 65504; L2-normalised data is <= 1). Products of the pieces are exact in the
    tensor cores' float32 accumulation, so hi.hi + (hi.lo + lo.hi) / 2^11 matches a float32 dot
    to ~2^-22 relative, with two or three float16 MMAs instead of float32 FMAs.
    """
    hi = x.to(tl.float16)
    lo = ((x - hi.to(tl.float32)) * SPLIT_SCALE).to(tl.float16)
    return hi, lo


@triton.jit
def _pair_tile(acc, acc_lo, v_map, a_ptr, offs_j, j_ok, offs_p, p_ok, k0, C, HW,
               UPCAST: tl.constexpr, PRECISION: tl.constexpr, SPLIT: tl.constexpr,
               BLOCK_K: tl.constexpr):
    """acc[J, P] += a[J, k0:k0+K] @ v[k0:k0+K, P] (SPLIT: the 2^-11 terms into acc_lo)."""
    offs_k = k0 + tl.arange(0, BLOCK_K)
    k_ok = offs_k < C
    a = tl.load(a_ptr + offs_j[:, None] * C + offs_k[None, :],
                mask=j_ok[:, None] & k_ok[None, :], other=0.0)
    v = tl.load(v_map + offs_k[:, None] * HW + offs_p[None, :],
                mask=k_ok[:, None] & p_ok[None, :], other=0.0)
    if SPLIT:
        a_hi, a_lo = _split_f16(a.to(tl.float32))
        v_hi, v_lo = _split_f16(v.to(tl.float32))
        acc = tl.dot(a_hi, v_hi, acc)
        acc_lo = tl.dot(a_hi, v_lo, acc_lo)
        acc_lo = tl.dot(a_lo, v_hi, acc_lo)
    else:
        if UPCAST:
            a = a.to(tl.float32)
            v = v.to(tl.float32)
        acc = tl.dot(a, v, acc, input_precision=PRECISION)
    return acc, acc_lo


@triton.jit
def _pair_update(best, best_p, acc, acc_lo, m_row, p0, offs_p, p_ok, SPLIT: tl.constexpr):
    """Fold one [J, P] tile of dots into the running max and first argmax over p."""
    if SPLIT:
        acc += acc_lo * (1.0 / SPLIT_SCALE)
    m = tl.load(m_row + offs_p, mask=p_ok, other=0.0)
    # masked positions score exactly 0 and take part in the max, as in the reference
    scores = tl.where(p_ok[None, :], acc * m[None, :], float("-inf"))
    tile_best, tile_arg = tl.max(scores, axis=1, return_indices=True)
    better = tile_best > best  # strict: ties keep the earlier position
    best_p = tl.where(better, p0 + tile_arg.to(tl.int32), best_p)
    best = tl.where(better, tile_best, best)
    # a NaN dot makes the pair's max NaN, as torch's max does (the comparisons above skip it,
    # and tl.max need not return it); NaN > x is false, so the NaN stays for later tiles
    saw_nan = tl.max((scores != scores).to(tl.int32), axis=1) > 0
    return tl.where(saw_nan, float("nan"), best), best_p


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
    SPLIT: tl.constexpr,  # float32 data as float16 pieces: three tensor-core dots (_split_f16)
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
    m_row = m_ptr + i * HW
    best = tl.full([BLOCK_J], float("-inf"), dtype=tl.float32)
    best_p = tl.zeros([BLOCK_J], dtype=tl.int32)
    for p0 in range(0, HW, BLOCK_P):
        offs_p = p0 + tl.arange(0, BLOCK_P)
        p_ok = offs_p < HW
        acc = tl.zeros([BLOCK_J, BLOCK_P], dtype=tl.float32)
        acc_lo = tl.zeros([BLOCK_J, BLOCK_P], dtype=tl.float32)  # SPLIT: the 2^-11 terms
        for k0 in range(0, C, BLOCK_K):
            acc, acc_lo = _pair_tile(acc, acc_lo, v_map, a_ptr, offs_j, j_ok, offs_p, p_ok, k0,
                                     C, HW, UPCAST, PRECISION, SPLIT, BLOCK_K)
        best, best_p = _pair_update(best, best_p, acc, acc_lo, m_row, p0, offs_p, p_ok, SPLIT)
    tl.store(s_ptr + i * B + offs_j, best, mask=j_ok)
    tl.store(arg_ptr + i * B + offs_j, best_p, mask=j_ok)


@triton.jit
def _logits(s, keep, inv_tau, FN_LOGIT: tl.constexpr):
    """A row's logits: s / tau where the pair is kept, else the removed pairs' FN_LOGIT / tau."""
    return tl.where(keep, s, FN_LOGIT) * inv_tau


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
        z = tl.where(ok, _logits(s, keep, inv_tau, FN_LOGIT), float("-inf"))
        new_max = tl.maximum(run_max, tl.max(z, axis=0))
        run_sum = run_sum * tl.exp(run_max - new_max) + tl.sum(tl.exp(z - new_max), axis=0)
        run_max = new_max
    # softmax = exp(z - max) / sum, never exp(z - lse): the GPU's exp and log are not exact
    # at 0 and 1, and a single logit (B = 1) must give softmax 1 and gradient 0 exactly.
    s_ii = tl.load(s_ptr + i * B + i)
    keep_ii = tl.load(keep_ptr + i * B + i) != 0
    z_ii = _logits(s_ii, keep_ii, inv_tau, FN_LOGIT)
    tl.store(loss_ptr + i, (run_max - z_ii) + tl.log(run_sum))

    for j0 in range(0, B, BLOCK):
        offs = j0 + tl.arange(0, BLOCK)
        ok = offs < B
        s = tl.load(s_ptr + i * B + offs, mask=ok, other=0.0)
        keep = tl.load(keep_ptr + i * B + offs, mask=ok, other=0) != 0
        prob = tl.exp(_logits(s, keep, inv_tau, FN_LOGIT) - run_max) / run_sum
        # d mean_i CE / d s[i, j] = keep[i, j] (softmax[i, j] - [i == j]) / (B tau)
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
    g_scale,  # SPLIT: a power of two with |dL/ds| * g_scale <= 1, so g a fits float16
    PRECISION: tl.constexpr,
    NATIVE: tl.constexpr,  # both operands one half dtype: one-hot split in two, native MMAs
    SPLIT: tl.constexpr,  # float32: exact 0/1 one-hot @ float16 pieces of g a (two MMAs)
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
    acc_lo = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32)  # SPLIT: the 2^-11 terms
    for j0 in range(0, B, BLOCK_J):
        offs_j = j0 + tl.arange(0, BLOCK_J)
        j_ok = offs_j < B
        g = tl.load(g_ptr + i * B + offs_j, mask=j_ok, other=0.0)
        p_star = tl.load(arg_ptr + i * B + offs_j, mask=j_ok, other=-1)
        a = tl.load(a_ptr + offs_j[:, None] * C + offs_c[None, :],
                    mask=j_ok[:, None] & c_ok[None, :], other=0.0)
        hit = offs_p[:, None] == p_star[None, :]  # [P, J]
        if SPLIT:
            w_hi, w_lo = _split_f16(a.to(tl.float32) * (g * g_scale)[:, None])  # [J, C]
            onehot = hit.to(tl.float16)
            acc = tl.dot(onehot, w_hi, acc)
            acc_lo = tl.dot(onehot, w_lo, acc_lo)
        else:
            acc = _onehot_dot(tl.where(hit, g[None, :], 0.0), a, acc, PRECISION, NATIVE)
    if SPLIT:
        acc = (acc + acc_lo * (1.0 / SPLIT_SCALE)) * (1.0 / g_scale)
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
    first = split * ROWS_PER_SPLIT
    # 64-bit pointers walk the rows, so large B * C * HW cannot overflow an index
    row = first.to(tl.int64)
    g_row = g_ptr + row * B
    arg_row = arg_ptr + row * B
    m_row = m_ptr + row * HW
    v_map = v_ptr + row * C * HW
    acc = tl.zeros([BLOCK_J, BLOCK_C], dtype=tl.float32)
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


FP32_DOTS = ("ieee", "f16x3")
# tl.arange extents and warp counts: powers of two
POW2_FIELDS = ("pair_j", "pair_p", "pair_k", "pair_warps", "gv_p", "gv_c", "gv_j", "gv_warps",
               "ga_j", "ga_c", "ga_p", "ga_warps", "row_block")
# tile sides of tl.dot operands: at least 16 each on the GPU's MMAs
DOT_FIELDS = ("pair_j", "pair_p", "pair_k", "gv_p", "gv_c", "gv_j", "ga_j", "ga_c", "ga_p")


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
    # float32 operands: "ieee" (float32 FMA dots) or "f16x3" (float16 pieces on the tensor
    # cores in the pair max and dL/dv, see _split_f16: inputs must stay below 65504 in
    # magnitude, which L2-normalised ones do); never TF32
    fp32_dot: str = "ieee"

    def __post_init__(self):
        if self.fp32_dot not in FP32_DOTS:
            raise ValueError(f"Tiles.fp32_dot: expected one of {FP32_DOTS}, got {self.fp32_dot!r}")
        for name in POW2_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1 \
                    or value & (value - 1):
                raise ValueError(f"Tiles.{name}: expected a power of two >= 1 (a block size "
                                 f"or warp count), got {value!r}")
        for name in DOT_FIELDS:
            if getattr(self, name) < 16:
                raise ValueError(f"Tiles.{name}: expected >= 16 (a side of a tl.dot tile), "
                                 f"got {getattr(self, name)!r}")
        for name in ("ga_programs", "stages"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Tiles.{name}: expected an int >= 1, got {value!r}")


# Host-side block arithmetic in plain Python (triton.cdiv is a JIT function: slower to call).
def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _next_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


# Under the interpreter every program costs milliseconds: few, small ones.
INTERPRETER_TILES = Tiles(
    pair_j=16, pair_p=32, pair_k=32, pair_warps=1, gv_p=32, gv_c=32, gv_j=16, gv_warps=1,
    ga_j=16, ga_c=32, ga_p=32, ga_warps=1, ga_programs=4, stages=1, row_block=16,
)


@functools.lru_cache(maxsize=64)  # called on every forward: no dataclass built each step
def default_tiles(B: int, dtype: torch.dtype, on_gpu: bool) -> Tiles:
    """Block sizes picked from the H100 sweep in benchmarks/results/kernels_h100.md."""
    if not on_gpu:
        return INTERPRETER_TILES
    cap = max(16, _next_pow2(B))  # no wider than the batch
    if dtype == torch.float32:
        return Tiles(pair_j=min(128, cap), pair_p=32, pair_k=32, pair_warps=4,
                     gv_p=64, gv_c=128, gv_j=min(32, cap), gv_warps=8,
                     ga_j=min(128, cap), ga_c=128, ga_p=32, ga_warps=8, stages=4)
    return Tiles(pair_j=min(128, cap), pair_p=32, pair_k=64, pair_warps=4,
                 gv_p=32, gv_c=128, gv_j=min(64, cap), gv_warps=4,
                 ga_j=min(128, cap), ga_c=64, ga_p=64, ga_warps=4, stages=4)


@dataclass(frozen=True)
class _Plan:
    """Every launch setting of one (tiles, shapes, dtypes, tau): grids, constexprs, scales.

    Built once per configuration (``_plan`` is cached), so a training step pays only for its
    allocations and launches, not for recomputing block counts and option dicts in Python.
    """

    B: int
    C: int
    HW: int
    out_dtype_v: torch.dtype
    out_dtype_a: torch.dtype
    inv_tau: float
    pair_grid: tuple
    pair_opts: dict
    row_grid: tuple
    row_opts: dict
    grad_scale: float
    gv_programs: int
    gv_opts: dict
    ga_programs: int  # blocks of (j, c) times splits of the sum over i
    ga_splits: int
    rows_per_split: int
    ga_opts: dict


def _plan_for(tiles: Tiles, visual_hat: torch.Tensor, audio_hat: torch.Tensor,
              tau: float) -> _Plan:
    B, C, HW = visual_hat.shape
    return _plan(tiles, B, C, HW, visual_hat.dtype, audio_hat.dtype, float(tau))


@functools.lru_cache(maxsize=256)
def _plan(tiles: Tiles, B: int, C: int, HW: int, v_dtype: torch.dtype, a_dtype: torch.dtype,
          tau: float) -> _Plan:
    fp32 = torch.float32 in (v_dtype, a_dtype)
    split = tiles.fp32_dot == "f16x3" and fp32  # float32 data as float16 pieces
    # float32 operands: FMA dots (f16x3 splits them before tl.dot). Half operands of two
    # dtypes upcast to float32: TF32 holds them exactly.
    precision = "ieee" if fp32 else "tf32"
    native = v_dtype == a_dtype and v_dtype in (torch.float16, torch.bfloat16)
    pair = dict(UPCAST=v_dtype != a_dtype, PRECISION=precision, SPLIT=split,
                BLOCK_J=tiles.pair_j, BLOCK_P=tiles.pair_p, BLOCK_K=tiles.pair_k,
                num_warps=tiles.pair_warps, num_stages=tiles.stages)
    gv = dict(PRECISION=precision, NATIVE=native, SPLIT=split, BLOCK_P=tiles.gv_p,
              BLOCK_C=tiles.gv_c, BLOCK_J=tiles.gv_j, num_warps=tiles.gv_warps,
              num_stages=tiles.stages)
    ga = dict(PRECISION=precision, NATIVE=native, BLOCK_J=tiles.ga_j, BLOCK_C=tiles.ga_c,
              BLOCK_P=tiles.ga_p, num_warps=tiles.ga_warps, num_stages=tiles.stages)
    blocks = _cdiv(B, tiles.ga_j) * _cdiv(C, tiles.ga_c)
    # Split the reduction over i until there are enough programs to fill the GPU.
    rows_per_split = _cdiv(B, max(1, min(B, tiles.ga_programs // blocks)))
    splits = _cdiv(B, rows_per_split)
    return _Plan(
        B=B, C=C, HW=HW, out_dtype_v=v_dtype, out_dtype_a=a_dtype, inv_tau=1.0 / tau,
        pair_grid=(B * _cdiv(B, tiles.pair_j),), pair_opts=pair,
        row_grid=(B,), row_opts=dict(FN_LOGIT=FALSE_NEGATIVE_LOGIT,
                                     BLOCK=min(tiles.row_block, _next_pow2(B))),
        grad_scale=_grad_scale(B, tau),
        gv_programs=B * _cdiv(HW, tiles.gv_p) * _cdiv(C, tiles.gv_c), gv_opts=gv,
        ga_programs=splits * blocks, ga_splits=splits, rows_per_split=rows_per_split,
        ga_opts=ga,
    )


def _grad_scale(B: int, tau: float) -> float:
    """A power of two g_scale with |dL/ds| g_scale <= 1: |dL/ds| <= 1 / (B tau) (softmax)."""
    return 2.0 ** -math.ceil(math.log2(max(1.0 / (B * tau), 2.0 ** -60)))


def _pair_max(plan: _Plan, visual_hat, mask, audio_hat):
    """-> (s [B, B] float32, argmax [B, B] int32); inputs contiguous, mask float32."""
    B, dev = plan.B, visual_hat.device
    sims = _alloc.empty((B, B), torch.float32, dev)
    argmax = _alloc.empty((B, B), torch.int32, dev)
    _pair_max_kernel[plan.pair_grid](visual_hat, mask, audio_hat, sims, argmax, B, plan.C,
                                     plan.HW, **plan.pair_opts)
    return sims, argmax


def _row_loss(plan: _Plan, sims, keep):
    """-> (loss rows [B] float32, dL/ds [B, B] float32 for the mean of the rows)."""
    B = plan.B
    rows = _alloc.empty((B,), torch.float32, sims.device)
    grad_sims = _alloc.empty((B, B), torch.float32, sims.device)
    _row_loss_kernel[plan.row_grid](sims, keep, rows, grad_sims, B, plan.inv_tau,
                                    **plan.row_opts)
    return rows, grad_sims


def _forward(plan: _Plan, visual_hat, mask, audio_hat, keep):
    """-> (loss rows [B], dL/ds [B, B], argmax [B, B]); inputs contiguous, mask float32."""
    sims, argmax = _pair_max(plan, visual_hat, mask, audio_hat)
    rows, grad_sims = _row_loss(plan, sims, keep)
    return rows, grad_sims, argmax


def _grad_visual(plan: _Plan, grad_sims, argmax, mask, audio_hat, gout):
    B, C, HW = plan.B, plan.C, plan.HW
    grad = _alloc.empty((B, C, HW), plan.out_dtype_v, grad_sims.device)
    _grad_visual_kernel[(plan.gv_programs,)](grad_sims, argmax, mask, audio_hat, gout, grad, B,
                                             C, HW, plan.grad_scale, **plan.gv_opts)
    return grad


def _grad_audio(plan: _Plan, grad_sims, argmax, mask, visual_hat, gout):
    B, C, HW = plan.B, plan.C, plan.HW
    partial = _alloc.empty((plan.ga_splits, B, C), torch.float32, visual_hat.device)
    _grad_audio_kernel[(plan.ga_programs,)](grad_sims, argmax, mask, visual_hat, gout, partial,
                                            B, C, HW, plan.rows_per_split, **plan.ga_opts)
    # one split: no reduction kernel; float32 output: no cast kernel
    total = partial[0] if plan.ga_splits == 1 else partial.sum(dim=0)
    return total.to(plan.out_dtype_a)


class MaskedInfoNCE(torch.autograd.Function):
    """(visual_hat [B, C, HW], mask [B, HW], audio_hat [B, C], keep [B, B], tau) -> loss [].

    The loss is float32 whatever the input dtype. Gradients flow to visual_hat and audio_hat
    (in their own dtypes) through the argmax position of each pair; mask and keep get none.
    """

    @staticmethod
    def forward(ctx, visual_hat, mask, audio_hat, keep, tau, tiles=None):
        visual_hat = visual_hat.contiguous()
        audio_hat = audio_hat.contiguous()
        if mask.dtype != torch.float32:
            mask = mask.to(torch.float32)
        mask = mask.contiguous()
        # a bool tensor is read as its bytes (no copy); anything else becomes 0 / 1 bytes
        keep = (keep.contiguous().view(torch.uint8) if keep.dtype == torch.bool
                else keep.to(torch.bool).to(torch.uint8).contiguous())
        tiles = tiles or default_tiles(visual_hat.shape[0], visual_hat.dtype, visual_hat.is_cuda)
        plan = _plan_for(tiles, visual_hat, audio_hat, tau)
        rows, grad_sims, argmax = _forward(plan, visual_hat, mask, audio_hat, keep)
        ctx.save_for_backward(visual_hat, mask, audio_hat, grad_sims, argmax)
        ctx.plan = plan
        return rows.mean()

    @staticmethod
    def backward(ctx, grad_loss):
        visual_hat, mask, audio_hat, grad_sims, argmax = ctx.saved_tensors
        plan, needs = ctx.plan, ctx.needs_input_grad
        with torch.no_grad():
            gout = grad_loss  # the mean's gradient: a float32 scalar, read on the device
            if gout.dtype != torch.float32 or gout.dim() != 0:
                gout = gout.to(torch.float32).reshape(()).contiguous()
            grad_visual = grad_audio = None
            if needs[0]:
                grad_visual = _grad_visual(plan, grad_sims, argmax, mask, audio_hat, gout)
            if needs[2]:
                grad_audio = _grad_audio(plan, grad_sims, argmax, mask, visual_hat, gout)
        grads = (grad_visual, None, grad_audio, None, None, None)
        return first_order("masked_infonce", grads, (visual_hat, audio_hat, grad_loss))


def masked_infonce(visual_hat, mask, audio_hat, keep, tau: float = 0.005,
                   tiles: Tiles | None = None):
    """Triton twin of ``reference.masked_infonce`` (no argument checks; see the package)."""
    return MaskedInfoNCE.apply(visual_hat, mask, audio_hat, keep, tau, tiles)
