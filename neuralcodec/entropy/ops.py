"""Small differentiable helpers shared by the entropy models' training paths."""

from __future__ import annotations

import torch


class _LowerBound(torch.autograd.Function):
    """``max(x, bound)`` whose gradient still flows where it would push ``x`` back above ``bound``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        passes = (x >= ctx.bound) | (grad < 0)
        return grad * passes.to(grad.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """Clamp likelihoods (or scales) from below without killing the gradient that lifts them."""
    return _LowerBound.apply(x, bound)


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` in the forward pass, identity in the backward pass."""
    return x + (torch.round(x) - x).detach()


def uniform_noise(x: torch.Tensor) -> torch.Tensor:
    """``x + U(-1/2, 1/2)``: the additive-noise proxy for rounding used in training."""
    return x + torch.empty_like(x).uniform_(-0.5, 0.5)


def quantize_for_training(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Training-time proxy for ``round(x)``: ``"noise"`` (additive uniform) or ``"ste"``."""
    if mode == "noise":
        return uniform_noise(x)
    if mode == "ste":
        return round_ste(x)
    raise ValueError(f"training quantization must be 'noise' or 'ste', got {mode!r}")
