"""FactorizedPrior: training path, freeze, exact rate, round trips, persistence."""

from __future__ import annotations

import io

import pytest
import torch
from entropy_helpers import FLUSH_BYTES, single_thread

from neuralcodec.entropy import FactorizedPrior
from neuralcodec.errors import ModelError


def _fit(model: FactorizedPrior, data: torch.Tensor, steps: int = 120) -> None:
    opt = torch.optim.Adam([p for n, p in model.named_parameters() if n != "quantiles"], lr=0.05)
    aux = torch.optim.Adam([model.quantiles], lr=0.5)
    model.train()
    with single_thread():
        _steps(model, data, steps, opt, aux)


def _steps(model, data, steps, opt, aux) -> None:
    for _ in range(steps):
        _, lik = model(data)
        loss = -torch.log2(lik).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        aux.zero_grad()
        model.aux_loss().backward()
        aux.step()


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    scales = torch.tensor([0.3, 1.0, 4.0, 20.0]).view(1, 4, 1, 1)
    offsets = torch.tensor([0.0, 2.5, -7.0, 30.0]).view(1, 4, 1, 1)
    model = FactorizedPrior(4)
    _fit(model, torch.randn(4, 4, 16, 16) * scales + offsets)
    data = torch.randn(8, 4, 32, 32) * scales + offsets
    model.freeze()
    model.eval()
    return model, data


def test_training_shapes_and_gradients():
    model = FactorizedPrior(3)
    z = torch.randn(2, 3, 5, 7, requires_grad=True)
    z_hat, lik = model(z)
    assert z_hat.shape == lik.shape == z.shape
    assert torch.all((lik > 0) & (lik <= 1))
    (-torch.log2(lik).sum()).backward()
    assert z.grad is not None and model.matrices[0].grad is not None
    assert model.aux_loss().item() > 0


def test_round_trip_and_exact_rate(trained):
    model, data = trained
    z = data.clone()
    z[0, 0, 0, :4] = torch.tensor([1e6, -1e6, 1e9, -3e4])  # escapes
    assert z.numel() >= 32_000
    big = torch.cat([z] * 4)  # 131k symbols
    z_hat, lik = model(big)
    strings = model.compress(big)
    out = model.decompress(strings, big.shape[-2:])
    assert torch.equal(out, z_hat)
    assert torch.equal(model.decompress_symbols(strings, big.shape[-2:]), model.symbols(big))
    reported = -torch.log2(lik.double()).sum().item()
    actual = sum(len(s) for s in strings) * 8
    assert reported <= actual <= reported * 1.01 + 8 * FLUSH_BYTES * len(strings)


def test_learned_density_is_good(trained):
    model, data = trained
    model.exact_eval_likelihoods = False
    try:
        _, lik_float = model(data)
    finally:
        model.exact_eval_likelihoods = True
    _, lik_exact = model(data)
    # the frozen integer tables agree with the float density
    b_float, b_exact = (-torch.log2(x.double()).sum().item() for x in (lik_float, lik_exact))
    assert abs(b_exact / b_float - 1) < 0.01
    # close to the entropy of the discretized Gaussians (~ h + log2 scale): within 5 %
    ideal = sum(0.5 * torch.log2(torch.tensor(2 * torch.pi * torch.e * s * s)).item() for s in (1.0, 4.0, 20.0))
    per_elem = (-torch.log2(lik_exact[:, 1:].double())).sum().item() / data[:, 1:].numel() * 3
    assert per_elem < ideal * 1.05


def test_state_dict_round_trip_codes_identically(trained):
    model, data = trained
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh = FactorizedPrior(4)
    fresh.load_state_dict(torch.load(buf))
    fresh.eval()
    assert fresh.frozen and fresh.fingerprint() == model.fingerprint()
    assert fresh.compress(data) == model.compress(data)


def test_not_frozen_refuses_to_code():
    model = FactorizedPrior(2)
    with pytest.raises(ModelError):
        model.compress(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ModelError):
        model.fingerprint()
    model.freeze()
    fp = model.fingerprint()
    model.unfreeze()
    with pytest.raises(ModelError):
        model.compress(torch.zeros(1, 2, 4, 4))
    model.freeze()
    assert model.fingerprint() == fp
