"""Quantized Gaussian / Laplace / logistic coding through scale-indexed integer tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from entropy_helpers import FLUSH_BYTES

from neuralcodec.entropy import detmath
from neuralcodec.entropy.families import FAMILIES, QuantizedFamily, ScaleGrid, bin_likelihood, split_means


def _sample(rng, family, n, mean_scale):
    scales = np.exp(rng.uniform(math.log(1e-3), math.log(1e4), n))
    means = rng.normal(size=n) * mean_scale
    if family == "gaussian":
        noise = rng.standard_normal(n)
    elif family == "laplace":
        noise = rng.laplace(size=n)
    else:
        noise = rng.logistic(size=n)
    x = np.rint(means + scales * noise).astype(np.int64)
    # extremes: far outside every table, huge means, the smallest and largest scales
    x[:4] = [10**15, -(10**15), 3, -3]
    scales[4:8] = [1e-9, 1e9, 0.0, 1e-30]
    means[8:12] = [1e12, -1e12, 0.5, -0.5]
    x[8:12] = [10**12 + 3, -(10**12), 0, 0]
    return x, scales.astype(np.float32), means.astype(np.float32)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mean_bins", [1, 8])
def test_round_trip_and_size(family, mean_bins):
    rng = np.random.default_rng(hash((family, mean_bins)) % 2**32)
    qf = QuantizedFamily(family, mean_bins=mean_bins)
    x, scales, means = _sample(rng, family, 100_000, 1e3)
    data = qf.encode(x, scales, means)
    out = qf.decode(data, scales, means)
    assert np.array_equal(out, x)
    bits = qf.bits(x, scales, means).sum()
    assert bits / 8 <= len(data) <= bits / 8 * 1.01 + FLUSH_BYTES


def test_tables_close_to_the_continuous_family():
    """Coding cost vs the exact cross-entropy of each symbol under its (unsnapped) parameters."""
    rng = np.random.default_rng(3)
    n = 100_000
    qf = QuantizedFamily("gaussian")
    scales = np.exp(rng.uniform(math.log(0.5), math.log(50), n))
    x = np.rint(scales * rng.standard_normal(n)).astype(np.int64)
    ideal = -np.log2(
        bin_likelihood("gaussian", torch.from_numpy(x).double(), torch.from_numpy(scales)).numpy()
    ).sum()
    coded = qf.bits(x, scales).sum()
    assert abs(coded / ideal - 1) < 0.005


def test_scale_grid_index_matches_searchsorted_at_boundaries():
    g = ScaleGrid()
    b = g.boundaries
    s = np.concatenate([b, np.nextafter(b, 0), np.nextafter(b, np.inf), g.values, [0.0, 1e-300, 1e300]])
    s = np.concatenate([s, np.exp(np.random.default_rng(0).uniform(-12, 12, 10_000))])
    assert np.array_equal(g.index(s), np.searchsorted(b, s, side="right"))
    t = torch.from_numpy(s)
    assert np.array_equal(g.index_torch(t).numpy(), g.index(s))
    assert g.values[0] == 0.11 and abs(g.values[-1] / 256 - 1) < 1e-9
    with pytest.raises(ValueError):
        g.index(np.array([np.nan]))


def test_split_means():
    c, f = split_means(np.array([0.0, 0.49, 0.51, -0.49, -0.51, 2.3]), 1)
    assert c.tolist() == [0, 0, 1, 0, -1, 2] and f.tolist() == [0] * 6
    c, f = split_means(np.array([1.25, -1.25, -0.1, -0.2]), 4)
    assert c.tolist() == [1, -2, 0, -1] and f.tolist() == [1, 3, 0, 3]
    with pytest.raises(ValueError):
        split_means(np.array([np.inf]), 1)


def test_detmath_accuracy():
    x = np.linspace(-700, 700, 20001)
    assert np.max(np.abs(detmath.exp(x) / np.exp(x) - 1)) < 1e-14
    u = np.linspace(0, 25, 2001)
    ref = np.array([math.erfc(v) for v in u])
    assert np.max(np.abs(detmath.erfc_nonneg(u) / ref - 1)) < 2e-7
    lo, hi = np.array([-1.0, 0.5, -3.0]), np.array([1.0, 2.0, -2.0])
    ref = [math.erf(b / math.sqrt(2)) / 2 - math.erf(a / math.sqrt(2)) / 2 for a, b in zip(lo, hi, strict=True)]
    assert np.allclose(detmath.interval_mass("gaussian", lo, hi), ref, rtol=1e-6)
    for fam in FAMILIES:
        q = detmath.tail_quantile(fam, 1e-9)
        assert detmath.survival(fam, np.array(q)) <= 0.5e-9 < detmath.survival(fam, np.array(q * 0.99))


def test_bank_is_reproducible_and_fingerprinted():
    a, b = QuantizedFamily("laplace"), QuantizedFamily("laplace")
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != QuantizedFamily("laplace", num_scales=32).fingerprint()
    assert a.fingerprint() != QuantizedFamily("gaussian").fingerprint()
