"""Gradient estimators that carry gradients from a quantized value back to its input.

Both estimators return exactly ``q`` in the forward pass (not ``z + (q - z).detach()``, which
can differ from ``q`` in the last bit), so training-mode values match ``decode`` bit for bit.

- ``straight_through``: d out / d z = I (van den Oord et al. 2017).
- ``rotation_trick``: out = lambda * R z with R the rotation taking z/|z| to q/|q| and
  lambda = |q| / |z|, both treated as constants (Fifty et al. 2024, "Restructuring Vector
  Quantization with the Rotation Trick"). With R = I - 2 w w^T + 2 v u^T, u = z/|z|,
  v = q/|q|, w = (u + v)/|u + v|, the input gradient is lambda * R^T g, computed here in
  closed form in the backward pass, so the forward pass costs nothing.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor
from torch.autograd import Function

Estimator = Literal["ste", "rotation"]
ESTIMATORS: tuple[str, ...] = ("ste", "rotation")
_EPS = 1e-8


class _StraightThrough(Function):
    @staticmethod
    def forward(ctx: Any, z: Tensor, q: Tensor) -> Tensor:
        return q.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


class _RotationTrick(Function):
    @staticmethod
    def forward(ctx: Any, z: Tensor, q: Tensor) -> Tensor:
        ctx.save_for_backward(z, q)
        return q.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        z, q = ctx.saved_tensors
        g = grad.float()
        z_norm = z.norm(dim=-1, keepdim=True).clamp_min(_EPS)
        q_norm = q.norm(dim=-1, keepdim=True)
        u = z / z_norm
        v = q / q_norm.clamp_min(_EPS)
        w = u + v
        w = w / w.norm(dim=-1, keepdim=True).clamp_min(_EPS)
        wg = (w * g).sum(-1, keepdim=True)
        vg = (v * g).sum(-1, keepdim=True)
        grad_z = (q_norm / z_norm) * (g - 2 * w * wg + 2 * u * vg)
        return grad_z.to(grad.dtype), None


def straight_through(z: Tensor, q: Tensor) -> Tensor:
    """Value ``q``, gradient passed unchanged to ``z`` (rows ``[N, d]``)."""
    return _StraightThrough.apply(z, q.detach())


def rotation_trick(z: Tensor, q: Tensor) -> Tensor:
    """Value ``q``, gradient ``lambda R^T g`` to ``z`` (rows ``[N, d]``; see module docstring)."""
    return _RotationTrick.apply(z, q.detach())


def apply_estimator(kind: str, z: Tensor, q: Tensor) -> Tensor:
    """Route gradients from ``q`` to ``z`` with estimator ``kind``; plain ``q`` if no grad is needed."""
    if not (torch.is_grad_enabled() and z.requires_grad):
        return q.detach()
    if kind == "ste":
        return straight_through(z, q)
    if kind == "rotation":
        return rotation_trick(z, q)
    raise ValueError(f"unknown gradient estimator {kind!r}; expected one of {ESTIMATORS}")
