"""GaussianConditional: training/coding consistency, extreme parameters, exact round trips."""

from __future__ import annotations

import io
import math

import pytest
import torch
from entropy_helpers import FLUSH_BYTES

from neuralcodec.entropy import FAMILIES, GaussianConditional


def _data(family: str, shape=(2, 8, 80, 80)):
    g = torch.Generator().manual_seed(1)
    scales = torch.exp(torch.empty(shape).uniform_(math.log(1e-3), math.log(1e4), generator=g))
    means = torch.randn(shape, generator=g) * 100
    noise = {
        "gaussian": torch.randn(shape, generator=g),
        "laplace": torch.distributions.Laplace(0.0, 1.0).sample(shape),
        "logistic": torch.logit(torch.rand(shape, generator=g).clamp(1e-6, 1 - 1e-6)),
    }[family]
    y = means + scales * noise
    y[0, 0, 0, :6] = torch.tensor([1e9, -1e9, 1e5, -1e5, 0.0, 0.5])
    means[0, 0, 1, :3] = torch.tensor([1e6, -1e6, 0.49])
    scales[0, 0, 2, :4] = torch.tensor([0.0, 1e-20, 1e20, 1e9])
    return y, scales, means


@pytest.mark.parametrize("family", FAMILIES)
def test_round_trip_extremes_and_exact_rate(family):
    gc = GaussianConditional(family).eval()
    y, scales, means = _data(family)
    assert y.numel() >= 100_000
    idx = gc.build_indexes(scales)
    y_hat, lik = gc(y, scales, means)
    strings = gc.compress(y, idx, means)
    out = gc.decompress(strings, idx, means)
    assert torch.equal(out, y_hat)
    reported = -torch.log2(lik.double()).sum().item()
    actual = 8 * sum(len(s) for s in strings)
    assert reported <= actual <= reported * 1.01 + 8 * FLUSH_BYTES * len(strings)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode,scale_min", [("ste", 0.01), ("noise", 0.3)])
def test_training_rate_matches_coded_rate(family, mode, scale_min):
    """The training path evaluates the density the coder uses (snapped scales).

    With STE rounding the estimate is the coded size; the additive-noise proxy agrees as long as
    scales are not far below one quantization step.
    """
    gc = GaussianConditional(family, training_quantization=mode)
    g = torch.Generator().manual_seed(2)
    scales = torch.exp(torch.empty(4, 8, 32, 32).uniform_(math.log(scale_min), math.log(300), generator=g))
    means = torch.randn(scales.shape, generator=g) * 10
    y = means + scales * torch.randn(scales.shape, generator=g)
    gc.train()
    torch.manual_seed(0)
    _, lik_train = gc(y, scales.requires_grad_(), means)
    (-torch.log2(lik_train).sum()).backward()
    assert scales.grad is not None and torch.isfinite(scales.grad).all()
    gc.eval()
    strings = gc.compress(y, gc.build_indexes(scales), means)
    actual = 8 * sum(len(s) for s in strings)
    estimated = -torch.log2(lik_train.detach().double()).sum().item()
    assert abs(actual / estimated - 1) < 0.01


def test_eval_float_and_exact_likelihoods_agree():
    gc = GaussianConditional().eval()
    y, scales, means = _data("gaussian", (1, 4, 32, 32))
    _, exact = gc(y, scales, means)
    gc.exact_eval_likelihoods = False
    _, approx = gc(y, scales, means)
    ok = (y - means).abs() < 4 * scales.clamp(0.11, 256)  # away from the tables' floor and escapes
    ratio = (exact[ok].double().log2().sum() / approx[ok].double().log2().sum()).item()
    assert abs(ratio - 1) < 1e-3


def test_state_dict_and_fingerprint():
    a, b = GaussianConditional("laplace"), GaussianConditional("laplace", num_scales=32)
    assert a.fingerprint() != b.fingerprint()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf))
    assert b.fingerprint() == a.fingerprint()


def test_shape_checks():
    gc = GaussianConditional()
    with pytest.raises(ValueError):
        gc.compress(torch.zeros(1, 4), torch.zeros(1, 5, dtype=torch.int64))
    with pytest.raises(ValueError):
        gc.compress(torch.full((1, 4), float("nan")), torch.zeros(1, 4, dtype=torch.int64))
