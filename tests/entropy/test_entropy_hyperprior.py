"""Hyperprior: shapes, exact rate, integer-exact scale indices, persistence."""

from __future__ import annotations

import io

import pytest
import torch
from entropy_helpers import FLUSH_BYTES, assert_rates_float32_under_autocast, latents, new_hyperprior

from neuralcodec.entropy import Hyperprior


def test_training_forward_shapes():
    hp = Hyperprior(12, 6)
    y = torch.randn(2, 12, 16, 8, requires_grad=True)
    y_hat, lik = hp(y)
    assert y_hat.shape == y.shape and lik["y"].shape == y.shape and lik["z"].shape == (2, 6, 4, 2)
    sum(-torch.log2(v).sum() for v in lik.values()).backward()
    assert y.grad is not None and hp.h_s_scale.layers[0].weight.grad is not None
    with pytest.raises(ValueError):
        hp(torch.randn(1, 12, 10, 8))


def test_round_trip_exact_rate(hyperprior):
    y = latents(2, 64, seed=1)
    y[0, 0, 0, :3] = torch.tensor([1e7, -1e7, 123.4])
    assert y.numel() >= 100_000
    y_hat, lik = hyperprior(y)
    strings, z_shape = hyperprior.compress(y)
    out = hyperprior.decompress(strings, z_shape)
    assert torch.allclose(out, y_hat, atol=1e-3)
    y_sym, z_sym = hyperprior.decompress_symbols(strings, z_shape)
    z = hyperprior.h_a(y)
    assert torch.equal(z_sym, hyperprior.factorized.symbols(z))
    means = hyperprior.h_s_mean(hyperprior.factorized.dequantize(z_sym))
    assert torch.equal(y_sym, hyperprior.gaussian.symbols(y, means))
    reported = sum(-torch.log2(v.double()).sum().item() for v in lik.values())
    actual = 8 * sum(len(s) for part in strings for s in part)
    assert reported <= actual <= reported * 1.01 + 8 * FLUSH_BYTES * 4


def test_float_training_path_estimates_the_coded_rate(hyperprior):
    y = latents(2, 64, seed=2)
    hyperprior.exact_eval_likelihoods = False
    hyperprior.gaussian.exact_eval_likelihoods = False
    hyperprior.factorized.exact_eval_likelihoods = False
    try:
        _, lik = hyperprior(y)  # eval-mode rounding, float scale branch, float densities
    finally:
        hyperprior.exact_eval_likelihoods = hyperprior.gaussian.exact_eval_likelihoods = True
        hyperprior.factorized.exact_eval_likelihoods = True
    estimated = sum(-torch.log2(v.double()).sum().item() for v in lik.values())
    strings, _ = hyperprior.compress(y)
    actual = 8 * sum(len(s) for part in strings for s in part)
    assert abs(actual / estimated - 1) < 0.01


def test_scale_indexes_do_not_depend_on_batch_or_threads(hyperprior):
    y = latents(6, 32, seed=3)
    z_hat = hyperprior.factorized.dequantize(hyperprior.factorized.symbols(hyperprior.h_a(y)))
    full = hyperprior.scale_indexes(z_hat)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = torch.cat([hyperprior.scale_indexes(z_hat[i : i + 1]) for i in range(6)])
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(full, single)
    assert full.unique().numel() > 5  # the test exercises many tables


def test_state_dict_round_trip(hyperprior):
    buf = io.BytesIO()
    torch.save(hyperprior.state_dict(), buf)
    buf.seek(0)
    fresh = new_hyperprior()
    fresh.load_state_dict(torch.load(buf))
    fresh.eval()
    y = latents(1, 32, seed=4)
    assert fresh.fingerprint() == hyperprior.fingerprint()
    assert fresh.compress(y) == hyperprior.compress(y)


@pytest.mark.parametrize("training", [True, False])
def test_rates_are_float32_under_mixed_precision(hyperprior, training):
    assert_rates_float32_under_autocast(hyperprior, latents(1, 32, seed=4), training)
