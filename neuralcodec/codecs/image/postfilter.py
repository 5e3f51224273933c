"""Per-image adaptive post-filter: a linear filter fitted by the encoder and sent in the file.

A learned synthesis leaves errors that are linear in its own output: colour casts and offsets on
smooth or saturated regions, a little blur or ringing. For one image, the encoder fits, by least
squares against the original, for each output channel ``o``

    out_o[i, j] = base_o[i, j] + sum_{c, dy, dx} w[o, c, dy, dx] * x_hat_c[i + dy - r, j + dx - r] + b_o

over the three reconstructed channels ``x_hat [3, H, W]`` (replicate padding, ``r = k // 2``;
``base``: ``x_hat_o`` for RGB, the channel mean for grayscale). It tries ``k = 1`` (a colour matrix
and offset), 3 and 5 and keeps the one, or none, with the lowest cost ``bits / pixels + lambda(q)
* 255^2 * MSE``: the objective the codec was trained on, with the filter's own bits counted, so
small images keep no filter. The weights travel as float16 *deltas* from the identity (they are
small, so float16 keeps their precision); the decoder only convolves. This is the decoder-side
Wiener / adaptive-loop filter of classical codecs, applied to a learned codec's output.

One Gram matrix of the 5x5 features serves all three sizes (the 1x1 and 3x3 features are subsets
of it), accumulated over row blocks so memory stays bounded on large images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from neuralcodec.errors import BitstreamError

#: Filter sizes the encoder tries and the decoder accepts (odd; 1 = a colour matrix and offset).
KERNEL_SIZES = (1, 3, 5)
#: Bits the file spends on a filter beyond its weights: the ``filter`` metadata entry and chunk framing.
OVERHEAD_BITS = 8 * 16
#: Pixels per row block while accumulating the Gram matrix (bounds memory: 76 x this many float64).
_BLOCK_PIXELS = 1 << 16
#: Ridge term, relative to the Gram matrix's mean diagonal (flat images make it singular).
_RIDGE = 1e-7


@dataclass(frozen=True)
class PostFilter:
    """``weight [C, 3, k, k]`` (deltas from the identity) and ``bias [C]``, float32 holding float16 values."""

    weight: Tensor
    bias: Tensor

    @property
    def kernel(self) -> int:
        return int(self.weight.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.weight.shape[0])

    @staticmethod
    def num_values(kernel: int, channels: int) -> int:
        return channels * (3 * kernel * kernel + 1)

    @property
    def bits(self) -> int:
        """Bits this filter adds to the file (weights, metadata entry, chunk framing)."""
        return 16 * self.num_values(self.kernel, self.channels) + OVERHEAD_BITS

    def to_bytes(self) -> bytes:
        values = torch.cat([self.weight.reshape(-1), self.bias.reshape(-1)]).numpy()
        return values.astype("<f2").tobytes()

    @classmethod
    def from_bytes(cls, payload: bytes, kernel: int, channels: int) -> "PostFilter":
        """Parse a filter chunk; raises :class:`BitstreamError` on a wrong length or non-finite values."""
        if kernel not in KERNEL_SIZES:
            raise BitstreamError(f"image stream post-filter size {kernel} is not one of {KERNEL_SIZES}")
        count = cls.num_values(kernel, channels)
        if len(payload) != 2 * count:
            raise BitstreamError(f"image stream post-filter chunk has {len(payload)} bytes; expected {2 * count} "
                                 f"({count} float16 values for a {kernel}x{kernel} filter, {channels} channel(s))")
        values = torch.from_numpy(np.frombuffer(payload, dtype="<f2").astype(np.float32))
        if not bool(torch.isfinite(values).all()):
            raise BitstreamError("image stream post-filter holds non-finite values")
        split = channels * 3 * kernel * kernel
        return cls(values[:split].reshape(channels, 3, kernel, kernel), values[split:].clone())

    def apply(self, decoded: Tensor) -> Tensor:
        """Filtered image ``[C, H, W]`` in [0, 1] from the reconstruction ``decoded [3, H, W]`` in [0, 1]."""
        r = self.kernel // 2
        x = decoded.float()[None]
        padded = F.pad(x, (r, r, r, r), mode="replicate") if r else x
        delta = F.conv2d(padded, self.weight.to(x.device), self.bias.to(x.device))[0]
        return (_base(decoded.float(), self.channels) + delta).clamp(0.0, 1.0)


def _base(decoded: Tensor, channels: int) -> Tensor:
    return decoded if channels == 3 else decoded.mean(dim=0, keepdim=True)


def _normal_equations(decoded: Tensor, residual: Tensor) -> tuple[Tensor, Tensor]:
    """Gram matrix ``[76, 76]`` and right-hand sides ``[76, C]`` (float64) of the 5x5 features of
    ``decoded [3, H, W]`` (channel, row, column order, then a constant) against ``residual [C, H, W]``."""
    r = max(KERNEL_SIZES) // 2
    _, height, width = decoded.shape
    padded = F.pad(decoded.double()[None], (r, r, r, r), mode="replicate")[0]
    n = 3 * (2 * r + 1) ** 2 + 1
    gram = torch.zeros(n, n, dtype=torch.float64)
    rhs = torch.zeros(n, residual.shape[0], dtype=torch.float64)
    rows = max(1, _BLOCK_PIXELS // width)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        block = padded[:, top:bottom + 2 * r]
        feats = F.unfold(block[None], kernel_size=2 * r + 1)[0]              # [75, rows * W]
        feats = torch.cat([feats, feats.new_ones(1, feats.shape[1])])       # [76, rows * W]
        gram += feats @ feats.T
        rhs += feats @ residual[:, top:bottom].double().reshape(residual.shape[0], -1).T
    return gram, rhs


def _subset(kernel: int) -> list[int]:
    """Indices of the ``kernel x kernel`` features (and the constant) among the 5x5 ones."""
    big = max(KERNEL_SIZES)
    off = (big - kernel) // 2
    idx = [c * big * big + (dy + off) * big + (dx + off)
           for c in range(3) for dy in range(kernel) for dx in range(kernel)]
    return idx + [3 * big * big]


def fit_postfilter(decoded: Tensor, target: Tensor, lam: float) -> PostFilter | None:
    """The filter (or ``None``) minimising ``bits / pixels + lam * 255^2 * MSE`` for one image.

    ``decoded [3, H, W]``: the decoder's reconstruction, clamped to [0, 1]; ``target [C, H, W]``
    (C = 3, or 1 for grayscale): the original; ``lam``: the rate-distortion weight of the quality
    the image was coded at.
    """
    channels, height, width = target.shape
    if decoded.shape != (3, height, width) or channels not in (1, 3):
        raise ValueError(f"decoded {tuple(decoded.shape)} does not fit target {tuple(target.shape)}")
    decoded, target = decoded.float().cpu(), target.float().cpu()
    pixels = height * width
    base = _base(decoded, channels)

    def cost(image: Tensor, bits: int) -> float:
        return bits / pixels + lam * 255.0**2 * float((image - target).pow(2).mean())

    best, best_cost = None, cost(base.clamp(0.0, 1.0), 0)
    gram, rhs = _normal_equations(decoded, target - base)
    for kernel in KERNEL_SIZES:
        idx = _subset(kernel)
        g = gram[idx][:, idx]
        ridge = _RIDGE * float(g.diagonal().mean()) + 1e-12
        solution = torch.linalg.solve(g + ridge * torch.eye(len(idx), dtype=g.dtype), rhs[idx])  # [n, C]
        values = solution.T.float().half().float()                                             # float16 on the wire
        if not bool(torch.isfinite(values).all()):
            continue
        candidate = PostFilter(values[:, :-1].reshape(channels, 3, kernel, kernel).contiguous(),
                               values[:, -1].contiguous())
        c = cost(candidate.apply(decoded), candidate.bits)
        if c < best_cost:
            best, best_cost = candidate, c
    return best


__all__ = ["KERNEL_SIZES", "PostFilter", "fit_postfilter"]
