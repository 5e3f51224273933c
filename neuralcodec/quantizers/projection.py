"""Linear projections between the latent (``D`` channels) and a quantizer's own space (``d``).

``linear_fp32`` works on rows ``[N, D]``. ``project_in`` / ``project_out`` work straight on the
channels-first latent with batched matmuls, so a low-dimensional quantizer (FSQ, factorised
codes) never transposes the big ``[B, D, ...]`` tensor: no copy in, a contiguous ``[B, D, ...]``
out, and contiguous gradients back. All in fp32 whatever the module or autocast dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def linear_fp32(x: Tensor, layer: nn.Linear | None) -> Tensor:
    """Apply ``layer`` to rows ``[N, in]`` in fp32 (identity when ``layer`` is None)."""
    if layer is None:
        return x
    bias = None if layer.bias is None else layer.bias.float()
    return F.linear(x, layer.weight.float(), bias)


def project_in(z: Tensor, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, tuple[int, ...]]:
    """``z`` ``[B, D, *S]`` -> rows ``[B * prod(S), d]`` of ``weight @ z + bias`` (fp32), plus ``(B, *S)``."""
    lead = (z.shape[0], *z.shape[2:])
    flat = z.reshape(z.shape[0], z.shape[1], -1).float()  # [B, D, P], a view for contiguous z
    b, _, p = flat.shape
    w = weight.float().unsqueeze(0).expand(b, -1, -1)
    if bias is None:
        out = torch.bmm(w, flat)
    else:
        out = torch.baddbmm(bias.float().view(1, -1, 1).expand(b, -1, p), w, flat)
    return out.transpose(1, 2).reshape(-1, weight.shape[0]), lead  # [N, d] (small copy)


def project_out(rows: Tensor, weight: Tensor, bias: Tensor | None, lead: tuple[int, ...]) -> Tensor:
    """Rows ``[N, d]`` -> contiguous ``[B, D, *S]`` of ``weight @ rows^T + bias`` (fp32)."""
    b = lead[0]
    v = rows.reshape(b, -1, rows.shape[1]).transpose(1, 2)  # [B, d, P] view
    p = v.shape[2]
    w = weight.float().unsqueeze(0).expand(b, -1, -1)
    if bias is None:
        out = torch.bmm(w, v)
    else:
        out = torch.baddbmm(bias.float().view(1, -1, 1).expand(b, -1, p), w, v)
    return out.reshape(b, weight.shape[0], *lead[1:])
