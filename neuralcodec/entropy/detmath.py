"""Deterministic elementary functions for building parametric tables (numpy float64).

Library ``exp``/``erfc`` may differ in the last bit between CPUs (SIMD variants) and library
versions, which would make two machines build different integer tables. These versions use only
IEEE-754 ``+ - * /``, ``rint`` and ``ldexp`` (each correctly rounded or exact), element-wise and in
a fixed order, so every machine computes the same bits. Accuracy (~1e-15 relative for ``exp``,
~1.2e-7 relative for ``erfc``) is far below what 24-bit tables resolve.
"""

from __future__ import annotations

import math

import numpy as np

# Cody-Waite split of ln 2: the high part has trailing zero bits so that k * _LN2_HI is exact.
_LN2_HI = float.fromhex("0x1.62e42fee00000p-1")
_LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")
_INV_LN2 = float.fromhex("0x1.71547652b82fep+0")
_TAYLOR = [1.0 / math.factorial(n) for n in range(14)]
# Chebyshev-fitted exponent of erfc (Numerical Recipes' ``erfcc``; fractional error < 1.2e-7).
_ERFC_COEFFS = (
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
    0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277,
)  # fmt: skip
_INV_SQRT2 = float.fromhex("0x1.6a09e667f3bcdp-1")


def exp(x: np.ndarray) -> np.ndarray:
    """``e**x`` for float64 ``x`` (range reduction by ln 2, degree-13 Taylor polynomial)."""
    x = np.clip(np.asarray(x, dtype=np.float64), -745.0, 709.0)
    k = np.rint(x * _INV_LN2)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = np.full_like(r, _TAYLOR[13])
    for c in reversed(_TAYLOR[:13]):
        p = p * r + c
    return np.ldexp(p, k.astype(np.int64))


def erfc_nonneg(u: np.ndarray) -> np.ndarray:
    """Complementary error function for ``u >= 0``."""
    u = np.asarray(u, dtype=np.float64)
    t = 1.0 / (1.0 + 0.5 * u)
    poly = np.full_like(t, _ERFC_COEFFS[-1])
    for c in reversed(_ERFC_COEFFS[:-1]):
        poly = poly * t + c
    return t * exp(-u * u + poly)


def survival(family: str, x: np.ndarray) -> np.ndarray:
    """Upper tail ``P(X > x)`` of the standardized ``family`` for ``x >= 0``.

    Standardization: Gaussian with unit standard deviation, Laplace with unit diversity ``b``,
    logistic with unit scale ``s``.
    """
    x = np.asarray(x, dtype=np.float64)
    if family == "gaussian":
        return 0.5 * erfc_nonneg(x * _INV_SQRT2)
    if family == "laplace":
        return 0.5 * exp(-x)
    if family == "logistic":
        e = exp(-x)
        return e / (1.0 + e)
    raise ValueError(f"unknown family {family!r}")


def interval_mass(family: str, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``P(lo < X <= hi)`` for the standardized symmetric ``family`` (``lo <= hi``, float64).

    Uses tail differences on the side away from zero so that small masses keep their
    relative precision.
    """
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    s = lambda v: survival(family, v)  # noqa: E731
    right = s(np.maximum(lo, 0.0)) - s(np.maximum(hi, 0.0))  # valid where lo >= 0
    left = s(np.maximum(-hi, 0.0)) - s(np.maximum(-lo, 0.0))  # valid where hi <= 0
    middle = 1.0 - s(np.maximum(-lo, 0.0)) - s(np.maximum(hi, 0.0))  # lo < 0 < hi
    return np.where(lo >= 0.0, right, np.where(hi <= 0.0, left, middle))


def tail_quantile(family: str, tail_mass: float) -> float:
    """Standardized ``x`` with ``P(X > x) <= tail_mass / 2`` (a bound, found by bisection)."""
    lo, hi = 0.0, 1.0
    while survival(family, np.array(hi)) > tail_mass / 2:
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if survival(family, np.array(mid)) > tail_mass / 2:
            lo = mid
        else:
            hi = mid
    return hi
