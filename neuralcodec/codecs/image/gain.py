"""Variable rate in one model: learned per-quality gain vectors on the latent (Cui et al. 2021).

For quality level ``q`` the encoder scales the latent channel-wise, ``y_q = y * gain[q]``,
before quantization and entropy coding; the decoder undoes it with a separately learned
``inverse_gain[q]`` before synthesis. A large gain means a finer effective quantization step,
i.e. more bits and higher quality. Qualities are continuous: a fractional ``q`` interpolates
the log-gains (and the training weight ``lambda``) of its two neighbouring levels, so a
``--target-bpp`` search can land between the trained levels.

Quality values are 1-based and range over ``[1, num_qualities]``; tensors of qualities are
float ``[B]``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn


def interpolate_levels(table: Tensor, quality: Tensor) -> Tensor:
    """Linear interpolation of ``table [Q, ...]`` at 1-based float ``quality [B]`` -> ``[B, ...]``."""
    levels = table.shape[0]
    pos = (quality.to(table.dtype) - 1.0).clamp(0.0, levels - 1.0)
    lo = pos.floor().long().clamp(max=levels - 1)
    hi = (lo + 1).clamp(max=levels - 1)
    t = (pos - lo.to(pos.dtype)).view(-1, *([1] * (table.dim() - 1)))
    return table[lo] * (1.0 - t) + table[hi] * t


class QualityGain(nn.Module):
    """Per-quality channel gains ``[Q, C]`` and inverse gains ``[Q, C]``, stored as logarithms.

    Initialised log-uniformly from ``1 / spread`` (lowest quality) to ``spread`` (highest), with
    inverse gains the reciprocals, so an untrained model already orders its rates by quality.
    """

    def __init__(self, num_qualities: int, channels: int, spread: float = 3.0) -> None:
        super().__init__()
        if num_qualities < 1:
            raise ValueError("need at least one quality level")
        self.num_qualities = int(num_qualities)
        if num_qualities == 1:
            start = torch.zeros(1)
        else:
            start = torch.linspace(-math.log(spread), math.log(spread), num_qualities)
        self.log_gain = nn.Parameter(start[:, None].repeat(1, channels))
        self.log_inverse_gain = nn.Parameter(-start[:, None].repeat(1, channels))

    def check(self, quality: Tensor) -> Tensor:
        """``quality`` as float ``[B]``; raises ValueError outside ``[1, num_qualities]``."""
        q = torch.as_tensor(quality, dtype=torch.float32).reshape(-1)
        if q.numel() and (not torch.isfinite(q).all() or q.min() < 1 or q.max() > self.num_qualities):
            raise ValueError(f"quality must lie in [1, {self.num_qualities}], got {q.tolist()}")
        return q

    def gain(self, quality: Tensor) -> Tensor:
        """Encoder gains ``[B, C, 1, 1]`` for float ``quality [B]``."""
        return interpolate_levels(self.log_gain, quality).exp()[..., None, None]

    def inverse_gain(self, quality: Tensor) -> Tensor:
        """Decoder inverse gains ``[B, C, 1, 1]`` for float ``quality [B]``."""
        return interpolate_levels(self.log_inverse_gain, quality).exp()[..., None, None]


def interpolate_lambdas(lambdas: Sequence[float], quality: Tensor) -> Tensor:
    """Rate-distortion weights ``[B]`` at float ``quality [B]`` (log-linear between levels)."""
    table = torch.tensor([math.log(v) for v in lambdas], dtype=torch.float32, device=quality.device)
    return interpolate_levels(table, quality).exp()


__all__ = ["QualityGain", "interpolate_lambdas", "interpolate_levels"]
