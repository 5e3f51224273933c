"""Images <-> square patches for patch-wise lossless coding.

An image ``[C, H, W]`` (integer pixels) is cut into ``P x P`` patches in raster order, channel
by channel; each patch becomes one row of ``P * P`` symbols. Patches overlapping the right or
bottom border are padded, and the padded pixels are *marginalized* by the circuit (``mask`` is
False there), so they cost nothing and the decoder needs only ``H``, ``W`` and ``C`` to rebuild
the mask.
"""

from __future__ import annotations

import math

import numpy as np


def patch_grid(height: int, width: int, patch: int) -> tuple[int, int]:
    """Number of patch rows and columns covering an ``height x width`` image."""
    return math.ceil(height / patch), math.ceil(width / patch)


def patch_mask(channels: int, height: int, width: int, patch: int) -> np.ndarray:
    """bool ``[C * rows * cols, P * P]``: True for pixels inside the image."""
    rows, cols = patch_grid(height, width, patch)
    inside = np.zeros((rows * patch, cols * patch), dtype=bool)
    inside[:height, :width] = True
    tiles = inside.reshape(rows, patch, cols, patch).transpose(0, 2, 1, 3).reshape(rows * cols, patch * patch)
    return np.tile(tiles, (channels, 1))


def to_patches(image: np.ndarray, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """``image [C, H, W]`` (ints) -> ``(patches [C * rows * cols, P * P] int64, mask)``."""
    img = np.asarray(image)
    if img.ndim != 3:
        raise ValueError(f"expected an image [C, H, W], got shape {img.shape}")
    c, h, w = img.shape
    rows, cols = patch_grid(h, w, patch)
    padded = np.zeros((c, rows * patch, cols * patch), dtype=np.int64)
    padded[:, :h, :w] = img
    tiles = padded.reshape(c, rows, patch, cols, patch).transpose(0, 1, 3, 2, 4)
    return tiles.reshape(c * rows * cols, patch * patch), patch_mask(c, h, w, patch)


def from_patches(patches: np.ndarray, channels: int, height: int, width: int, patch: int) -> np.ndarray:
    """Inverse of :func:`to_patches`: int64 ``[C, H, W]``."""
    rows, cols = patch_grid(height, width, patch)
    tiles = np.asarray(patches).reshape(channels, rows, cols, patch, patch).transpose(0, 1, 3, 2, 4)
    return tiles.reshape(channels, rows * patch, cols * patch)[:, :height, :width]
