"""Data generators and small trained models shared by the entropy tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from neuralcodec.entropy import Hyperprior, TokenPrior

#: Final ANS state written by every stream (two 32-bit words).
FLUSH_BYTES = 8
#: Codebook size of the Markov token source.
K = 16


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Train the tiny test models on one thread: with such small tensors, thread hand-offs dominate."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def markov_codes(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    """Codebook 0 drifts by 0/+1 per frame; codebook 1 = codebook 0 + {0, 1, 2}: 2.58 bits/frame."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.randint(0, 2, (batch, frames), generator=g)
    c0 = (torch.randint(0, K, (batch, 1), generator=g) + torch.cumsum(steps, 1)) % K
    c1 = (c0 + torch.randint(0, 3, (batch, frames), generator=g)) % K
    return torch.stack([c0, c1], dim=1)


def latents(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """``[batch, 16, size, size]`` Gaussian latents with a smooth, spatially varying scale."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.nn.functional.interpolate(torch.rand(batch, 1, size // 4, size // 4, generator=g) * 8, size=size)
    return torch.randn(batch, 16, size, size, generator=g) * scale


def bits(lik: torch.Tensor) -> float:
    return -torch.log2(lik.double()).sum().item()


def new_hyperprior() -> Hyperprior:
    return Hyperprior(16, 8, 16, training_quantization="ste")


def trained_hyperprior(seed: int = 0, steps: int = 8) -> Hyperprior:
    """A small hyperprior trained for a few steps on :func:`latents`, then frozen (eval mode)."""
    torch.manual_seed(seed)
    model = new_hyperprior()
    with single_thread():
        train_hyperprior_steps(model, steps)
    return model.freeze().eval()


def train_hyperprior_steps(model: Hyperprior, steps: int, data=latents, lr: float = 1e-2) -> None:
    """``steps`` Adam steps on the rate of ``data(2, 16, seed)`` batches (quantiles by the aux loss)."""
    opt = torch.optim.Adam([p for n, p in model.named_parameters() if "quantiles" not in n], lr=lr)
    aux = torch.optim.Adam([model.factorized.quantiles], lr=0.5)
    for i in range(steps):
        y = data(2, 16, seed=1000 + i)
        _, lik = model(y)
        loss = sum(-torch.log2(v).sum() for v in lik.values()) / y.numel()
        opt.zero_grad()
        loss.backward()
        opt.step()
        aux.zero_grad()
        model.aux_loss().backward()
        aux.step()


def assert_rates_float32_under_autocast(model: Hyperprior, y: torch.Tensor, training: bool) -> None:
    """A bf16 autocast region (``trainer.precision=bf16-mixed``) must not reach the entropy model:
    ``y_hat`` and the likelihoods are those of the float32 computation, bit for bit."""
    model.train(training)
    try:
        torch.manual_seed(0)
        y_ref, lik_ref = model(y)
        torch.manual_seed(0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y_mixed, lik_mixed = model(y)
    finally:
        model.eval()
    assert lik_mixed["y"].dtype == torch.float32 and y_mixed.dtype == torch.float32
    assert torch.equal(y_mixed, y_ref)
    assert all(torch.equal(lik_mixed[k], lik_ref[k]) for k in lik_ref)


def new_causal_prior() -> TokenPrior:
    return TokenPrior([K, K], "causal", hidden=32)


def trained_causal_prior(steps: int = 60) -> TokenPrior:
    """A causal token prior trained on :func:`markov_codes`, then frozen (eval mode)."""
    torch.manual_seed(0)
    model = new_causal_prior()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    with single_thread():
        for i in range(steps):
            codes = markov_codes(8, 128, seed=100 + i)
            loss = -torch.log2(model(codes)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.freeze().eval()
