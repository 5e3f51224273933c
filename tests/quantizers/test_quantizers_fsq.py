"""FSQ: exact index <-> code mapping, usage, bounds, residual FSQ."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from neuralcodec.quantizers import FSQ, ResidualFSQ

LEVELS = [(8, 5, 5, 5), (7, 5, 5, 5, 5), (8, 8, 8, 6, 5), (2, 3, 4), (16, 16)]


@pytest.mark.parametrize("levels", LEVELS, ids=str)
def test_every_index_round_trips(levels: tuple[int, ...]) -> None:
    q = FSQ(levels, bound="clamp" if min(levels) < 3 else "tanh")
    idx = torch.arange(math.prod(levels))
    values = q.indices_to_values(idx)
    assert values.shape == (len(idx), len(levels))
    assert values.min() >= -1 and values.max() <= 1
    assert torch.equal(q.values_to_indices(values), idx)
    digits = q.indices_to_digits(idx)
    assert torch.equal(q.digits_to_indices(digits), idx)
    assert torch.unique(values, dim=0).shape[0] == len(idx)  # distinct codes
    # decode -> quantize reaches the same index (the stage's grid is a fixed point of rounding)
    clamp_stage = FSQ(levels, bound="clamp")
    assert torch.equal(clamp_stage.encode_rows(clamp_stage.decode_rows(idx)), idx)


@pytest.mark.parametrize("levels", LEVELS[:3], ids=str)
def test_usage_on_uniform_data_is_complete(levels: tuple[int, ...]) -> None:
    """Latents spread uniformly over all bins (each code equally likely) use every code."""
    q = FSQ(levels).train()
    size = math.prod(levels)
    idx = torch.randint(0, size, (20 * size,))
    half = q._half_width
    coords = q.indices_to_values(idx) * half + (torch.rand(len(idx), len(levels)) - 0.5) * 0.9
    # stay inside the range the tanh bound can reach, then invert it
    coords = torch.minimum(torch.maximum(coords, -q._half_span - q._offset + 1e-3), q._half_span - q._offset - 1e-3)
    z = (torch.atanh((coords + q._offset) / q._half_span) - q._shift).T
    out = q(z.unsqueeze(0))
    assert out.metrics["usage/0"] > 0.999
    assert out.metrics["dead_codes/0"] < 0.001 * size
    assert out.metrics["perplexity/0"] > 0.95 * size


def test_values_are_on_the_grid_and_close_to_the_bounded_input() -> None:
    q = FSQ((8, 5, 5, 5)).eval()
    z = torch.randn(4, 4, 300)
    out = q(z).quantized
    half = torch.tensor([4.0, 2.0, 2.0, 2.0]).view(1, 4, 1)
    assert torch.equal(out * half, torch.round(out * half))
    u = q.digit_coords(z.transpose(1, 2).reshape(-1, 4))  # [N, 4] digit coordinates in [0, L - 1]
    coords = u.reshape(4, 300, 4).transpose(1, 2) - half
    assert ((out * half - coords).abs() <= 0.5 + 1e-6).all()


def test_fsq_gradient_flows_through_the_bound() -> None:
    q = FSQ((5, 5, 5), 12).train()
    z = torch.randn(2, 12, 30, requires_grad=True)
    q(z).quantized.square().sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert q.project_in.weight.grad is not None and q.project_in.weight.grad.abs().sum() > 0


def test_level_two_needs_the_clamp_bound() -> None:
    with pytest.raises(ValueError, match="degenerate"):
        FSQ((2, 5))
    assert FSQ((2, 5), bound="clamp").size == 10


def test_fsq_has_no_state_in_checkpoints() -> None:
    assert list(FSQ((5, 5, 5)).state_dict()) == []


def test_residual_fsq_error_drops_with_each_stage() -> None:
    q = ResidualFSQ((5, 5, 5, 5), num_codebooks=4).eval()
    z = torch.randn(8, 4, 200) * 0.5
    bounded, _ = q.latent_in(z)
    errors = []
    for k in range(1, 5):
        approx = q.decode(q.encode(z, num_codebooks=k)).transpose(1, 2).reshape(-1, 4)
        errors.append((approx - bounded).abs().max().item())
    # each stage shrinks the worst-case error by the grid step (factor 4 for 5 levels)
    for e1, e2 in itertools.pairwise(errors):
        assert e2 < 0.3 * e1, errors
    assert errors[0] <= 0.25 + 1e-5
