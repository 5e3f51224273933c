"""TokenPrior: static and causal priors for quantizer codes [B, Q, T]."""

from __future__ import annotations

import io

import pytest
import torch
from entropy_helpers import FLUSH_BYTES, bits, markov_codes, new_causal_prior, single_thread

from neuralcodec.entropy import TokenPrior
from neuralcodec.errors import ModelError


def test_causal_learns_context_and_rates_agree(causal_prior):
    codes = markov_codes(4, 512, seed=1)
    causal_prior.train()
    try:
        float_bits = bits(causal_prior(codes))
    finally:
        causal_prior.eval()
    exact_bits = bits(causal_prior(codes))
    assert abs(exact_bits / float_bits - 1) < 0.01  # integer coding path == trained float model
    per_frame = exact_bits / (4 * 512)
    assert per_frame < 3.0  # source entropy 2.58 bits/frame; nominal 8 bits/frame
    strings = causal_prior.compress(codes)
    actual = 8 * sum(len(s) for s in strings)
    assert exact_bits <= actual <= exact_bits * 1.01 + 8 * FLUSH_BYTES * len(strings)
    assert torch.allclose(causal_prior.bits(codes).sum(), torch.tensor(exact_bits, dtype=torch.float64))


def test_causal_round_trip_100k(causal_prior):
    codes = markov_codes(8, 6400, seed=2)
    assert codes.numel() >= 100_000
    strings = causal_prior.compress(codes)
    assert torch.equal(causal_prior.decompress(strings, 6400), codes)


def test_context_carries_across_chunks(causal_prior):
    codes = markov_codes(2, 200, seed=3)
    first, second = codes[..., :100], codes[..., 100:]
    with_ctx = causal_prior.compress(second, context=first)
    alone = causal_prior.compress(second)
    assert torch.equal(causal_prior.decompress(with_ctx, 100, context=first), second)
    assert torch.equal(causal_prior.decompress(alone, 100), second)
    assert with_ctx != alone
    assert causal_prior.bits(second, context=first).sum() < causal_prior.bits(second).sum()
    # coding the tail with its context costs exactly what it costs inside the full sequence
    lik_full = causal_prior(codes)[..., 100:]
    lik_ctx = causal_prior(second, context=first)
    assert torch.equal(lik_full, lik_ctx)


def test_static_prior_learns_marginals_and_round_trips():
    torch.manual_seed(0)
    model = TokenPrior([8, 300], "static")
    g = torch.Generator().manual_seed(0)
    probs0 = torch.tensor([0.5, 0.2, 0.1, 0.1, 0.05, 0.03, 0.01, 0.01])
    sample = lambda n: torch.stack(  # noqa: E731
        [torch.multinomial(probs0, n, replacement=True, generator=g), torch.randint(0, 300, (n,), generator=g) % 30],
        dim=0,
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    with single_thread():
        for _ in range(60):
            codes = sample(1024)[None]
            loss = -torch.log2(model(codes)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.freeze().eval()
    codes = torch.stack([sample(25_000) for _ in range(2)])  # [2, 2, 25000] = 100k symbols
    strings = model.compress(codes)
    assert torch.equal(model.decompress(strings, codes.shape[-1]), codes)
    exact = bits(model(codes))
    actual = 8 * sum(len(s) for s in strings)
    assert exact <= actual <= exact * 1.01 + 8 * FLUSH_BYTES * 2
    entropy0 = -(probs0 * probs0.log2()).sum().item()
    per_frame = exact / codes.shape[0] / codes.shape[-1]
    assert per_frame < (entropy0 + torch.log2(torch.tensor(30.0)).item()) * 1.02  # far below 3 + 8.2 bits


@pytest.mark.parametrize("context", ["static", "causal"])
def test_mixed_codebook_sizes_and_edge_cases(context):
    sizes = [1024, 2, 37]
    model = TokenPrior(sizes, context, hidden=16).freeze().eval()
    g = torch.Generator().manual_seed(4)
    codes = torch.stack([torch.randint(0, k, (3, 40), generator=g) for k in sizes], dim=1)
    codes[0, 0, :3] = torch.tensor([0, 1023, 512])
    strings = model.compress(codes)
    assert torch.equal(model.decompress(strings, 40), codes)
    assert torch.equal(model.decompress(model.compress(codes[..., :0]), 0), codes[..., :0])
    bad = codes.clone()
    bad[0, 1, 0] = 2
    with pytest.raises(ValueError):
        model.compress(bad)
    with pytest.raises(ValueError):
        model.compress(torch.cat([codes, codes[:, :1]], dim=1))  # more codebooks than the model


def test_persistence_and_freeze_required(causal_prior):
    buf = io.BytesIO()
    torch.save(causal_prior.state_dict(), buf)
    buf.seek(0)
    fresh = new_causal_prior()
    with pytest.raises(ModelError):
        fresh.compress(markov_codes(1, 4))
    fresh.load_state_dict(torch.load(buf))
    fresh.eval()
    codes = markov_codes(2, 64, seed=5)
    assert fresh.fingerprint() == causal_prior.fingerprint()
    assert fresh.compress(codes) == causal_prior.compress(codes)


@pytest.mark.parametrize("context", ["static", "causal"])
def test_codebook_prefix_for_lower_bitrates(context):
    """The first q < Q codebooks can be coded alone (missing ones act as "start" tokens)."""
    torch.manual_seed(1)
    sizes = [64, 32, 16]
    model = TokenPrior(sizes, context, hidden=16)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    model.freeze().eval()
    g = torch.Generator().manual_seed(6)
    codes = torch.stack([torch.randint(0, k, (2, 30), generator=g) for k in sizes], dim=1)
    for q in (1, 2):
        part = codes[:, :q]
        strings = model.compress(part)
        assert torch.equal(model.decompress(strings, 30, num_codebooks=q), part)
        assert model(part).shape == part.shape
        exact = bits(model(part))
        actual = 8 * sum(len(s) for s in strings)
        assert exact <= actual <= exact * 1.01 + 8 * FLUSH_BYTES * 2
        ctx_strings = model.compress(part[..., 10:], context=codes[..., :10])  # context may hold all Q
        assert torch.equal(model.decompress(ctx_strings, 20, context=codes[..., :10], num_codebooks=q), part[..., 10:])
    with pytest.raises(ValueError):
        model.decompress(strings, 30, num_codebooks=4)


def test_absent_codes_match_lower_bitrate_view():
    """Training with quantizer dropout (-1 = absent) sees each item as the coder does at its bitrate."""
    import torch

    from neuralcodec.entropy import TokenPrior

    torch.manual_seed(0)
    prior = TokenPrior([16, 16, 16], context="causal", hidden=16)
    codes = torch.randint(0, 16, (3, 3, 12))
    dropped = codes.clone()
    dropped[1, 2:] = -1  # item 1 keeps 2 codebooks
    dropped[2, 1:] = -1  # item 2 keeps 1 codebook
    lik = prior(dropped)
    assert torch.allclose(lik[0], prior(codes[:1])[0])
    assert torch.allclose(lik[1, :2], prior(codes[1:2, :2])[0])
    assert torch.allclose(lik[2, :1], prior(codes[2:3, :1])[0])
    assert torch.equal(lik[1, 2:], torch.ones_like(lik[1, 2:]))
    # and the lower-bitrate view is what the frozen coder uses: round trip at q = 2
    prior.eval().freeze()
    strings = prior.compress(codes[:, :2])
    assert torch.equal(prior.decompress(strings, 12, num_codebooks=2), codes[:, :2])


@pytest.mark.parametrize("training", [True, False])
def test_likelihoods_are_float32_under_mixed_precision(causal_prior, training):
    """Audio trainers may run the codec under bf16 autocast: the prior's rates are those of the
    float32 computation, bit for bit."""
    codes = markov_codes(2, 64, seed=7)
    causal_prior.train(training)
    try:
        ref = causal_prior(codes)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = causal_prior(codes)
    finally:
        causal_prior.eval()
    assert mixed.dtype == ref.dtype and ref.dtype in (torch.float32, torch.float64) and torch.equal(mixed, ref)
