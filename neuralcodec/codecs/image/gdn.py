"""Generalized divisive normalization (Balle et al. 2016), the nonlinearity of the image transforms.

``GDN``: ``y_c = x_c / sqrt(beta_c + sum_k gamma_ck x_k^2)``; the inverse (``IGDN``, used in the
synthesis) multiplies by the same factor. ``beta`` and ``gamma`` must stay non-negative (``beta``
positive): they are stored as square roots offset by a tiny pedestal and bounded from below with
a gradient-preserving clamp, the usual reparametrisation that keeps them trainable near zero.

Written here rather than imported from CompressAI: importing ``compressai`` pulls in its dataset
and point-cloud modules, which costs seconds to minutes at every ``codec`` start.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neuralcodec.entropy.ops import lower_bound

#: Offset that keeps the square-root parametrisation differentiable at zero.
_PEDESTAL = 2.0**-36


class GDN(nn.Module):
    """GDN over the channels of ``x [B, C, H, W]`` (``inverse=True``: IGDN)."""

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1) -> None:
        super().__init__()
        self.inverse = bool(inverse)
        self._beta_bound = math.sqrt(beta_min + _PEDESTAL)
        self._gamma_bound = math.sqrt(_PEDESTAL)
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + _PEDESTAL))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels) + _PEDESTAL))

    def effective_parameters(self) -> tuple[Tensor, Tensor]:
        """``(beta [C], gamma [C, C])`` as used in the normalisation."""
        beta = lower_bound(self.beta, self._beta_bound) ** 2 - _PEDESTAL
        gamma = lower_bound(self.gamma, self._gamma_bound) ** 2 - _PEDESTAL
        return beta, gamma

    def forward(self, x: Tensor) -> Tensor:
        beta, gamma = self.effective_parameters()
        norm = F.conv2d(x * x, gamma[:, :, None, None], beta)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)

    def extra_repr(self) -> str:
        return f"{self.beta.numel()}, inverse={self.inverse}"


__all__ = ["GDN"]
