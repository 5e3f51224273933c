"""Per-quality gains: exact at the levels, log-linear in between, range checked."""

from __future__ import annotations

import pytest
import torch

from neuralcodec.codecs.image import QualityGain, interpolate_lambdas


def test_levels_and_interpolation():
    gain = QualityGain(num_qualities=4, channels=3, spread=2.0)
    with torch.no_grad():
        gain.log_gain.copy_(torch.randn(4, 3))
    at_levels = gain.gain(torch.tensor([1.0, 2.0, 3.0, 4.0]))[..., 0, 0]
    assert torch.allclose(at_levels, gain.log_gain.exp())
    half = gain.gain(torch.tensor([2.5]))[0, :, 0, 0]
    assert torch.allclose(half.log(), 0.5 * (gain.log_gain[1] + gain.log_gain[2]), atol=1e-6)
    assert gain.gain(torch.tensor([1.0])).shape == (1, 3, 1, 1)


def test_initial_gains_order_the_rates_and_invert():
    gain = QualityGain(num_qualities=8, channels=5, spread=3.0)
    q = torch.arange(1.0, 9.0)
    g = gain.gain(q)[:, 0, 0, 0]
    assert torch.all(g[1:] > g[:-1]) and torch.isclose(g[0], torch.tensor(1 / 3)) and torch.isclose(g[-1], torch.tensor(3.0))
    assert torch.allclose(gain.gain(q) * gain.inverse_gain(q), torch.ones(8, 5, 1, 1))


def test_quality_range_is_checked():
    gain = QualityGain(num_qualities=8, channels=2)
    for bad in (0.5, 8.01, float("nan")):
        with pytest.raises(ValueError, match="quality"):
            gain.check(torch.tensor([bad]))
    assert gain.check(torch.tensor([1.0, 8.0])).tolist() == [1.0, 8.0]


def test_lambdas_interpolate_geometrically():
    lam = interpolate_lambdas([0.01, 0.04], torch.tensor([1.0, 1.5, 2.0]))
    assert torch.allclose(lam, torch.tensor([0.01, 0.02, 0.04]))
