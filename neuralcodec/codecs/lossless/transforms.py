"""Reversible integer transforms of patch rows, applied before the circuit models them.

``"none"``: the pixels themselves. ``"med"``: the prediction residual of each pixel under the
median edge detector of LOCO-I / JPEG-LS, computed *inside the patch* from its causal neighbours
``a`` (left), ``b`` (above) and ``c`` (above-left)::

    pred = min(a, b) if c >= max(a, b) else max(a, b) if c <= min(a, b) else a + b - c

(first row: ``a``; first column: ``b``; first pixel: ``K // 2``), wrapped into ``[-K/2, K/2)``
modulo ``K`` and folded to a symbol in ``[0, K)`` by the zigzag map ``0, -1, 1, -2, 2, ...``
``-> 0, 1, 2, 3, 4, ...``. The circuit then models residuals, whose dependencies (the local
activity of a patch) its hidden states capture well, instead of raw grey levels.

A pixel inside an image has its left, upper and upper-left neighbours inside too (patches are
cropped only at the right and bottom), so the residuals of the observed pixels of a border patch
depend only on observed pixels, and marginalizing the others stays valid. The inverse runs over
the anti-diagonals of the patch (``2 P - 1`` vectorized steps for all rows at once).
"""

from __future__ import annotations

import numpy as np

TRANSFORMS = ("none", "med")


def _check(name: str) -> None:
    if name not in TRANSFORMS:
        raise ValueError(f"unknown patch transform {name!r} (known: {', '.join(TRANSFORMS)})")


def _median_edge(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    return np.where(c >= hi, lo, np.where(c <= lo, hi, a + b - c))


def _fold(residual: np.ndarray, levels: int) -> np.ndarray:
    r = (residual + levels // 2) % levels - levels // 2
    return np.where(r >= 0, 2 * r, -2 * r - 1)


def _unfold(symbol: np.ndarray) -> np.ndarray:
    return np.where(symbol % 2 == 0, symbol // 2, -(symbol + 1) // 2)


def forward(name: str, rows: np.ndarray, patch: int, levels: int) -> np.ndarray:
    """Pixel rows ``[n, P * P]`` (ints in ``[0, K)``) -> symbol rows ``[n, P * P]`` int64 in ``[0, K)``."""
    _check(name)
    x = np.asarray(rows, dtype=np.int64)
    if name == "none":
        return x.copy()
    p = x.reshape(-1, patch, patch)
    pred = np.empty_like(p)
    pred[:, 0, 0] = levels // 2
    pred[:, 0, 1:] = p[:, 0, :-1]
    pred[:, 1:, 0] = p[:, :-1, 0]
    pred[:, 1:, 1:] = _median_edge(p[:, 1:, :-1], p[:, :-1, 1:], p[:, :-1, :-1])
    return _fold(p - pred, levels).reshape(x.shape)


def inverse(name: str, symbols: np.ndarray, patch: int, levels: int) -> np.ndarray:
    """Inverse of :func:`forward`: pixel rows ``[n, P * P]`` int64."""
    _check(name)
    s = np.asarray(symbols, dtype=np.int64)
    if name == "none":
        return s.copy()
    r = _unfold(s.reshape(-1, patch, patch))
    p = np.zeros_like(r)
    for d in range(2 * patch - 1):  # pixels with i + j = d depend only on earlier diagonals
        i = np.arange(max(0, d - patch + 1), min(d, patch - 1) + 1)
        j = d - i
        if d == 0:
            pred = np.full((r.shape[0], 1), levels // 2, dtype=np.int64)
        else:
            left = p[:, i, np.maximum(j - 1, 0)]
            up = p[:, np.maximum(i - 1, 0), j]
            corner = p[:, np.maximum(i - 1, 0), np.maximum(j - 1, 0)]
            pred = np.where(i == 0, left, np.where(j == 0, up, _median_edge(left, up, corner)))
        p[:, i, j] = (pred + r[:, i, j]) % levels
    return p.reshape(s.shape)
