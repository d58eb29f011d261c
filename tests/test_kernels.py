"""Fused kernels (``tri``) against their PyTorch twins (``ref``): forward and every gradient.

Without a GPU the kernels run under Triton's interpreter (conftest sets TRITON_INTERPRET=1), so
shapes stay small; with one, the same tests run on CUDA. Low precision is judged by the
relative RMS error, so one tolerance per dtype serves every tensor. Every buffer the kernels
allocate is filled with NaN first (``poisoned_buffers``), so a missed write fails loudly.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import avsdk.kernels as K
from avsdk.errors import InputError
from avsdk.kernels import _alloc, reference

pytest.importorskip("triton", reason="the fused kernels need triton (pip install 'avsdk[train]')")

# (max relative RMS error, max abs error relative to the largest reference value)
TOLERANCE = {
    torch.float32: (2e-5, 2e-4),
    torch.float16: (3e-3, 2e-2),
    torch.bfloat16: (2e-2, 1e-1),
}
SHORT = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
DTYPES = [
    torch.float32,
    torch.float16,
    pytest.param(torch.bfloat16, marks=pytest.mark.gpu, id="bf16"),  # interpreter: no bf16
]


@pytest.fixture(autouse=True)
def poisoned_buffers(monkeypatch):
    """Every kernel output starts as NaN (floats) or INT32_MIN (ints)."""

    def poisoned(shape, dtype, device):
        out = torch.empty(shape, dtype=dtype, device=device)
        return out.fill_(float("nan") if dtype.is_floating_point else torch.iinfo(dtype).min)

    monkeypatch.setattr(_alloc, "empty", poisoned)


def assert_close(name: str, ref: torch.Tensor, tri: torch.Tensor, dtype: torch.dtype,
                 floor: float = 1e-2) -> None:
    assert ref.shape == tri.shape, f"{name}: shape {tuple(tri.shape)} != {tuple(ref.shape)}"
    assert ref.dtype == tri.dtype, f"{name}: dtype {tri.dtype} != {ref.dtype}"
    ref, tri = ref.double(), tri.double()
    assert torch.isfinite(tri).all(), f"{name}: non-finite values (a missed write?)"
    max_rms, max_abs = TOLERANCE[dtype]
    # errors are relative to the reference's size, with a floor for values near 0
    scale = ref.abs().max().clamp_min(floor)
    rms = (ref - tri).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt().clamp_min(floor)
    worst = (ref - tri).abs().max() / scale
    assert rms <= max_rms and worst <= max_abs, (
        f"{name}: relative RMS error {rms:.2e} (limit {max_rms:.0e}), "
        f"max error {worst:.2e} of the largest value (limit {max_abs:.0e})")


def run_both(op, inputs, grad_outputs=None):
    """Run ``op`` with kernel="torch" and "triton" on copies of ``inputs``; -> (ref, tri) lists."""
    results = []
    for kernel in ("torch", "triton"):
        leaves = [x.detach().clone().requires_grad_(x.requires_grad) for x in inputs]
        out = op(*leaves, kernel=kernel)
        outs = list(out) if isinstance(out, tuple) else [out]
        grads = grad_outputs or [torch.ones_like(o) for o in outs]
        torch.autograd.backward(outs, grads)
        results.append(outs + [x.grad for x in leaves if x.requires_grad])
    return results


# --------------------------------------------------------------------------- av_similarity
SIM_SHAPES = [(1, 5, 7), (3, 37, 29), (2, 16, (3, 5)), (4, 64, 49), (2, 37, 200)]


def _sim_id(shape):
    B, C, hw = shape
    space = f"H{hw[0]}W{hw[1]}" if isinstance(hw, tuple) else f"HW{hw}"
    return f"B{B}-C{C}-{space}"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: SHORT[d])
@pytest.mark.parametrize("shape", SIM_SHAPES, ids=_sim_id)
def test_av_similarity_matches_reference(shape, dtype, device):
    B, C, hw = shape
    spatial = hw if isinstance(hw, tuple) else (hw,)
    gen = torch.Generator().manual_seed(B * 1000 + C)
    visual = torch.randn(B, C, *spatial, generator=gen).to(device, dtype).requires_grad_()
    audio = torch.randn(B, C, generator=gen).to(device, dtype).requires_grad_()
    out_shapes = [(B, *spatial), (B, *spatial), (B, C)]
    grads = [torch.randn(s, generator=gen).to(device, dtype) for s in out_shapes]
    ref, tri = run_both(K.av_similarity, [visual, audio], grads)
    for name, r, t in zip(["S", "A", "f", "grad visual", "grad audio"], ref, tri):
        assert_close(name, r, t, dtype)


def test_av_similarity_non_contiguous(device):
    gen = torch.Generator().manual_seed(7)
    visual = torch.randn(3, 9, 11, generator=gen).to(device).transpose(1, 2)  # [3, 11, 9]
    audio = torch.randn(11, 3, generator=gen).to(device).t()  # [3, 11], strided
    ref, tri = run_both(K.av_similarity, [visual.requires_grad_(), audio.requires_grad_()],
                        [torch.ones(3, 9, device=device)] * 2 + [torch.ones(3, 11, device=device)])
    for name, r, t in zip(["S", "A", "f", "grad visual", "grad audio"], ref, tri):
        assert_close(name, r, t, torch.float32)


def test_av_similarity_constant_map_puts_min_and_max_at_one_position(device):
    """Every position equal: S is constant, lo and hi are the same position (the first), and
    A = 0. Gradients through A or f are then of size 1 / MINMAX_EPS and cancel to rounding
    noise in any implementation, so only dL/dS flows here; every column is still written."""
    gen = torch.Generator().manual_seed(3)
    column = torch.randn(2, 12, 1, generator=gen)
    visual = column.expand(2, 12, 9).contiguous().to(device).requires_grad_()
    audio = torch.randn(2, 12, generator=gen).to(device).requires_grad_()
    grads = [torch.randn(2, 9, generator=gen).to(device), torch.zeros(2, 9, device=device),
             torch.zeros(2, 12, device=device)]
    ref, tri = run_both(K.av_similarity, [visual, audio], grads)
    for name, r, t in zip(["S", "A", "f", "grad visual", "grad audio"], ref, tri):
        assert_close(name, r, t, torch.float32)


def test_av_similarity_large_map(device):
    """9000 positions: many blocks of positions, more than one spatial row ever held."""
    gen = torch.Generator().manual_seed(4)
    B, C, HW = 2, 4, 9000
    audio = torch.randn(B, C, generator=gen)
    visual = (audio.unsqueeze(2) + 0.3 * torch.randn(B, C, HW, generator=gen)).to(device)
    grads = [torch.randn(s, generator=gen).to(device) for s in [(B, HW), (B, HW), (B, C)]]
    ref, tri = run_both(K.av_similarity,
                        [visual.requires_grad_(), audio.to(device).requires_grad_()], grads)
    for name, r, t in zip(["S", "A", "f", "grad visual", "grad audio"], ref, tri):
        assert_close(name, r, t, torch.float32)


@pytest.mark.parametrize("kernel", ["torch", "triton"])
def test_av_similarity_one_position_map_passes_the_gradient_of_s(kernel, device):
    """HW = 1: A = (S - S) / eps is 0 whatever S is, so dL/dv and dL/da are those of S alone.
    Written as two terms of size 1 / eps that cancel, they wiped out dL/dS in float32."""
    gen = torch.Generator().manual_seed(8)
    visual = torch.randn(3, 6, 1, generator=gen).to(device).requires_grad_()
    audio = torch.randn(3, 6, generator=gen).to(device).requires_grad_()
    S, A, f = K.av_similarity(visual, audio, kernel=kernel)
    assert torch.all(A == 0) and torch.all(f == 0)
    got = torch.autograd.grad((S * torch.arange(1.0, 4.0, device=device)[:, None]).sum()
                              + A.sum() + f.sum(), [visual, audio])
    v64, a64 = visual.detach().double().requires_grad_(), audio.detach().double().requires_grad_()
    cosine = F.cosine_similarity(v64[:, :, 0], a64, dim=1)
    expected = torch.autograd.grad((cosine * torch.arange(1.0, 4.0, dtype=torch.float64)).sum(),
                                   [v64, a64])
    for name, e, g in zip(["grad visual", "grad audio"], expected, got):
        torch.testing.assert_close(g.double().cpu(), e, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("where", ["visual-first-block", "visual-last-block", "audio"])
def test_av_similarity_propagates_nan_as_the_reference(where, device):
    """A NaN makes its S NaN, and through min / max every A and f of that clip, in both; the
    kernel's running min / max over blocks of positions must not step over it."""
    gen = torch.Generator().manual_seed(9)
    visual = torch.randn(2, 512, 12, generator=gen)  # C = 512: blocks of 8 positions
    audio = torch.randn(2, 512, generator=gen)
    if where == "audio":
        audio[1, 3] = float("nan")
    else:
        visual[1, :, 2 if where == "visual-first-block" else 10] = float("nan")
    ref = K.av_similarity(visual, audio, kernel="torch")
    tri = K.av_similarity(visual.to(device), audio.to(device), kernel="triton")
    for name, r, t in zip("SAf", ref, tri):
        assert torch.equal(t.isnan().cpu(), r.isnan()), name
        assert r.isnan().any() and not r[0].isnan().any()  # clip 1 alone
        torch.testing.assert_close(t[0].cpu(), r[0], msg=name)


def test_av_similarity_pooled_feature_in_a_narrow_band_matches_float64(device):
    """S within [0.95, 0.96] over 9000 positions. The kernel pools f as (sum (S - S[0]) v +
    (S[0] - lo) sum v) / span; without the shift by S[0] the two sums would be ~90x larger
    than their difference, and f was measured 2.5e-5 from float64, above this limit."""
    gen = torch.Generator().manual_seed(4)
    B, C, HW = 2, 8, 9000
    a_hat = F.normalize(torch.randn(B, C, generator=gen), dim=1)
    noise = torch.randn(B, C, HW, generator=gen)
    noise -= (noise * a_hat.unsqueeze(2)).sum(1, keepdim=True) * a_hat.unsqueeze(2)
    noise = F.normalize(noise, dim=1) * (0.29 + 0.04 * torch.rand(B, 1, HW, generator=gen))
    visual = (a_hat.unsqueeze(2) + noise) * (1 + torch.rand(B, 1, HW, generator=gen))
    exact = K.reference.av_similarity(visual.double(), a_hat.double())
    assert 0.94 < exact[0].min() and exact[0].max() < 0.97
    tri = K.av_similarity(visual.to(device), a_hat.to(device), kernel="triton")
    for name, e, t, limit in zip("SAf", exact, tri, [1e-6, 3e-5, 1.5e-5]):
        rms = ((t.double().cpu() - e).pow(2).mean().sqrt() / e.pow(2).mean().sqrt()).item()
        assert rms <= limit, f"{name}: relative RMS error to float64 {rms:.1e} > {limit:.1e}"


def test_av_similarity_refuses_triton_beyond_the_channel_limit(device):
    visual = torch.zeros(1, K.MAX_C + 1, 2, device=device)
    audio = torch.zeros(1, K.MAX_C + 1, device=device)
    with pytest.raises(InputError, match="C <="):
        K.av_similarity(visual, audio, kernel="triton")
    S, A, f = K.av_similarity(visual, audio, kernel="auto")  # the reference serves
    assert f.shape == (1, K.MAX_C + 1)


# -------------------------------------------------------------------------- masked_infonce
def _infonce_inputs(B, C, HW, dtype, device, masks="random", seed=0, keep_diag=True):
    gen = torch.Generator().manual_seed(seed)
    visual = F.normalize(torch.randn(B, C, HW, generator=gen), dim=1).to(device, dtype)
    audio = F.normalize(torch.randn(B, C, generator=gen), dim=1).to(device, dtype)
    mask = (torch.rand(B, HW, generator=gen) > 0.5).float()
    if masks == "zero-row":
        mask[B // 2] = 0.0  # an empty positive region: s = 0 for the whole row
    elif masks == "ones":
        mask.fill_(1.0)
    keep = torch.rand(B, B, generator=gen) > 0.3
    keep.fill_diagonal_(keep_diag)
    return visual.requires_grad_(), mask.to(device), audio.requires_grad_(), keep.to(device)


INFONCE_CASES = [
    # (B, C, HW, masks, keep the positives)
    (1, 8, 5, "random", True),
    (3, 37, 29, "zero-row", True),
    (5, 20, 50, "ones", True),
    (4, 33, 17, "random", False),  # positives removed too: every logit of row i is -10 or kept
    (7, 48, 40, "zero-row", True),
    (20, 40, 70, "zero-row", True),  # several blocks of j, p and channels under the interpreter
]


def _case_id(case):
    B, C, HW, masks, diag = case
    return f"B{B}-C{C}-HW{HW}-{masks}" + ("" if diag else "-nodiag")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: SHORT[d])
@pytest.mark.parametrize("case", INFONCE_CASES, ids=_case_id)
def test_masked_infonce_matches_reference(case, dtype, device):
    B, C, HW, masks, diag = case
    visual, mask, audio, keep = _infonce_inputs(B, C, HW, dtype, device, masks, B + C, diag)
    ref, tri = run_both(lambda v, a, kernel: K.masked_infonce(v, mask, a, keep, 0.005, kernel),
                        [visual, audio])
    # The loss sums logits s / tau of size ~200, whose float32 rounding is ~1e-5 however small
    # the loss (B = 1: exactly 0 in the reference, ~1e-6 from the GPU's division): floor 1.
    assert_close("loss", ref[0], tri[0], torch.float32, floor=1.0)
    for name, r, t in zip(["grad visual", "grad audio"], ref[1:], tri[1:]):
        assert_close(name, r, t, dtype)
    assert tri[0].dtype == torch.float32


# Tiles options that change the arithmetic, not only block sizes (see fused_infonce.Tiles)
VARIANTS = {
    "f16x3": {"fp32_dot": "f16x3"},  # float32 as float16 pieces on the tensor cores
}


def _tiles_op(tiles_for):
    """masked_infonce with (kernel "triton") the Tiles ``tiles_for(visual)``, else the twin."""
    from avsdk.kernels.fused_infonce import masked_infonce

    def op(visual, mask, audio, keep, tau, kernel):
        if kernel == "torch":
            return K.masked_infonce(visual, mask, audio, keep, tau, kernel="torch")
        return masked_infonce(visual, mask, audio, keep, tau, tiles=tiles_for(visual))

    return op


def _variant_op(variant: str, device: str):
    from dataclasses import replace

    from avsdk.kernels.fused_infonce import default_tiles

    return _tiles_op(lambda visual: replace(
        default_tiles(visual.shape[0], visual.dtype, device == "cuda"), **VARIANTS[variant]))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: SHORT[d])
@pytest.mark.parametrize("case", INFONCE_CASES, ids=_case_id)
def test_masked_infonce_variants_match_reference(case, dtype, variant, device):
    B, C, HW, masks, diag = case
    visual, mask, audio, keep = _infonce_inputs(B, C, HW, dtype, device, masks, B + C, diag)
    op = _variant_op(variant, device)
    ref, tri = run_both(lambda v, a, kernel: op(v, mask, a, keep, 0.005, kernel),
                        [visual, audio])
    assert_close("loss", ref[0], tri[0], torch.float32, floor=1.0)
    for name, r, t in zip(["grad visual", "grad audio"], ref[1:], tri[1:]):
        assert_close(name, r, t, dtype)


@pytest.mark.parametrize("variant", VARIANTS)
def test_masked_infonce_variants_mixed_dtypes_and_large_tau(variant, device):
    """float32 visual with float16 audio, and tau = 1 (the f16x3 gradient scale grows)."""
    gen = torch.Generator().manual_seed(12)
    B, C, HW = 5, 24, 10
    visual = F.normalize(torch.randn(B, C, HW, generator=gen), dim=1).to(device)
    audio = F.normalize(torch.randn(B, C, generator=gen), dim=1).to(device, torch.float16)
    mask = (torch.rand(B, HW, generator=gen) > 0.4).to(device)
    keep = torch.ones(B, B, dtype=torch.bool, device=device)
    op = _variant_op(variant, device)
    ref, tri = run_both(lambda v, a, kernel: op(v, mask, a, keep, 1.0, kernel),
                        [visual.requires_grad_(), audio.requires_grad_()])
    for name, r, t, dt in zip(["loss", "grad visual", "grad audio"], ref, tri,
                              [torch.float32, torch.float32, torch.float16]):
        assert_close(name, r, t, dt)


@pytest.mark.parametrize("variant", ["default", "f16x3"])
def test_masked_infonce_one_input_needs_a_gradient(variant, device):
    """Only dL/dv, then only dL/da: the other gradient stays None."""
    visual, mask, audio, keep = _infonce_inputs(6, 20, 30, torch.float32, device, "zero-row", 2)
    op = _variant_op(variant, device) if variant != "default" else K.masked_infonce
    for wanted in ("visual", "audio"):
        v = visual.detach().clone().requires_grad_(wanted == "visual")
        a = audio.detach().clone().requires_grad_(wanted == "audio")
        leaf = v if wanted == "visual" else a
        ref = torch.autograd.grad(op(v, mask, a, keep, 0.005, "torch"), [leaf])
        loss = op(v, mask, a, keep, 0.005, "triton")
        loss.backward()
        got, other = (v.grad, a.grad) if wanted == "visual" else (a.grad, v.grad)
        assert other is None
        assert_close(f"grad {wanted}", ref[0], got, torch.float32)


def test_unknown_tiles_options_are_refused():
    from avsdk.kernels.fused_infonce import Tiles

    for dot in ("tf32", "tf32x3"):  # plain TF32 is too coarse; 3-pass TF32 was measured slower
        with pytest.raises(ValueError, match="fp32_dot"):
            Tiles(fp32_dot=dot)
    for bad in (dict(pair_j=0), dict(pair_j=24), dict(pair_p=16.0), dict(gv_c=-1),
                dict(ga_warps=True), dict(row_block=3)):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=f"Tiles.{name}: expected a power of two"):
            Tiles(**bad)
    with pytest.raises(ValueError, match="Tiles.gv_j: expected >= 16"):
        Tiles(gv_j=8)
    for bad in (dict(stages=0), dict(ga_programs=2.5)):
        with pytest.raises(ValueError, match=f"Tiles.{next(iter(bad))}: expected an int >= 1"):
            Tiles(**bad)


def test_masked_infonce_zero_mask_row_gets_no_gradient(device):
    visual, mask, audio, keep = _infonce_inputs(4, 16, 12, torch.float32, device, "zero-row", 3)
    loss = K.masked_infonce(visual, mask, audio, keep, kernel="triton")
    loss.backward()
    assert torch.all(visual.grad[2] == 0)  # row B // 2 has an empty mask
    assert torch.all(visual.grad * (1 - mask).unsqueeze(1) == 0)  # nor does any masked position


def test_masked_infonce_non_contiguous_mixed_dtypes_and_bool_mask(device):
    gen = torch.Generator().manual_seed(11)
    B, C, HW = 3, 24, 10
    visual = F.normalize(torch.randn(B, HW, C, generator=gen), dim=2).to(device).transpose(1, 2)
    audio = F.normalize(torch.randn(B, C, generator=gen), dim=1).to(device, torch.float16)
    mask = (torch.rand(HW, B, generator=gen) > 0.4).to(device).t()  # bool, strided
    keep = torch.ones(B, B, dtype=torch.bool, device=device)
    ref, tri = run_both(lambda v, a, kernel: K.masked_infonce(v, mask, a, keep, 0.01, kernel),
                        [visual.requires_grad_(), audio.requires_grad_()])
    for name, r, t, dt in zip(["loss", "grad visual", "grad audio"], ref, tri,
                              [torch.float32, torch.float32, torch.float16]):
        assert_close(name, r, t, dt)


def test_masked_infonce_closed_form(device):
    """Aligned pairs, everything else orthogonal: each row's loss is log(1 + (B - 1) e^0)."""
    B, C, HW, tau = 4, 16, 6, 0.5
    audio = torch.eye(B, C, device=device)
    visual = torch.zeros(B, C, HW, device=device)
    visual[torch.arange(B), torch.arange(B), 0] = 1.0
    mask = torch.ones(B, HW, device=device)
    keep = torch.ones(B, B, dtype=torch.bool, device=device)
    loss = K.masked_infonce(visual, mask, audio, keep, tau, kernel="triton")
    expected = torch.log(torch.tensor(1.0 + (B - 1) * torch.exp(torch.tensor(-1.0 / tau)).item()))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("variant", ["default", "f16x3"])
@pytest.mark.parametrize("where", ["visual-first-tile", "visual-last-tile", "audio"])
def test_masked_infonce_propagates_nan_as_the_reference(where, variant, device):
    """A NaN dot makes the max of its pair NaN, and the loss NaN, as torch's max does: the
    running max over tiles of positions must not step over it (it did, giving a finite or
    infinite loss). HW = 70 spans three tiles of positions under the interpreter's tiles."""
    visual, mask, audio, keep = _infonce_inputs(5, 20, 70, torch.float32, device, "ones", 6)
    visual, audio = visual.detach().clone(), audio.detach().clone()
    if where == "audio":
        audio[3, 1] = float("nan")
    else:
        visual[1, :, 1 if where == "visual-first-tile" else 69] = float("nan")
    op = _variant_op(variant, device) if variant != "default" else K.masked_infonce
    assert K.masked_infonce(visual, mask, audio, keep, 0.07, kernel="torch").isnan()
    assert op(visual, mask, audio, keep, 0.07, kernel="triton").isnan()


def test_masked_infonce_gives_the_mask_no_gradient(device):
    """Both twins treat the mask as a constant, also when it is a float tensor needing grad."""
    visual, mask, audio, keep = _infonce_inputs(4, 16, 12, torch.float32, device, "random", 5)
    for kernel in ("torch", "triton"):
        m = mask.clone().requires_grad_()
        loss = K.masked_infonce(visual, m, audio, keep, kernel=kernel)
        assert torch.autograd.grad(loss, [m], allow_unused=True) == (None,), kernel


@pytest.mark.parametrize("op", ["masked_infonce", "av_similarity"])
def test_kernel_gradients_refuse_a_second_differentiation(op, device):
    """create_graph=True still gives the right first-order gradients, but differentiating them
    again raises (the kernels' gradients carry no graph: it would silently be wrong)."""
    visual, mask, audio, keep = _infonce_inputs(4, 16, 12, torch.float32, device, "random", 5)

    def loss_of(v, a, kernel):
        if op == "masked_infonce":
            return K.masked_infonce(v, mask, a, keep, 0.07, kernel=kernel)
        S, A, f = K.av_similarity(v, a, kernel=kernel)
        return S.sum() + (A * S).sum() + f.pow(2).sum()

    plain = torch.autograd.grad(loss_of(visual, audio, "triton"), [visual, audio])
    grads = {}
    for kernel in ("torch", "triton"):
        grads[kernel] = torch.autograd.grad(loss_of(visual, audio, kernel), [visual, audio],
                                             create_graph=True)
        assert all(g.requires_grad for g in grads[kernel])
    for name, p, g in zip(["grad visual", "grad audio"], plain, grads["triton"]):
        torch.testing.assert_close(g, p, rtol=0, atol=0, msg=name)
    torch.autograd.grad(grads["torch"][0].pow(2).sum(), [visual])  # the twin can
    with pytest.raises(RuntimeError, match=f"{op}.*kernel='torch'"):
        torch.autograd.grad(grads["triton"][0].pow(2).sum(), [visual])


# ----------------------------------------------------------------------- training behaviour
class TinyAV(torch.nn.Module):
    """A 1x1 "visual trunk" and a linear "audio encoder": enough to move both kernels."""

    def __init__(self, c_in=6, c=16):
        super().__init__()
        self.visual = torch.nn.Conv1d(c_in, c, 1)
        self.audio = torch.nn.Linear(c_in, c)

    def forward(self, frames, sounds, mask, keep, kernel):
        v = self.visual(frames)  # [B, C, HW]
        a = self.audio(sounds)  # [B, C]
        sim, att, pooled = K.av_similarity(v, a, kernel=kernel)
        contrast = K.masked_infonce(F.normalize(v, dim=1), mask, F.normalize(a, dim=1), keep,
                                    tau=0.07, kernel=kernel)
        return contrast + 0.1 * (att * sim).mean() + 1e-3 * pooled.pow(2).mean()


def test_sgd_steps_give_the_same_losses(device):
    gen = torch.Generator().manual_seed(5)
    B, HW = 6, 12
    frames = torch.randn(B, 6, HW, generator=gen).to(device)
    sounds = torch.randn(B, 6, generator=gen).to(device)
    mask = (torch.rand(B, HW, generator=gen) > 0.5).float().to(device)
    keep = torch.ones(B, B, dtype=torch.bool, device=device)
    losses = {}
    for kernel in ("torch", "triton"):
        torch.manual_seed(0)
        model = TinyAV().to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        history = []
        for _ in range(6):
            opt.zero_grad()
            loss = model(frames, sounds, mask, keep, kernel)
            loss.backward()
            opt.step()
            history.append(loss.item())
        losses[kernel] = history
    assert losses["torch"][-1] < 0.2 * losses["torch"][0]  # it does train
    assert losses["triton"] == pytest.approx(losses["torch"], rel=1e-4, abs=1e-5)


# ------------------------------------------------------------------ references (fp64 oracle)
def test_references_pass_gradcheck():
    gen = torch.Generator().manual_seed(3)
    v = torch.randn(2, 5, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    a = torch.randn(2, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, a: reference.av_similarity(v, a), (v, a))
    vh = F.normalize(torch.randn(3, 5, 7, generator=gen, dtype=torch.float64), dim=1)
    ah = F.normalize(torch.randn(3, 5, generator=gen, dtype=torch.float64), dim=1)
    mask = (torch.rand(3, 7, generator=gen) > 0.5).double()
    keep = torch.tensor([[1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=torch.bool)
    vh.requires_grad_()
    ah.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda v, a: reference.masked_infonce(v, mask, a, keep, 0.05), (vh, ah))


# -------------------------------------------------------------------- dispatch and errors
def test_import_does_not_pull_in_triton():
    code = "import sys, avsdk.kernels; sys.exit('triton' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_auto_runs_the_reference_on_cpu():
    visual, mask, audio, keep = _infonce_inputs(3, 8, 5, torch.float32, "cpu")
    auto = K.masked_infonce(visual, mask, audio, keep)
    assert torch.equal(auto, reference.masked_infonce(visual, mask, audio, keep))


H100_BYTES = 80 * 2**30  # the measured H100 80GB


@pytest.mark.parametrize("dtype, B, fused_faster", [
    (torch.float32, 64, False),  # 0.84 vs 0.78 ms in one run (0.65 vs 0.84 in another)
    (torch.float32, 256, False),  # 1.80 vs 1.62 ms
    (torch.float32, 1024, False),  # 26.8 vs 17.0 ms
    (torch.bfloat16, 64, True),  # 0.71-0.82 vs 1.07-1.11 ms
    (torch.bfloat16, 256, True),  # 0.59-0.74 vs 1.73 ms
    (torch.bfloat16, 1024, True),  # 7.1 vs 17.3 ms
], ids=lambda x: SHORT.get(x, str(x)))
def test_auto_follows_the_h100_measurements(dtype, B, fused_faster):
    """benchmarks/results/kernels_h100.md, masked_infonce forward + backward at HW = 196."""
    assert K.infonce_triton_pays(dtype, B, 196, H100_BYTES) is fused_faster


def test_auto_runs_float32_fused_only_where_eager_cannot_fit():
    """Eager needs ~10 bytes per [B, B, HW] element (1960 MB at B = 1024), the kernel a
    quarter of that: float32 goes to the kernel once eager's products outgrow the device."""
    assert not K.infonce_triton_pays(torch.float32, 4096, 196, H100_BYTES)  # ~33 GB
    assert K.infonce_triton_pays(torch.float32, 8192, 196, H100_BYTES)  # ~131 GB
    assert K.infonce_triton_pays(torch.float32, 4096, 196, 16 * 2**30)
    assert K.infonce_triton_pays(torch.float16, 2, 1, 16 * 2**30)  # bfloat16's path


@pytest.mark.gpu
def test_auto_dispatch_on_cuda(monkeypatch):
    """auto: the kernel for bfloat16, the twin for float32 (measured slower), for mixed half
    dtypes (the kernel would compute them in float32) and while exporting."""
    from avsdk.kernels.fused_infonce import MaskedInfoNCE

    calls = []
    original = MaskedInfoNCE.apply
    monkeypatch.setattr(MaskedInfoNCE, "apply", lambda *a: calls.append(1) or original(*a))
    visual, mask, audio, keep = _infonce_inputs(3, 8, 5, torch.bfloat16, "cuda")
    K.masked_infonce(visual, mask, audio, keep)
    assert calls == [1]
    K.masked_infonce(visual.float(), mask, audio.float(), keep)
    K.masked_infonce(visual, mask, audio.half(), keep)
    assert calls == [1]  # the twin ran
    K.masked_infonce(visual.float(), mask, audio.float(), keep, kernel="triton")
    assert calls == [1, 1]  # forcing still reaches the kernel
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    K.masked_infonce(visual, mask, audio, keep)
    assert calls == [1, 1]  # exporting: the reference ran


def test_forcing_triton_without_a_gpu_or_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    visual, mask, audio, keep = _infonce_inputs(2, 4, 3, torch.float32, "cpu")
    with pytest.raises(InputError, match="^kernel:"):
        K.masked_infonce(visual, mask, audio, keep, kernel="triton")


@pytest.mark.parametrize("bad, match", [
    (dict(kernel="cuda"), "^kernel:"),
    (dict(tau=0.0), "tau"),
    (dict(tau=float("nan")), "tau"),
    (dict(mask=torch.ones(3, 4)), "mask"),
    (dict(audio_hat=torch.ones(3, 7)), "audio_hat"),
    (dict(keep=torch.ones(2, 3, dtype=torch.bool)), "keep"),
    (dict(visual_hat=torch.ones(3, 8)), "visual_hat"),
    (dict(visual_hat=torch.ones(3, 8, 5, dtype=torch.int64)), "visual_hat"),
    (dict(visual_hat=torch.ones(3, 8, 5, dtype=torch.float64), kernel="triton"), "^kernel:"),
    (dict(tau=1e-40), "tau"),
    (dict(keep=torch.ones(3, 3, dtype=torch.complex64)), "keep.*complex64"),
    (dict(mask=torch.ones(3, 5, dtype=torch.complex64)), "mask.*complex64"),
    ({name: torch.ones(shape, device="meta") for name, shape in [
        ("visual_hat", (3, 8, 5)), ("mask", (3, 5)), ("audio_hat", (3, 8)), ("keep", (3, 3))]}
     | dict(kernel="triton"), "^kernel:.*meta"),
], ids=["kernel", "tau-zero", "tau-nan", "mask-shape", "audio-shape", "keep-shape",
        "visual-rank", "visual-int", "fp64-triton", "tau-below-float32", "keep-complex",
        "mask-complex", "triton-on-meta"])
def test_masked_infonce_rejects_bad_arguments(bad, match):
    args = dict(visual_hat=torch.ones(3, 8, 5), mask=torch.ones(3, 5), audio_hat=torch.ones(3, 8),
                keep=torch.ones(3, 3, dtype=torch.bool), tau=0.005, kernel="auto")
    args.update(bad)
    with pytest.raises(InputError, match=match):
        K.masked_infonce(**args)


@pytest.mark.parametrize("visual, audio, match", [
    (torch.ones(2, 3), torch.ones(2, 3), "visual"),
    (torch.ones(2, 3, 4, 4), torch.ones(2, 4), "audio"),
    (torch.ones(0, 3, 4), torch.ones(0, 3), "visual"),
    ([[1.0]], torch.ones(1, 1), "visual"),
], ids=["visual-rank", "audio-shape", "empty", "not-a-tensor"])
def test_av_similarity_rejects_bad_arguments(visual, audio, match):
    with pytest.raises(InputError, match=match):
        K.av_similarity(visual, audio)


# ---- the old name of ``kernel``: ``backend`` (deprecated, kept for one release) -----------------
def _old_keyword_calls():
    visual, mask, audio, keep = _infonce_inputs(3, 8, 5, torch.float32, "cpu")
    return {
        "av_similarity": lambda *args, **kw: K.av_similarity(visual, audio, *args, **kw),
        "masked_infonce": lambda *args, **kw: K.masked_infonce(visual, mask, audio, keep, 0.005,
                                                               *args, **kw),
    }


@pytest.mark.parametrize("op", ["av_similarity", "masked_infonce"])
def test_old_backend_keyword_warns_and_gives_the_same_result(op):
    call = _old_keyword_calls()[op]
    new = call(kernel="torch")
    with pytest.warns(DeprecationWarning, match="backend= is deprecated, use kernel=") as caught:
        old = call(backend="torch")
    assert caught[0].filename == __file__  # attributed to the caller
    for o, n in zip(old if isinstance(old, tuple) else (old,), new if isinstance(new, tuple) else (new,)):
        torch.testing.assert_close(o, n, rtol=0, atol=0)
    with pytest.warns(DeprecationWarning), pytest.raises(InputError, match="^kernel: "):
        call(backend="cuda")  # the old keyword goes through the same check


@pytest.mark.parametrize("op", ["av_similarity", "masked_infonce"])
def test_old_and_new_keyword_together_is_an_input_error(op):
    call = _old_keyword_calls()[op]
    for args, kwargs in [((), dict(kernel="torch", backend="torch")), (("torch",), dict(backend="auto"))]:
        with pytest.raises(InputError, match="^kernel: expected kernel= alone .*received kernel='torch' "
                                             "and backend=") as caught:
            call(*args, **kwargs)
        assert caught.value.argument == "kernel"


def test_old_constant_name_warns_and_is_the_new_one():
    with pytest.warns(DeprecationWarning, match="BACKENDS is deprecated, use KERNELS"):
        assert K.BACKENDS is K.KERNELS == ("auto", "triton", "torch")
    with pytest.raises(AttributeError):
        K.no_such_name


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: SHORT[d])
def test_masked_infonce_gpu_tile_sets_match_reference(dtype, device, bench_kernels):
    """Every tile set the GPU check times (bench_kernels' sweep), with its GPU block sizes, at
    HW = 196: several blocks of positions, and channel and batch counts that no block size
    divides."""
    B, C, HW = 40, 40, 196
    visual, mask, audio, keep = _infonce_inputs(B, C, HW, dtype, device, "zero-row", 9)
    sets = bench_kernels._sweep_tiles(torch.float32 if dtype == torch.float32
                                      else torch.bfloat16, HW)
    assert "tuned" in sets and ("f16x3" in sets) == (dtype == torch.float32)
    for name, tiles in sets.items():
        op = _tiles_op(lambda visual, tiles=tiles: tiles)
        ref, tri = run_both(lambda v, a, kernel: op(v, mask, a, keep, 0.005, kernel),
                            [visual, audio])
        assert_close(f"{name}: loss", ref[0], tri[0], torch.float32, floor=1.0)
        for what, r, t in zip(["grad visual", "grad audio"], ref[1:], tri[1:]):
            assert_close(f"{name}: {what}", r, t, dtype)
