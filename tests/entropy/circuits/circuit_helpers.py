"""Tiny random circuits and a brute-force reference (explicit sums over every hidden state)."""

from __future__ import annotations

import itertools
import math

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


def _requantize_row(a: np.ndarray, state_bits: int) -> np.ndarray:
    """The coder's re-quantization of one state vector, element by element."""
    _, e = math.frexp(float(a.max()))
    return np.array([float(math.ceil(math.ldexp(float(v), state_bits - e))) for v in a])


def reference_entries(coder, x: np.ndarray, mask: np.ndarray | None = None):
    """What a coder must code for ``x [N, D]``, computed row by row with the plain depth-first
    walk of the module docstring (row vectors, no level batching, no leaf tables, no scratch
    memory): ``(tables [m, W], symbols [m], rows [m])`` in decoding order (variable by variable;
    for split alphabets the groups of all rows, then their offsets; rows ascending)."""
    from neuralcodec.entropy.circuits.coder import STATE_BITS
    from neuralcodec.entropy.circuits.structure import ENTER
    from neuralcodec.entropy.tables import reduced_tables

    n, d = x.shape
    obs = np.ones((n, d), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    kk, width, parent = coder.num_categories, coder.width, coder.layout.parent
    per_var: dict[int, list[list[tuple]]] = {v: [[], []] for v in range(d)}  # [level][(row, table, symbol)]
    for r in range(n):
        outside: dict[int, np.ndarray] = {}
        inside: dict[int, np.ndarray] = {}
        for kind, v in coder.layout.events:
            u = int(parent[v])
            if kind != ENTER:
                message = _requantize_row(coder.trans[v] @ inside.pop(v), STATE_BITS)
                inside[u] = _requantize_row(inside[u] * message, STATE_BITS)
                continue
            if u < 0:
                o = coder.prior.copy()
            else:
                o = _requantize_row(_requantize_row(outside[u] * inside[u], STATE_BITS) @ coder.trans[v], STATE_BITS)
            outside[v] = o
            g = int(coder.emit_index[v])
            if not obs[r, v]:
                inside[v] = np.full(coder.hidden, coder.ones)
                continue
            value = int(x[r, v])
            pmf = o @ coder.emit[g]
            if width == kk:
                per_var[v][0].append((r, reduced_tables(pmf[None])[0], value))
            else:
                padded = np.zeros(-(-kk // width) * width)
                padded[:kk] = pmf
                blocks = padded.reshape(-1, width)
                sums = np.zeros(width)
                sums[: blocks.shape[0]] = blocks.sum(axis=1)
                group, offset = divmod(value, width)
                per_var[v][0].append((r, reduced_tables(sums[None], pmf.sum()[None])[0], group))
                per_var[v][1].append((r, reduced_tables(blocks[group][None])[0], offset))
            inside[v] = _requantize_row(coder.emit[g][:, value], STATE_BITS)
    entries = [e for v in coder.layout.order.tolist() for level in per_var[v] for e in level]
    rows = np.array([e[0] for e in entries], dtype=np.int64)
    tables = np.array([e[1] for e in entries]).reshape(len(entries), width)
    symbols = np.array([e[2] for e in entries], dtype=np.int64)
    return tables, symbols, rows
