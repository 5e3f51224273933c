"""Any image size: pad to the transform's stride before coding, crop back after decoding.

Padding replicates the last row and column (edge padding) rather than adding zeros: a flat
continuation costs almost no bits and does not put an artificial edge next to the picture.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """``(H, W)`` rounded up to multiples of ``multiple``."""
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Edge-pad ``x [B, C, H, W]`` at the bottom and right to multiples of ``multiple``."""
    height, width = x.shape[-2:]
    target_h, target_w = padded_size(height, width, multiple)
    if (target_h, target_w) == (height, width):
        return x
    return F.pad(x, (0, target_w - width, 0, target_h - height), mode="replicate")


def crop_to(x: Tensor, height: int, width: int) -> Tensor:
    """Top-left ``height x width`` window of ``x [..., H, W]`` (inverse of :func:`pad_to_multiple`)."""
    return x[..., :height, :width]


__all__ = ["crop_to", "pad_to_multiple", "padded_size"]
