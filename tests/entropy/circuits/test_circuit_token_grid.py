"""The circuit as a prior over token grids [Q, T]: layout, exact round trips (partial windows,
codebook subsets), rate vs NLL, exact marginals, file round trip, bad input. Synthetic grids only."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from neuralcodec.entropy.circuits import FitConfig
from neuralcodec.entropy.circuits.token_grid import (
    CircuitTokenPrior,
    emission_groups,
    grid_to_rows,
    rows_to_grid,
    training_rows,
)

Q, K, W = 3, 1024, 3


def synthetic_grids(n: int, frames: int, seed: int) -> list[np.ndarray]:
    """RVQ-like token grids [Q, T]: codebook 0 is a sticky walk over 16 scattered tokens, each
    deeper codebook a noisy function of the one above it in the same frame."""
    rng = np.random.default_rng(seed)
    grids = []
    for _ in range(n):
        g = np.zeros((Q, frames), dtype=np.int64)
        state = int(rng.integers(0, 16))
        for t in range(frames):
            if rng.random() < 0.3:
                state = int(rng.integers(0, 16))
            g[0, t] = state * 61 % K
        for q in range(1, Q):
            noise = rng.integers(0, 4, size=frames)
            g[q] = (g[q - 1] * 37 + 11 * q + noise) % K
        grids.append(g)
    return grids


@pytest.fixture(scope="module")
def prior() -> CircuitTokenPrior:
    cfg = FitConfig(hidden=8, epochs=2, full_batch_epochs=1, batch_size=256, init="marginal", seed=0)
    return CircuitTokenPrior.fit(synthetic_grids(12, 200, seed=1), K, W, cfg, log=None)


def test_row_layout_is_frame_major_and_inverts() -> None:
    codes = np.arange(2 * 7).reshape(2, 7)  # q=2 of Q=3 codebooks, T=7 with W=3: 3 windows
    rows, mask = grid_to_rows(codes, 3, 3)
    assert rows.shape == mask.shape == (3, 9)
    # variable t * Q + q of window i holds codebook q of frame i * W + t
    assert rows[1, 2 * 3 + 1] == codes[1, 5]
    assert rows[0, 0 * 3 + 0] == codes[0, 0]
    assert not mask[:, 2::3].any()  # codebook 2 is absent everywhere
    assert mask[2].tolist() == [True, True, False] + [False] * 6  # only frame 6 exists in the last window
    assert np.array_equal(rows_to_grid(rows, 3, 3, 2, 7), codes)
    full, none = grid_to_rows(np.arange(12).reshape(3, 4), 3, 2)
    assert none is None and np.array_equal(rows_to_grid(full, 3, 2, 3, 4), np.arange(12).reshape(3, 4))
    assert np.array_equal(training_rows([np.arange(12).reshape(3, 4)], 2), full)
    assert emission_groups(3, 2).tolist() == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("q,frames", [(3, 300), (3, 301), (2, 299), (1, 2), (3, 1), (3, 0)])
def test_exact_round_trip(prior: CircuitTokenPrior, q: int, frames: int) -> None:
    codes = synthetic_grids(1, max(frames, 1), seed=100 + frames)[0][:q, :frames]
    data = prior.compress(torch.from_numpy(codes).to(torch.int16))
    out = prior.decompress(data, frames, num_codebooks=q)
    assert out.dtype == np.int64 and out.shape == (q, frames)
    assert np.array_equal(out, codes)


@pytest.mark.parametrize("q", [3, 1])
def test_actual_bits_within_one_percent_of_nll(prior: CircuitTokenPrior, q: int) -> None:
    codes = synthetic_grids(1, 3001, seed=7)[0][:q]  # held out; T not a multiple of W
    actual = len(prior.compress(codes)) * 8
    nll = prior.nll_bits(codes)
    assert abs(actual - nll) / nll < 0.01, (actual, nll)
    assert prior.code_bits(codes) <= actual <= prior.code_bits(codes) + 64
    # the fit learned something: far below the 10 bits of a raw token
    assert nll / codes.size < 7.0


def test_subsets_and_partial_windows_are_exact_marginals() -> None:
    """Summing 2**-bits over every grid of one shape gives 1: codebook subsets and the missing
    frames of the last window are marginalized, not padded (tiny alphabet, brute force)."""
    grids = [g[:2] % 3 for g in synthetic_grids(4, 40, seed=3)]  # Q = 2 codebooks of K = 3 tokens
    tiny = CircuitTokenPrior.fit(grids, 3, 2, FitConfig(hidden=3, epochs=1, full_batch_epochs=0, init="marginal"),
                                 log=None)
    for q, frames in [(1, 3), (2, 3), (2, 2)]:
        total = 0.0
        for values in itertools.product(range(3), repeat=q * frames):
            codes = np.array(values, dtype=np.int64).reshape(q, frames)
            total += 2.0 ** -tiny.nll_bits(codes)
        assert total == pytest.approx(1.0, abs=1e-9), (q, frames)


def test_save_load_codes_identically(prior: CircuitTokenPrior, tmp_path) -> None:
    path = tmp_path / "prior.safetensors"
    prior.save(path)
    again = CircuitTokenPrior.load(path)
    assert again.config == prior.config
    codes = synthetic_grids(1, 100, seed=9)[0]
    assert again.compress(codes) == prior.compress(codes)
    assert np.array_equal(again.decompress(prior.compress(codes), 100), codes)


def test_bad_input_is_refused_clearly(prior: CircuitTokenPrior) -> None:
    good = synthetic_grids(1, 10, seed=4)[0]
    with pytest.raises(ValueError, match=r"alphabet \[0, 1024\)"):
        prior.compress(np.where(good == good[0, 0], 1024, good))
    with pytest.raises(ValueError, match="alphabet"):
        prior.compress(good - good.max() - 1)
    with pytest.raises(ValueError, match="4 codebooks; this prior models the first 1..3"):
        prior.compress(np.zeros((4, 10), dtype=np.int64))
    with pytest.raises(ValueError, match=r"\[q, T\]"):
        prior.compress(good[None])
    with pytest.raises(TypeError, match="integers"):
        prior.compress(good.astype(np.float32))
    with pytest.raises(ValueError, match="num_codebooks"):
        prior.decompress(prior.compress(good), 10, num_codebooks=4)
    with pytest.raises(ValueError, match="variables"):
        CircuitTokenPrior(prior.circuit, 2, W)


def test_module_form_codes_like_the_prior_and_tracks_its_buffers(prior: CircuitTokenPrior) -> None:
    """:class:`CircuitTokenPriorModule` (the codec's submodule): same streams as the prior it was
    built from, a batch interface, and a fingerprint / entropy-model id that follow the buffers."""
    from neuralcodec.entropy.circuits.token_grid import CircuitTokenPriorModule

    module = CircuitTokenPriorModule.from_prior(prior)
    grids = synthetic_grids(2, 37, seed=5)
    codes = torch.from_numpy(np.stack(grids))
    streams = module.compress(codes[:, :2])
    assert streams == [prior.compress(g[:2]) for g in grids]
    assert torch.equal(module.decompress(streams, 37, 2), codes[:, :2])
    ident = module.entropy_model_id
    assert ident.startswith("circuit-prior/hclt-v") and len(ident.rsplit("/", 1)[1]) == 16
    # a reloaded copy (float16 storage, as in the shipped models) has its own identity, and codes alike
    copy = CircuitTokenPriorModule(Q, K, W, prior.circuit.hidden)
    copy.load_state_dict({k: v.half() for k, v in module.state_dict().items()})
    assert copy.entropy_model_id != ident
    assert torch.equal(copy.decompress(copy.compress(codes), 37), codes)
    copy.load_state_dict(module.state_dict())  # the coder is rebuilt when the buffers change
    assert copy.entropy_model_id == ident and copy.compress(codes[:, :2]) == streams


def test_batch_rows_matches_grid_rows() -> None:
    from neuralcodec.entropy.circuits.token_grid import batch_rows

    grids = synthetic_grids(2, 7, seed=3)
    batch = torch.full((2, Q, 9), -1, dtype=torch.int64)
    batch[0, :, :7] = torch.from_numpy(grids[0])
    batch[1, :, :5] = torch.from_numpy(grids[1][:, :5])
    rows, mask = batch_rows(batch, W)
    expected = [grid_to_rows(grids[0], Q, W), grid_to_rows(grids[1][:, :5], Q, W)]
    assert torch.equal(rows, torch.from_numpy(np.concatenate([r for r, _ in expected])))
    assert torch.equal(mask, torch.from_numpy(np.concatenate([m for _, m in expected])))
