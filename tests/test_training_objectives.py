"""SACL and SSPL objectives against independent restatements of the reference code."""
import math

import pytest
import torch
import torch.nn.functional as F

from avsdk.training.sacl import false_negative_keep, sacl_loss
from avsdk.training.sspl import sspl_loss, sspl_param_groups


def keep_by_loops(embedding, ratio):
    """argsort + scatter of zjsong/SACL main.py, written with Python lists."""
    unit = F.normalize(embedding.double(), dim=1)
    sim = (unit @ unit.t()).tolist()
    batch = len(sim)
    keep = torch.eye(batch, dtype=torch.bool)
    for i, row in enumerate(sim):
        order = sorted(range(batch), key=lambda j: (row[j], j))
        for j in order[: int(ratio * batch)]:
            keep[i, j] = True
    return keep


def sacl_by_reference(v1, v2, a, m1, m2, keep, tau):
    """mask_pos_infonce of zjsong/SACL main.py: [HW, B_v, B_a] matmul, max over HW, -10 fill."""
    batch, channels = v1.shape[:2]
    a_hat = F.normalize(a, p=2, dim=1)
    loss = 0.0
    for v, m in ((v1, m1), (v2, m2)):
        masked = F.normalize(v, p=2, dim=1) * m.unsqueeze(1)  # B x C x H x W
        masked = masked.view(batch, channels, -1).permute(2, 0, 1)  # HW x B x C
        sim = torch.matmul(masked, a_hat.t()).max(dim=0).values  # B x B
        sim = sim.masked_fill(~keep, -10.0)
        loss = loss + F.cross_entropy(sim / tau, torch.arange(batch))
    return loss


def test_keep_hand_case():
    # clips 0,1 are one class, 2,3 another: with B=4 and ratio 0.5 the int(0.5*4)=2 least
    # similar clips stay, so each anchor drops its same-class clip (the false negative)
    emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert false_negative_keep(emb).all()  # ratio 0.75: the 3 least similar are all others
    keep = false_negative_keep(emb, ratio=0.5)
    expected = torch.tensor(
        [[1, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 1]], dtype=torch.bool
    )
    assert torch.equal(keep, expected)


@pytest.mark.parametrize("batch,ratio", [(1, 0.75), (5, 0.75), (8, 0.5), (13, 0.75), (7, 0.0), (6, 1.0)])
def test_keep_matches_loops(batch, ratio):
    emb = torch.randn(batch, 16, generator=torch.Generator().manual_seed(batch))
    assert torch.equal(false_negative_keep(emb, ratio), keep_by_loops(emb, ratio))


def test_keep_rejects_bad_input():
    with pytest.raises(ValueError, match="embedding"):
        false_negative_keep(torch.randn(4))
    with pytest.raises(ValueError, match="ratio"):
        false_negative_keep(torch.randn(4, 3), ratio=1.5)


@pytest.mark.parametrize("remove", [True, False], ids=["fn-removed", "plain"])
@pytest.mark.parametrize("batch,channels,hw", [(4, 8, (3, 3)), (7, 33, (5, 4)), (1, 5, (2, 2))])
def test_sacl_loss_matches_reference(remove, batch, channels, hw):
    g = torch.Generator().manual_seed(batch * 100 + channels)
    v1 = torch.randn(batch, channels, *hw, generator=g)
    v2 = torch.randn(batch, channels, *hw, generator=g)
    a = torch.randn(batch, channels, generator=g)
    m1 = (torch.rand(batch, *hw, generator=g) > 0.5).float()
    m2 = (torch.rand(batch, *hw, generator=g) > 0.5).float()
    m1[0] = 0  # an all-zero mask gives the row logits 0
    keep = false_negative_keep(torch.randn(batch, 12, generator=g)) if remove else None
    ref_keep = keep if remove else torch.ones(batch, batch, dtype=torch.bool)
    ref = sacl_by_reference(v1, v2, a, m1, m2, ref_keep, 0.005)
    got = sacl_loss(v1, v2, a, m1, m2, keep, kernel="torch")
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [2, 6, 9])
def test_sacl_closed_form(batch):
    # every visual position and every audio vector identical: all logits equal 1, so each view
    # contributes mean_i log(#kept_i) (removed pairs sit at -10/tau and vanish)
    v = torch.ones(batch, 4, 2, 2)
    a = torch.ones(batch, 4)
    m = torch.ones(batch, 2, 2)
    plain = sacl_loss(v, v, a, m, m, None, kernel="torch")
    assert plain.item() == pytest.approx(2 * math.log(batch), rel=1e-5)
    keep = false_negative_keep(torch.randn(batch, 3, generator=torch.Generator().manual_seed(0)))
    removed = sacl_loss(v, v, a, m, m, keep, kernel="torch")
    expected = 2 * keep.sum(dim=1).double().log().mean().item()
    assert removed.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_sacl_aligned_pairs_give_near_zero_loss():
    # each clip's features point exactly at its own (orthogonal) audio vector
    batch = 5
    a = torch.eye(batch, 8)[:batch]
    v = a[:, :, None, None].expand(batch, 8, 3, 3).clone()
    m = torch.ones(batch, 3, 3)
    assert sacl_loss(v, v, a, m, m, kernel="torch").item() < 1e-6


def test_sacl_loss_old_backend_keyword_warns_and_gives_the_same_result():
    from avsdk.errors import InputError

    v = torch.randn(3, 4, 2, 2, generator=torch.Generator().manual_seed(1))
    a, m = torch.randn(3, 4), torch.ones(3, 2, 2)
    new = sacl_loss(v, v, a, m, m, kernel="torch")
    with pytest.warns(DeprecationWarning, match="sacl_loss: backend= is deprecated, use kernel="):
        old = sacl_loss(v, v, a, m, m, backend="torch")
    assert old.item() == new.item()
    with pytest.raises(InputError, match="^kernel: expected kernel= alone") as caught:
        sacl_loss(v, v, a, m, m, kernel="torch", backend="torch")
    assert caught.value.argument == "kernel"


def test_sacl_loss_gradcheck_fp64():
    g = torch.Generator().manual_seed(3)
    v1 = torch.randn(3, 4, 2, 2, dtype=torch.float64, generator=g, requires_grad=True)
    v2 = torch.randn(3, 4, 2, 2, dtype=torch.float64, generator=g, requires_grad=True)
    a = torch.randn(3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    m = torch.ones(3, 2, 2, dtype=torch.float64)
    keep = torch.tensor([[1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=torch.bool)
    # a large tau keeps the softmax away from saturation so finite differences are meaningful
    fn = lambda v1, v2, a: sacl_by_reference(v1, v2, a, m, m, keep, 0.5)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (v1, v2, a))
    got = lambda v1, v2, a: sacl_loss(v1, v2, a, m, m, keep, tau=0.5, kernel="torch")  # noqa: E731
    assert torch.autograd.gradcheck(got, (v1, v2, a))
    grads = torch.autograd.grad(got(v1, v2, a), (v1, v2, a))
    refs = torch.autograd.grad(fn(v1, v2, a), (v1, v2, a))
    for g_got, g_ref in zip(grads, refs):
        torch.testing.assert_close(g_got.double(), g_ref, rtol=1e-4, atol=1e-6)


def test_sacl_rejects_bad_shapes():
    v = torch.randn(2, 3, 2, 2)
    with pytest.raises(ValueError, match="audio"):
        sacl_loss(v, v, torch.randn(2, 4), torch.ones(2, 2, 2), torch.ones(2, 2, 2))
    with pytest.raises(ValueError, match="keep"):
        sacl_loss(v, v, torch.randn(2, 3), torch.ones(2, 2, 2), torch.ones(2, 2, 2), torch.ones(3, 3, dtype=torch.bool))


def simsiam_by_reference(p1, p2, z1, z2):
    neg = lambda p, z: -F.cosine_similarity(p, z, dim=1).mean()  # noqa: E731
    return (neg(p1, z2.detach()) + neg(p2, z1.detach())) * 0.5


def test_sspl_loss_matches_reference_and_closed_form():
    g = torch.Generator().manual_seed(0)
    p1, p2, z1, z2 = (torch.randn(6, 10, generator=g) for _ in range(4))
    torch.testing.assert_close(sspl_loss(p1, p2, z1, z2), simsiam_by_reference(p1, p2, z1, z2))
    assert sspl_loss(z2, z1, z1, z2).item() == pytest.approx(-1.0)  # aligned predictions
    assert sspl_loss(z2, z1, -z1, -z2).item() == pytest.approx(1.0)


def test_sspl_loss_stops_gradient_into_targets():
    z1 = torch.randn(4, 6, requires_grad=True)
    z2 = torch.randn(4, 6, requires_grad=True)
    p1, p2 = z1 * 2, z2 * 3  # predictions depend on z; targets must not pass gradient
    sspl_loss(p1, p2, z1, z2).backward()
    z1b, z2b = z1.detach().clone().requires_grad_(), z2.detach().clone().requires_grad_()
    simsiam_by_reference(z1b * 2, z2b * 3, z1b, z2b).backward()
    torch.testing.assert_close(z1.grad, z1b.grad)


def test_sspl_loss_gradcheck_fp64():
    g = torch.Generator().manual_seed(2)
    p1, p2 = (torch.randn(3, 5, dtype=torch.float64, generator=g, requires_grad=True) for _ in range(2))
    z1, z2 = (torch.randn(3, 5, dtype=torch.float64, generator=g) for _ in range(2))
    assert torch.autograd.gradcheck(lambda p1, p2: sspl_loss(p1, p2, z1, z2), (p1, p2))


def test_sspl_param_groups_lrs_and_rates_without_decay():
    class PCM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 2, 1)
            self.a0 = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(2))])
            self.b0 = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(2))])

    head, audio, pcm = torch.nn.Linear(3, 3), torch.nn.Linear(2, 2), PCM()
    groups = sspl_param_groups(audio, head, pcm)
    assert [g["lr"] for g in groups] == [2e-5, 2e-5, 2e-5, 5e-5]
    assert [len(g["params"]) for g in groups] == [2, 2, 2, 2]
    assert groups[2].get("weight_decay") == 0.0 and "weight_decay" not in groups[1]
    optimizer = torch.optim.AdamW(groups, weight_decay=1e-4)
    assert optimizer.param_groups[1]["weight_decay"] == 1e-4
