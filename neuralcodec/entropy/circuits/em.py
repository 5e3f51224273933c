"""Fitting an HCLT: Chow-Liu structure, a data-driven initialization, then mini-batch EM.

Mini-batch EM (as in the PC literature): for each batch, the E step gives expected counts
(:meth:`HCLT.em_statistics`), the M step normalizes them with a small pseudocount, and the
parameters move a step ``eta`` toward that estimate, ``theta <- (1 - eta) theta + eta theta_hat``,
with ``eta`` decaying linearly over the epochs. Optional final full-batch epochs accumulate the
counts of the whole training set and take one exact EM step each (monotone in likelihood).

A 16x16-patch fit (pc-gray16) is a few minutes of CPU time; no gradient optimizer is involved.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from neuralcodec.entropy.circuits.hclt import HCLT, EMStatistics
from neuralcodec.entropy.circuits.structure import chow_liu_parent


@dataclass
class FitConfig:
    """Settings of :func:`fit_hclt` (stored in model cards)."""

    hidden: int = 32  # hidden states per tree node (k)
    tie_emissions: bool = False  # one emission table shared by all positions
    epochs: int = 8  # mini-batch EM epochs
    full_batch_epochs: int = 1  # exact EM epochs after the mini-batch ones
    batch_size: int = 512
    step_start: float = 0.5  # EM step size (eta) of the first batch
    step_end: float = 0.05  # ... and of the last mini-batch
    pseudocount: float = 0.01  # Laplace mass per row, relative to the row's average count
    mi_bins: int | None = None  # value bins for mutual information (None: min(K, 16))
    mi_samples: int = 20000
    init_noise: float = 0.2
    init: str = "quantile"  # "quantile" (ordered values, e.g. grey levels) or "marginal" (unordered ids)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _normalize(counts: Tensor, pseudo: float) -> Tensor:
    """Rows of ``counts + pseudo`` normalized over the last dimension."""
    c = counts + pseudo
    return c / c.sum(dim=-1, keepdim=True)


def _pseudo(cfg: FitConfig, batch: int, hidden: int, row_len: int, groups_per_row: int = 1) -> float:
    """Per-entry pseudocount: ``pseudocount`` times the average row total, spread over the row."""
    return cfg.pseudocount * batch * groups_per_row / hidden / row_len


@torch.no_grad()
def initialize(circuit: HCLT, data: Tensor, noise: float = 0.2, generator: torch.Generator | None = None,
               kind: str = "quantile") -> None:
    """Data-driven start of the emissions (transitions favour equal state indices in both cases;
    small multiplicative noise breaks the symmetry between states).

    * ``"quantile"`` (ordered values such as grey levels): hidden state ``z`` of an emission group
      emits values around the ``(z + 1/2) / k`` quantile of the group's values;
    * ``"marginal"`` (unordered categories such as quantizer token ids, where nearby values mean
      nothing): every state emits the group's empirical distribution (smoothed), times noise.
    """
    x = data.to(torch.int64)
    k, kk = circuit.hidden, circuit.num_categories
    group_of = circuit.emit_index
    num_groups = circuit.emit.shape[0]
    jitter = lambda shape: 1.0 + noise * torch.rand(shape, generator=generator, dtype=torch.float64)  # noqa: E731
    if kind == "marginal":
        counts = torch.stack([torch.bincount(x[:, group_of == g].reshape(-1), minlength=kk)
                              for g in range(num_groups)]).to(torch.float64)  # [G, K]
        marginal = (counts + 0.5) / (counts + 0.5).sum(-1, keepdim=True)  # [G, K]
        emit = marginal.unsqueeze(1) * jitter((num_groups, k, kk))
    elif kind == "quantile":
        xf = x.to(torch.float64)
        levels = (torch.arange(k, dtype=torch.float64) + 0.5) / k
        centers = torch.stack([torch.quantile(xf[:, group_of == g].reshape(-1)[: 1 << 22], levels)
                               for g in range(num_groups)])  # [G, k]
        lo, hi = float(xf.min()), float(xf.max())
        linear = torch.linspace(lo, hi, k, dtype=torch.float64)
        centers = 0.5 * (centers + linear)
        width = max((hi - lo) / k, 0.5)
        values = torch.arange(kk, dtype=torch.float64)
        bump = torch.exp(-0.5 * ((values - centers.unsqueeze(-1)) / width) ** 2) + 1e-3
        emit = bump * jitter(bump.shape)
    else:
        raise ValueError(f"unknown initialization {kind!r} (quantile or marginal)")
    idx = torch.arange(k, dtype=torch.float64)
    near = torch.exp(-(idx[:, None] - idx[None, :]).abs()) + 0.05
    trans = near.unsqueeze(0) * jitter((circuit.num_vars, k, k))
    circuit.emit.copy_(emit / emit.sum(-1, keepdim=True))
    circuit.trans.copy_(trans / trans.sum(-1, keepdim=True))
    circuit.prior.fill_(1.0 / k)


@torch.no_grad()
def em_update(circuit: HCLT, stats: EMStatistics, step: float, cfg: FitConfig) -> None:
    """M step toward the normalized counts, interpolated with weight ``step``."""
    k, kk = circuit.hidden, circuit.num_categories
    b = stats.count
    positions = circuit.num_vars / circuit.emit.shape[0]  # variables per emission group (average)
    new_prior = _normalize(stats.prior, _pseudo(cfg, b, 1, k))
    new_trans = _normalize(stats.trans, _pseudo(cfg, b, k, k))
    new_emit = _normalize(stats.emit, _pseudo(cfg, b, k, kk, positions))
    for buf, new in ((circuit.prior, new_prior), (circuit.trans, new_trans), (circuit.emit, new_emit)):
        buf.mul_(1.0 - step).add_(new.to(buf.dtype), alpha=step)
        buf.div_(buf.sum(-1, keepdim=True))


def _accumulate(total: EMStatistics | None, s: EMStatistics) -> EMStatistics:
    if total is None:
        return s
    return EMStatistics(total.log_likelihood + s.log_likelihood, total.prior + s.prior, total.trans + s.trans,
                        total.emit + s.emit, total.count + s.count)


def fit_hclt(
    train: Tensor, num_categories: int, cfg: FitConfig | None = None, *, valid: Tensor | None = None,
    log: Callable[[str], None] | None = print, parent: np.ndarray | None = None,
    emit_groups: np.ndarray | None = None,
) -> HCLT:
    """Learn an HCLT on ``train [N, D]`` (ints in ``[0, num_categories)``).

    ``parent`` skips structure learning. ``emit_groups [D]`` shares emission tables between
    variables (see :class:`HCLT`; excludes ``cfg.tie_emissions``). ``valid [M, D]`` is only
    evaluated for the log.
    """
    cfg = cfg or FitConfig()
    x = torch.as_tensor(train).to(torch.int64)
    n, d = x.shape
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    if parent is None:
        perm = torch.randperm(n, generator=gen)[: cfg.mi_samples]
        parent = chow_liu_parent(x[perm], num_categories, bins=cfg.mi_bins, max_samples=cfg.mi_samples)
    circuit = HCLT(d, num_categories, cfg.hidden, tie_emissions=cfg.tie_emissions, parent=parent,
                   emit_groups=emit_groups)
    initialize(circuit, x, cfg.init_noise, gen, cfg.init)
    depth = len(circuit.layout.levels)
    if log:
        log(f"structure: {d} variables, depth {depth}, {circuit.num_parameters()} parameters "
            f"({time.perf_counter() - t0:.1f} s)")
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = max(cfg.epochs * steps_per_epoch - 1, 1)
    step_i = 0
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        ll = 0.0
        for start in range(0, n, cfg.batch_size):
            batch = x[order[start : start + cfg.batch_size]]
            eta = cfg.step_start + (cfg.step_end - cfg.step_start) * step_i / total_steps
            stats = circuit.em_statistics(batch)
            em_update(circuit, stats, eta, cfg)
            ll += float(stats.log_likelihood)
            step_i += 1
        _report(log, f"epoch {epoch + 1}/{cfg.epochs}", circuit, ll, n, d, valid, t0)
    for epoch in range(cfg.full_batch_epochs):
        total: EMStatistics | None = None
        for start in range(0, n, cfg.batch_size):
            total = _accumulate(total, circuit.em_statistics(x[start : start + cfg.batch_size]))
        em_update(circuit, total, 1.0, cfg)
        _report(log, f"full-batch {epoch + 1}/{cfg.full_batch_epochs}", circuit, float(total.log_likelihood),
                n, d, valid, t0)
    return circuit


def _report(log, what: str, circuit: HCLT, ll: float, n: int, d: int, valid: Tensor | None, t0: float) -> None:
    if not log:
        return
    msg = f"{what}: train {-ll / (n * d * math.log(2)):.4f} bits/dim (before update)"
    if valid is not None:
        msg += f", valid {circuit.bits_per_dim(valid):.4f} bits/dim"
    log(msg + f" [{time.perf_counter() - t0:.1f} s]")
