"""Checkerboard-context hyperprior, with and without channel groups: split/merge, warm starts from a
hyperprior and from a checkerboard model, coding that matches the eval forward pass, integer-exact
indices that read only what was coded before, and contexts that really lower the rate."""

from __future__ import annotations

import pytest
import torch
from entropy_helpers import (FLUSH_BYTES, assert_rates_float32_under_autocast, bits, latents, single_thread,
                             train_hyperprior_steps)

from neuralcodec.entropy import CheckerboardHyperprior
from neuralcodec.entropy.checkerboard import (channel_group_sizes, checkerboard as anchor_positions,
                                              merge_checkerboard, split_checkerboard)

#: channel groups of the test models (16 latent channels): none, and uneven groups as in ELIC
GROUPINGS = [1, (4, 4, 8)]


def _new(**kwargs) -> CheckerboardHyperprior:
    return CheckerboardHyperprior(16, 8, 16, training_quantization="ste", context_hidden=16, **kwargs)


def _correlated_latents(batch: int, size: int, seed: int) -> torch.Tensor:
    """Latents whose neighbours share a smooth component the side information is too coarse to
    carry (4x4 blocks of z cannot follow it): a spatial context can predict it from the anchors."""
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(batch, 16, size + 2, size + 2, generator=g) * 24, 3, 1)
    return smooth + torch.randn(batch, 16, size, size, generator=g) * 0.5


def _train(model: CheckerboardHyperprior, steps: int, data=latents, lr: float = 1e-2) -> CheckerboardHyperprior:
    with single_thread():
        train_hyperprior_steps(model, steps, data, lr)
    return model.freeze().eval()


def _warm_started(model, source, new_prefixes: tuple[str, ...]):
    """Load ``source``'s weights into ``model`` (only ``new_prefixes`` may be missing), freeze it and
    return ``(y, source(y), model(y))`` on test latents."""
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith(new_prefixes) for k in missing)
    model.freeze().eval()
    y = latents(2, 32, seed=5)
    return y, source(y), model(y)


@pytest.fixture(scope="module", params=GROUPINGS, ids=["checkerboard", "channel-groups"])
def checkerboard(request):
    torch.manual_seed(0)
    return _train(_new(channel_groups=request.param), 12)


def test_split_and_merge_are_inverse():
    x = torch.randn(2, 3, 6, 8)
    anchors, others = split_checkerboard(x)
    assert anchors.shape == others.shape == (2, 3, 6, 4)
    assert torch.equal(merge_checkerboard(anchors, others), x)
    a_mask, o_mask = split_checkerboard(anchor_positions(6, 8).float())
    assert bool((a_mask == 1).all()) and bool((o_mask == 0).all())
    with pytest.raises(ValueError):
        split_checkerboard(torch.zeros(1, 1, 4, 5))


def test_starts_as_the_plain_hyperprior(hyperprior):
    """Zero-initialised context: a warm start from a hyperprior has exactly its rates and files."""
    model = _new()
    y, (y_ref, lik_ref), (y_hat, lik) = _warm_started(model, hyperprior, ("ctx_mean.", "ctx_scale."))
    assert torch.equal(y_hat, y_ref)
    assert bits(lik["y"]) == pytest.approx(bits(lik_ref["y"]), rel=1e-9)
    assert torch.equal(lik["z"], lik_ref["z"])


def test_training_forward_reaches_the_context_networks():
    model = _new()
    torch.nn.init.normal_(model.ctx_mean[-1].weight, std=0.1)
    torch.nn.init.normal_(model.ctx_scale.layers[-1].weight, std=0.1)
    y = latents(2, 16, seed=6).requires_grad_(True)
    _, lik = model(y)
    sum(-torch.log2(v).sum() for v in lik.values()).backward()
    assert y.grad is not None
    assert model.ctx_mean[0].weight.grad.abs().sum() > 0
    assert model.ctx_scale.layers[0].weight.grad.abs().sum() > 0


def test_round_trip_matches_eval_forward_and_exact_rate(checkerboard):
    assert checkerboard.ctx_scale.layers[-1].weight.abs().sum() > 0  # the context is in use
    assert all(net.layers[-1].weight.abs().sum() > 0 for net in checkerboard.chan_scale)
    y = latents(2, 48, seed=7)
    y[0, 0, 0, :3] = torch.tensor([1e7, -1e7, 123.4])  # escapes, in an anchor and a non-anchor
    y_hat, lik = checkerboard(y)
    strings, z_shape = checkerboard.compress(y)
    out = checkerboard.decompress(strings, z_shape)
    assert torch.allclose(out, y_hat, atol=1e-3)
    _, z_sym = checkerboard.decompress_symbols(strings, z_shape)
    assert torch.equal(z_sym, checkerboard.factorized.symbols(checkerboard.h_a(y)))
    reported = sum(bits(v) for v in lik.values())
    actual = 8 * sum(len(s) for part in strings for s in part)
    assert reported <= actual <= reported * 1.01 + 8 * FLUSH_BYTES * 4


def test_decoding_does_not_depend_on_batch_or_threads(checkerboard):
    y = latents(3, 32, seed=8)
    strings, z_shape = checkerboard.compress(y)
    together = checkerboard.decompress_symbols(strings, z_shape)[0]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = torch.cat([checkerboard.decompress_symbols([[strings[0][i]], [strings[1][i]]], z_shape)[0]
                            for i in range(3)])
        one_by_one = [checkerboard.compress(y[i:i + 1])[0] for i in range(3)]
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(together, single)
    assert [s[0][0] for s in one_by_one] == strings[0]


def test_indices_read_only_what_was_coded_before(checkerboard):
    """Coding order: the groups' anchors, then the groups' other positions. Moving the symbols of one
    step never changes an index of that step or an earlier one (the decoder could not know them),
    and does change a later one (the contexts are in use)."""
    y = latents(1, 16, seed=9)
    z_hat = checkerboard.factorized.dequantize(checkerboard.factorized.symbols(checkerboard.h_a(y)))
    sym = torch.round(y)
    base = checkerboard._exact_indexes(z_hat, sym)
    anchors = anchor_positions(16, 16)
    hyper_only = checkerboard._exact_indexes(z_hat, None)
    first = checkerboard._group(0)
    assert torch.equal(base[:, first][anchors.expand_as(base[:, first])], hyper_only[:, first][anchors.expand_as(base[:, first])])
    steps = []
    for p in (0, 1):
        for g in range(checkerboard.num_groups):
            mask = torch.zeros_like(sym, dtype=torch.bool)
            mask[:, checkerboard._group(g)] = anchors if p == 0 else ~anchors
            steps.append(mask)
    assert torch.equal(sum(m.long() for m in steps), torch.ones_like(sym, dtype=torch.long))
    for k, mask in enumerate(steps):
        moved = checkerboard._exact_indexes(z_hat, sym + 40.0 * mask)
        done = torch.stack(steps[:k + 1]).any(0)
        assert torch.equal(moved[done], base[done]), f"step {k} changed an index coded before it"
        if k < len(steps) - 1:
            assert not torch.equal(moved[~done], base[~done]), f"step {k} is used by no later step"


def test_context_lowers_the_rate_of_spatially_correlated_latents():
    """Same training budget, same data: the checkerboard context codes neighbour-correlated
    latents in fewer bits than the plain hyperprior (which it contains)."""
    torch.manual_seed(1)
    plain = _new()  # a context that stays zero: the plain hyperprior
    for p in list(plain.ctx_mean.parameters()) + list(plain.ctx_scale.parameters()):
        p.requires_grad_(False)
    torch.manual_seed(1)
    ctx = _new()
    _train(plain, 60, _correlated_latents, lr=3e-3)
    _train(ctx, 60, _correlated_latents, lr=3e-3)
    y = _correlated_latents(2, 32, seed=99)
    rate_plain = sum(bits(v) for v in plain(y)[1].values())
    rate_ctx = sum(bits(v) for v in ctx(y)[1].values())
    assert rate_ctx < 0.95 * rate_plain


@pytest.mark.parametrize("training", [True, False])
def test_rates_are_float32_under_mixed_precision(checkerboard, training):
    assert_rates_float32_under_autocast(checkerboard, latents(1, 32, seed=4), training)


def test_bad_context_kernel():
    with pytest.raises(ValueError):
        _new(context_kernel=4)


def test_channel_group_sizes():
    assert channel_group_sizes(1, 16) == (16,)
    assert channel_group_sizes(4, 144) == (36, 36, 36, 36)
    assert channel_group_sizes(3, 16) == (5, 5, 6)
    assert channel_group_sizes([16, 16, 32, 80], 144) == (16, 16, 32, 80)
    for bad in (0, 17, [8, 4], [16, 0]):
        with pytest.raises(ValueError, match="channel_groups"):
            channel_group_sizes(bad, 16)
    assert _new().model_name == "checkerboard-hyperprior"
    assert _new(channel_groups=2).model_name == "channel-checkerboard-hyperprior"


def test_channel_groups_start_as_the_checkerboard_model():
    """Zero-initialised channel context: a warm start from a checkerboard model without channel groups
    has exactly its rates and files."""
    torch.manual_seed(0)
    checkerboard = _train(_new(), 12)
    model = _new(channel_groups=(4, 4, 8))
    y, (y_ref, lik_ref), (y_hat, lik) = _warm_started(model, checkerboard, ("chan_mean.", "chan_scale."))
    assert torch.allclose(y_hat, y_ref, atol=1e-5)
    assert torch.equal(lik["y"], lik_ref["y"])
    # same symbols under the same tables, in another order within the stream: same size, same decode
    ours, theirs = model.compress(y), checkerboard.compress(y)
    assert all(abs(len(a) - len(b)) <= 4 for a, b in zip(ours[0][0], theirs[0][0], strict=True))
    assert torch.equal(model.decompress_symbols(*ours)[0], checkerboard.decompress_symbols(*theirs)[0])


def _channel_correlated_latents(batch: int, size: int, seed: int) -> torch.Tensor:
    """Latents whose channels share a spatially white component: neither the side information nor
    the spatial context can predict it, the channels coded earlier can."""
    g = torch.Generator().manual_seed(seed)
    shared = torch.randn(batch, 1, size, size, generator=g) * 20
    return shared * torch.linspace(0.5, 1.5, 16)[None, :, None, None] + torch.randn(batch, 16, size, size, generator=g) * 0.5


def test_channel_context_lowers_the_rate_of_channel_correlated_latents():
    """Same training budget, same data: four channel groups code channel-correlated latents in fewer
    bits than the checkerboard model alone (the same model with its channel context frozen at zero)."""
    torch.manual_seed(2)
    plain = _new(channel_groups=4)
    for p in list(plain.chan_mean.parameters()) + list(plain.chan_scale.parameters()):
        p.requires_grad_(False)
    torch.manual_seed(2)
    grouped = _new(channel_groups=4)
    _train(plain, 60, _channel_correlated_latents, lr=3e-3)
    _train(grouped, 60, _channel_correlated_latents, lr=3e-3)
    y = _channel_correlated_latents(2, 32, seed=99)
    rate_plain = sum(bits(v) for v in plain(y)[1].values())
    rate_grouped = sum(bits(v) for v in grouped(y)[1].values())
    assert rate_grouped < 0.95 * rate_plain, (rate_grouped, rate_plain)  # measured: 12 % fewer bits
