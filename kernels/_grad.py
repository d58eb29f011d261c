"""First-order gradients from the kernels' backward passes, refused when differentiated again.

A Triton backward computes its gradients outside autograd, so they carry no graph. Under
``create_graph=True`` (a gradient penalty, a Hessian-vector product) a second differentiation
would then silently see them as constants and return a wrong answer. ``first_order`` hands
back the same values, but tied to the tensors they depend on through a node whose backward
raises, so that only a second differentiation fails, and with a message that names the op
and the way out (``kernel="torch"``). Plain ``backward()`` calls skip all of this.
"""
from __future__ import annotations

import torch


class _SecondOrderRefused(torch.autograd.Function):
    @staticmethod
    def forward(ctx, op: str, count: int, *tensors):
        ctx.op = op
        return tuple(t.clone() for t in tensors[:count])

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError(
            f"{ctx.op}: the Triton kernel's gradient cannot be differentiated again (double "
            f"backward, e.g. create_graph=True followed by a gradient of the gradient); "
            f"call it with kernel='torch' for that")


def first_order(op: str, grads, depends_on):
    """``grads`` (a tuple; None entries allowed) unchanged, refusing a second differentiation.

    Call it in a backward with autograd enabled; ``depends_on`` are the tensors the
    gradients are functions of (saved inputs and the incoming gradients).
    """
    if not torch.is_grad_enabled() or not any(
            isinstance(t, torch.Tensor) and t.requires_grad for t in depends_on):
        return grads
    present = [g for g in grads if g is not None]
    wrapped = iter(_SecondOrderRefused.apply(
        op, len(present), *present,
        *(t for t in depends_on if isinstance(t, torch.Tensor) and t.requires_grad)))
    return tuple(None if g is None else next(wrapped) for g in grads)
