"""Quantized Gaussian / Laplace / logistic families coded through precomputed integer tables.

Instead of building a fixed-point model per symbol (constriction's ``QuantizedGaussian``), the
parameters are snapped to a fixed grid and every grid point owns one integer frequency table:

* scales snap to a log-spaced :class:`ScaleGrid` (nearest point in log space);
* means snap to ``1 / mean_bins``: ``round(mean * mean_bins) = center * mean_bins + fraction``,
  the symbol is coded as ``x - center`` with the table of ``(scale index, fraction)``.

Symbols are grouped by table and each group is coded with one shared categorical model
(:meth:`neuralcodec.entropy.coder.StackEncoder.indexed`), which is both exact and fast. Tables
are built with :mod:`neuralcodec.entropy.detmath`, so every machine builds the same integers.
Values beyond a table's support (``tail_mass`` total) are escaped and coded exactly.

"scale" is the family's natural scale: the standard deviation of the Gaussian, the diversity
``b`` of the Laplace, the scale ``s`` of the logistic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from neuralcodec.entropy import detmath
from neuralcodec.entropy.coder import StackDecoder, StackEncoder
from neuralcodec.entropy.tables import TableBank, freqs_from_pmf

FAMILIES = ("gaussian", "laplace", "logistic")


def check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return family


@dataclass(frozen=True)
class ScaleGrid:
    """``num_scales`` log-spaced scales from ``scale_min`` to ~``scale_max``.

    The ratio between neighbours is rounded to 12 significant digits and the grid is built by
    repeated multiplication, so it is the same on every machine.
    """

    scale_min: float = 0.11
    scale_max: float = 256.0
    num_scales: int = 64

    def __post_init__(self) -> None:
        if not (0 < self.scale_min < self.scale_max) or self.num_scales < 2:
            raise ValueError("need 0 < scale_min < scale_max and num_scales >= 2")

    @cached_property
    def values(self) -> np.ndarray:
        """float64 ``[num_scales]``: the representative scale of each index."""
        ratio = float(f"{(self.scale_max / self.scale_min) ** (1.0 / (self.num_scales - 1)):.12g}")
        out, v = [], float(self.scale_min)
        for _ in range(self.num_scales):
            out.append(v)
            v *= ratio
        return np.array(out, dtype=np.float64)

    @cached_property
    def boundaries(self) -> np.ndarray:
        """float64 ``[num_scales - 1]``: geometric midpoints between neighbouring scales."""
        v = self.values
        return np.array([math.sqrt(a * b) for a, b in zip(v[:-1], v[1:], strict=True)], dtype=np.float64)

    def index(self, scales: np.ndarray) -> np.ndarray:
        """Nearest grid index (log space) of each scale; clamps to the grid's ends. int64."""
        s = np.asarray(scales)
        if s.dtype not in (np.float32, np.float64):
            s = s.astype(np.float64)
        if not np.all(np.isfinite(s)):
            raise ValueError("scales must be finite")
        # A logarithm (in the input's precision) guesses the index; comparisons against the exact
        # float64 boundaries then fix it, so the result equals searchsorted(boundaries, s, "right").
        ext = self._extended_boundaries
        tiny = np.finfo(s.dtype).tiny
        guess = np.log(np.maximum(s, tiny))
        guess -= self._log_v0
        guess *= self._inv_log_ratio
        idx = np.clip(np.rint(guess), 0, self.num_scales - 1).astype(np.int64)
        bad = np.flatnonzero((s >= ext[idx + 1]) | (s < ext[idx]))  # rare: guesses next to a boundary
        if bad.size:
            idx[bad] = np.searchsorted(self.boundaries, s[bad].astype(np.float64), side="right")
        return idx

    @cached_property
    def _extended_boundaries(self) -> np.ndarray:
        return np.concatenate([[-np.inf], self.boundaries, [np.inf]])

    @cached_property
    def _log_v0(self) -> float:
        return math.log(self.values[0])

    @cached_property
    def _inv_log_ratio(self) -> float:
        return (self.num_scales - 1) / math.log(self.values[-1] / self.values[0])

    def index_torch(self, scales: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`index` for a tensor (compares in float64)."""
        b = torch.as_tensor(self.boundaries, dtype=torch.float64, device=scales.device)
        return torch.bucketize(scales.detach().to(torch.float64), b, right=True)

    def log_boundaries_fixed(self, frac_bits: int) -> np.ndarray:
        """int64 ``round(log(boundary) * 2**frac_bits)``: boundaries for fixed-point log-scales."""
        return np.array([round(math.log(b) * (1 << frac_bits)) for b in self.boundaries], dtype=np.int64)


def build_bank(
    family: str, grid: ScaleGrid, *, mean_bins: int = 1, tail_mass: float = 1e-9
) -> TableBank:
    """Integer tables for every ``(scale index, mean fraction)``; table id ``scale * mean_bins + fraction``."""
    check_family(family)
    if mean_bins < 1:
        raise ValueError("mean_bins must be >= 1")
    q = detmath.tail_quantile(family, tail_mass)
    rows, v_min = [], []
    for scale in grid.values:
        radius = max(1, int(math.ceil(scale * q)))
        hi_extra = 1 if mean_bins > 1 else 0
        d = np.arange(-radius, radius + hi_extra + 1, dtype=np.float64)
        for f in range(mean_bins):
            phi = f / mean_bins
            lo_edge = (d - 0.5 - phi) / scale
            hi_edge = (d + 0.5 - phi) / scale
            core = detmath.interval_mass(family, lo_edge, hi_edge)
            tail_lo = detmath.survival(family, np.array([-lo_edge[0]]))
            tail_hi = detmath.survival(family, np.array([hi_edge[-1]]))
            rows.append(freqs_from_pmf(np.concatenate([tail_lo, core, tail_hi])))
            v_min.append(-radius)
    return TableBank.from_rows(rows, np.array(v_min, dtype=np.int64))


def split_means(means: np.ndarray, mean_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``round(mean * mean_bins) = center * mean_bins + fraction``: int64 ``(center, fraction)``."""
    m = np.asarray(means, dtype=np.float64)
    if not np.all(np.isfinite(m)) or (m.size and np.abs(m).max() * mean_bins > 2.0**52):
        raise ValueError("means must be finite and below 2**52 / mean_bins in magnitude")
    qm = np.rint(m * mean_bins).astype(np.int64)
    return np.floor_divide(qm, mean_bins), np.remainder(qm, mean_bins)


class QuantizedFamily:
    """Exact, vectorized coding of integer symbols under a quantized location-scale family.

    ``P(x) = P(x - 1/2 < X <= x + 1/2)`` with ``X ~ family(mean, scale)``, where ``mean`` and
    ``scale`` are snapped as described in the module docstring. Symbols, means and scales are
    arrays of one shape (any), coded in one stream.
    """

    def __init__(
        self,
        family: str = "gaussian",
        *,
        scale_min: float = 0.11,
        scale_max: float = 256.0,
        num_scales: int = 64,
        mean_bins: int = 1,
        tail_mass: float = 1e-9,
    ) -> None:
        self.family = check_family(family)
        self.grid = ScaleGrid(scale_min, scale_max, num_scales)
        self.mean_bins = int(mean_bins)
        self.tail_mass = float(tail_mass)

    @cached_property
    def bank(self) -> TableBank:
        return build_bank(self.family, self.grid, mean_bins=self.mean_bins, tail_mass=self.tail_mass)

    def table_index(self, scales: np.ndarray, means: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(table index, integer center)`` per symbol, both int64 and flat."""
        s_idx = self.grid.index(np.asarray(scales).reshape(-1))
        if means is None:
            return s_idx * self.mean_bins, np.zeros_like(s_idx)
        center, frac = split_means(np.asarray(means).reshape(-1), self.mean_bins)
        if center.size != s_idx.size:
            raise ValueError("means and scales must have the same number of elements")
        return s_idx * self.mean_bins + frac, center

    def encode_into(self, enc: StackEncoder, symbols: np.ndarray, scales: np.ndarray, means=None) -> None:
        index, center = self.table_index(scales, means)
        s = np.asarray(symbols).reshape(-1).astype(np.int64)
        if s.size != index.size:
            raise ValueError("symbols and scales must have the same number of elements")
        enc.indexed(s - center, index, self.bank)

    def decode_from(self, dec: StackDecoder, scales: np.ndarray, means=None) -> np.ndarray:
        index, center = self.table_index(scales, means)
        out = dec.indexed(index, self.bank) + center
        return out.reshape(np.shape(scales))

    def encode(self, symbols: np.ndarray, scales: np.ndarray, means: np.ndarray | None = None) -> bytes:
        """Compress int ``symbols`` given per-symbol ``scales`` (and optional ``means``)."""
        enc = StackEncoder()
        self.encode_into(enc, symbols, scales, means)
        return enc.finish()

    def decode(self, data: bytes, scales: np.ndarray, means: np.ndarray | None = None) -> np.ndarray:
        """Inverse of :meth:`encode`; returns int64 symbols shaped like ``scales``."""
        dec = StackDecoder(data)
        out = self.decode_from(dec, scales, means)
        dec.finish()
        return out

    def bits(self, symbols: np.ndarray, scales: np.ndarray, means: np.ndarray | None = None) -> np.ndarray:
        """Exact code length (bits) of each symbol under the tables; float64, flat."""
        index, center = self.table_index(scales, means)
        s = np.asarray(symbols).reshape(-1).astype(np.int64)
        return self.bank.symbol_bits(s - center, index)

    def fingerprint(self) -> bytes:
        return self.bank.fingerprint()


# -- training path (torch, differentiable) -----------------------------------------------------
_SQRT1_2 = 1.0 / math.sqrt(2.0)


def standardized_cdf(family: str, x: torch.Tensor) -> torch.Tensor:
    """CDF of the standardized family (see :func:`neuralcodec.entropy.detmath.survival`)."""
    if family == "gaussian":
        return 0.5 * torch.erfc(-x * _SQRT1_2)
    if family == "laplace":
        e = 0.5 * torch.exp(-x.abs())
        return torch.where(x < 0, e, 1.0 - e)
    if family == "logistic":
        return torch.sigmoid(x)
    raise ValueError(f"unknown family {family!r}")


def bin_likelihood(family: str, values: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``P(v - 1/2 < X * scale <= v + 1/2)`` for centred ``values`` (uses the family's symmetry)."""
    v = values.abs()
    upper = standardized_cdf(family, (0.5 - v) / scales)
    lower = standardized_cdf(family, (-0.5 - v) / scales)
    return upper - lower
