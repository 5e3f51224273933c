"""Tiny random circuits and a brute-force reference (explicit sums over every hidden state)."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from neuralcodec.entropy.circuits import HCLT


def random_circuit(d: int, kk: int, k: int, seed: int, tie: bool = False, sticky: float = 0.0) -> HCLT:
    """An HCLT with a random tree and random (Dirichlet) parameters; ``sticky`` adds that much
    mass to keeping the parent's hidden state (stronger dependencies)."""
    rng = np.random.default_rng(seed)
    parent = np.full(d, -1, dtype=np.int64)
    order = rng.permutation(d)
    for pos in range(1, d):
        parent[order[pos]] = order[rng.integers(0, pos)]
    c = HCLT(d, kk, k, tie_emissions=tie, parent=parent)
    c.prior.copy_(torch.from_numpy(rng.dirichlet(np.ones(k))))
    trans = (1 - sticky) * rng.dirichlet(np.ones(k), size=(d, k)) + sticky * np.eye(k)
    c.trans.copy_(torch.from_numpy(trans))
    c.emit.copy_(torch.from_numpy(rng.dirichlet(np.full(kk, 0.5), size=(c.emit.shape[0], k))))
    return c


def brute_joint(c: HCLT) -> np.ndarray:
    """``p(x)`` for every ``x`` as an array ``[K] * D`` (float64), summing over all hidden configurations."""
    d, kk, k = c.num_vars, c.num_categories, c.hidden
    norm = lambda t: (t.double() / t.double().sum(-1, keepdim=True)).numpy()  # noqa: E731
    prior, trans, emit = norm(c.prior), norm(c.trans), norm(c.emit)
    g = c.emit_index.numpy()
    parent = c.parent.numpy()
    root = int(np.flatnonzero(parent < 0)[0])
    joint = np.zeros([kk] * d)
    for z in itertools.product(range(k), repeat=d):
        w = prior[z[root]]
        for v in range(d):
            if v != root:
                w *= trans[v, z[parent[v]], z[v]]
        term = np.array(w)
        for v in range(d):
            shape = [1] * d
            shape[v] = kk
            term = term * emit[g[v], z[v]].reshape(shape)
        joint += term
    return joint


def all_configs(d: int, kk: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(kk), repeat=d)), dtype=torch.int64)
