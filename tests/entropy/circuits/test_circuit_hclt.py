"""HCLT against brute force: normalization, marginals, EM statistics, EM progress."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuit_helpers import all_configs, brute_joint, random_circuit
from neuralcodec.entropy.circuits import FitConfig, fit_hclt
from neuralcodec.entropy.circuits.em import em_update


@pytest.mark.parametrize("tie", [False, True])
def test_joint_matches_brute_force_and_sums_to_one(tie):
    c = random_circuit(d=4, kk=3, k=2, seed=3, tie=tie)
    x = all_configs(4, 3)
    p = c.log_prob(x, dtype=torch.float64).exp().numpy()
    ref = brute_joint(c)
    assert np.allclose(p, ref.reshape(-1), rtol=1e-12, atol=0)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)


def test_marginals_match_brute_force_and_sum_to_one():
    c = random_circuit(d=5, kk=3, k=3, seed=5)
    joint = brute_joint(c)
    rng = np.random.default_rng(0)
    for _ in range(6):
        keep = rng.random(5) < 0.5
        x = all_configs(5, 3)
        mask = torch.from_numpy(np.broadcast_to(keep, x.shape).copy())
        marg = c.log_prob(x, mask, dtype=torch.float64).exp().numpy().reshape([3] * 5)
        ref = joint.sum(axis=tuple(np.flatnonzero(~keep)), keepdims=True)
        assert np.allclose(marg, np.broadcast_to(ref, marg.shape), rtol=1e-12)
        # summing the marginal over the kept variables (one representative per class) gives 1
        index = tuple(slice(None) if k else 0 for k in keep)
        assert marg[index].sum() == pytest.approx(1.0, abs=1e-12)
    # all variables marginalized: probability 1
    none = torch.zeros(1, 5, dtype=torch.bool)
    assert float(c.log_prob(torch.zeros(1, 5, dtype=torch.int64), none, dtype=torch.float64)) == pytest.approx(0.0, abs=1e-12)


def test_em_statistics_are_posterior_expected_counts():
    c = random_circuit(d=3, kk=3, k=2, seed=7)
    x = torch.tensor([[0, 2, 1]])
    stats = c.em_statistics(x)
    # brute force posterior over hidden states for this x
    prior, trans, emit = (t.double().numpy() for t in (c.prior, c.trans, c.emit))
    parent = c.parent.numpy()
    root = int(np.flatnonzero(parent < 0)[0])
    post = np.zeros((2, 2, 2))
    for z in np.ndindex(2, 2, 2):
        w = prior[z[root]]
        for v in range(3):
            if v != root:
                w *= trans[v, z[parent[v]], z[v]]
            w *= emit[v, z[v], x[0, v]]
        post[z] = w
    post /= post.sum()
    for v in range(3):
        marg_v = post.sum(axis=tuple(a for a in range(3) if a != v))
        assert np.allclose(stats.emit[v, :, x[0, v]].double().numpy(), marg_v, atol=1e-5)
        assert float(stats.emit[v].sum()) == pytest.approx(1.0, abs=1e-5)
        if v != root:
            u = int(parent[v])
            pair = post.sum(axis=tuple(a for a in range(3) if a not in (u, v)))
            pair = pair if u < v else pair.T  # -> [z_u, z_v]
            assert np.allclose(stats.trans[v].double().numpy(), pair, atol=1e-5)
    assert float(stats.trans[root].abs().sum()) == 0.0


def test_full_batch_em_step_increases_likelihood():
    truth = random_circuit(d=6, kk=4, k=3, seed=11)
    data = truth.sample(1000, generator=torch.Generator().manual_seed(0))
    model = random_circuit(d=6, kk=4, k=3, seed=12)
    model.set_structure(truth.parent.numpy())
    cfg = FitConfig(hidden=3, pseudocount=1e-4)
    before = float(model.log_prob(data, dtype=torch.float64).sum())
    for _ in range(3):
        em_update(model, model.em_statistics(data), 1.0, cfg)
        after = float(model.log_prob(data, dtype=torch.float64).sum())
        assert after > before
        before = after


def test_fit_beats_independent_pixels_on_correlated_data():
    truth = random_circuit(d=8, kk=5, k=4, seed=2, sticky=0.95)
    g = torch.Generator().manual_seed(1)
    train, test = truth.sample(2000, generator=g), truth.sample(1000, generator=g)
    model = fit_hclt(train, 5, FitConfig(hidden=4, epochs=3, batch_size=500, step_start=0.8), log=None)
    # the independent model's entropy (per-column empirical marginals of the test set itself)
    counts = torch.stack([torch.bincount(test[:, j], minlength=5) for j in range(8)]).double() + 1e-9
    ent = float(-(counts / 1000 * (counts / 1000).log2()).sum()) / 8
    true_bpd = truth.bits_per_dim(test)
    fit_bpd = model.bits_per_dim(test)
    assert fit_bpd < ent - 0.1
    assert fit_bpd < true_bpd + 0.1


def test_sample_and_input_validation():
    c = random_circuit(d=4, kk=3, k=2, seed=0)
    s = c.sample(10, generator=torch.Generator().manual_seed(0))
    assert s.shape == (10, 4) and int(s.min()) >= 0 and int(s.max()) < 3
    with pytest.raises(ValueError):
        c.log_prob(torch.full((1, 4), 3))
    with pytest.raises(ValueError):
        c.log_prob(torch.zeros(1, 5, dtype=torch.int64))
