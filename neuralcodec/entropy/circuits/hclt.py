"""Hidden Chow-Liu Tree (HCLT): a probabilistic circuit over ``D`` categorical variables.

Model: every observed variable ``X_i`` (values in ``[0, K)``) has a hidden variable ``Z_i`` with
``k`` states; the hidden variables form a tree (the Chow-Liu tree of the data, see
:mod:`.structure`)::

    p(x) = sum_z  prior[z_r] * prod_{i != r} trans[i][z_parent(i), z_i] * prod_i emit[g(i)][z_i, x_i]

As a circuit, the emissions are the input units, ``lambda_i(z) = emit(x_i | z) * prod_children m_c(z)``
are product units and ``m_i(z_parent) = sum_z' trans[i][z_parent, z'] lambda_i(z')`` are sum
units. The circuit is smooth and decomposable, so *any marginal* is one forward pass with the
input units of marginalized variables set to 1 (``mask``). The forward pass is vectorized by tree
depth: all nodes of one layer are evaluated with one batched matrix product.

Parameters are normalized float32 probabilities stored as buffers (EM updates them in place):
``prior [k]``, ``trans [D, k, k]`` (row ``trans[i][a]`` = ``p(Z_i | Z_parent = a)``; unused for
the root), ``emit [G, k, K]`` with ``G = 1`` when emissions are tied across positions, ``G = D``
when every variable has its own, or ``G`` groups given by ``emit_groups [D]`` (e.g. one table per
codebook of a token grid, shared by all frames; the grouping is structure, not a parameter, so
it is not part of the state dict). Learning by EM uses the circuit-flow identity: the gradient of the log-likelihood
with respect to a log-parameter is that parameter's expected count (:meth:`HCLT.em_statistics`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from neuralcodec.entropy.circuits.structure import TreeLayout, chain_parent


@dataclass
class EMStatistics:
    """Expected counts of every parameter for a batch (same shapes as the parameters)."""

    log_likelihood: Tensor  # scalar: sum over the batch of ln p(x)
    prior: Tensor  # [k]
    trans: Tensor  # [D, k, k]
    emit: Tensor  # [G, k, K]
    count: int  # batch size


class HCLT(nn.Module):
    """Hidden Chow-Liu Tree circuit; see the module docstring for the model and shapes."""

    def __init__(
        self, num_vars: int, num_categories: int, hidden: int, *, tie_emissions: bool = False,
        parent: np.ndarray | None = None, emit_groups: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        if num_vars < 1 or num_categories < 2 or hidden < 1:
            raise ValueError("need num_vars >= 1, num_categories >= 2, hidden >= 1")
        self.num_vars, self.num_categories, self.hidden = int(num_vars), int(num_categories), int(hidden)
        self.tie_emissions = bool(tie_emissions)
        if emit_groups is None:
            group_of = np.zeros(num_vars, np.int64) if tie_emissions else np.arange(num_vars, dtype=np.int64)
        else:
            if tie_emissions:
                raise ValueError("give either tie_emissions or emit_groups, not both")
            group_of = np.asarray(emit_groups, dtype=np.int64).copy()
            if group_of.shape != (num_vars,) or group_of.min() < 0 or \
                    not np.array_equal(np.unique(group_of), np.arange(group_of.max() + 1)):
                raise ValueError(f"emit_groups must be [{num_vars}] ints covering 0..G-1")
        groups = int(group_of.max()) + 1
        self.register_buffer("_emit_group_of", torch.from_numpy(group_of), persistent=False)
        k, kk = self.hidden, self.num_categories
        self.register_buffer("parent", torch.from_numpy(chain_parent(num_vars) if parent is None else np.asarray(parent, np.int64).copy()))
        self.register_buffer("prior", torch.full((k,), 1.0 / k))
        self.register_buffer("trans", torch.full((num_vars, k, k), 1.0 / k))
        self.register_buffer("emit", torch.full((groups, k, kk), 1.0 / kk))
        self._layout_cache: tuple[tuple[int, ...], TreeLayout, list] | None = None
        self.layout  # validate the structure now

    # -- structure ------------------------------------------------------------------------------
    @property
    def layout(self) -> TreeLayout:
        """Schedules of the current tree (recomputed when ``parent`` changes)."""
        key = tuple(self.parent.tolist())
        if self._layout_cache is None or self._layout_cache[0] != key:
            layout = TreeLayout(np.array(key, dtype=np.int64))
            if layout.num_nodes != self.num_vars:
                raise ValueError(f"tree has {layout.num_nodes} nodes, circuit has {self.num_vars} variables")
            self._layout_cache = (key, layout, self._level_plan(layout))
        return self._layout_cache[1]

    @staticmethod
    def _level_plan(layout: TreeLayout) -> list[tuple[Tensor, Tensor | None]]:
        """Per depth: node indices and, for each node, its parent's position in the layer above."""
        plan = []
        for h, nodes in enumerate(layout.levels):
            if h == 0:
                plan.append((torch.from_numpy(nodes.copy()), None))
                continue
            above = {int(v): j for j, v in enumerate(layout.levels[h - 1].tolist())}
            local = np.array([above[int(layout.parent[v])] for v in nodes], dtype=np.int64)
            plan.append((torch.from_numpy(nodes.copy()), torch.from_numpy(local)))
        return plan

    def set_structure(self, parent: np.ndarray) -> None:
        """Replace the tree (a ``parent`` array, ``-1`` at the root); parameters are kept."""
        p = torch.from_numpy(np.asarray(parent, dtype=np.int64).copy())
        if p.shape != (self.num_vars,):
            raise ValueError(f"parent must have shape ({self.num_vars},)")
        self.parent.copy_(p)
        self.layout

    @property
    def emit_index(self) -> Tensor:
        """Emission group of each variable: int64 ``[D]``."""
        return self._emit_group_of.clone()

    def num_parameters(self) -> int:
        """Free parameters: ``k - 1`` + ``(D - 1) k (k - 1)`` + ``G k (K - 1)``."""
        k, kk, g = self.hidden, self.num_categories, self.emit.shape[0]
        return (k - 1) + (self.num_vars - 1) * k * (k - 1) + g * k * (kk - 1)

    # -- evaluation ---------------------------------------------------------------------------
    def _check(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        x = torch.as_tensor(x)
        if x.dim() != 2 or x.shape[1] != self.num_vars:
            raise ValueError(f"expected x [B, {self.num_vars}], got shape {tuple(x.shape)}")
        x = x.to(torch.int64)
        if mask is not None:
            mask = torch.as_tensor(mask, dtype=torch.bool)
            if mask.shape != x.shape:
                raise ValueError("mask must have the shape of x")
            x = torch.where(mask, x, torch.zeros_like(x))  # marginalized entries may hold anything
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.num_categories):
            raise ValueError(f"values must lie in [0, {self.num_categories})")
        return x, mask

    def _forward(self, x: Tensor, mask: Tensor | None, log_prior: Tensor, log_trans: Tensor,
                 log_emit: Tensor) -> Tensor:
        """``ln p(x_observed)`` per row ``[B]`` from log-parameters (differentiable)."""
        self.layout
        plan = self._layout_cache[2]
        d, k, kk = self.num_vars, self.hidden, self.num_categories
        emit_t = log_emit.transpose(1, 2)  # [G, K, k]
        if emit_t.shape[0] == 1:
            leaf = emit_t[0][x]  # [B, D, k]
        else:
            leaf = emit_t[self._emit_group_of.unsqueeze(0), x]  # [B, D, k]
        if mask is not None:
            leaf = leaf.masked_fill(~mask.unsqueeze(-1), 0.0)
        carry: Tensor | None = None
        for h in range(len(plan) - 1, -1, -1):
            nodes, up = plan[h]
            lam = leaf[:, nodes]  # [B, n, k]: log lambda of this layer
            if carry is not None:
                lam = lam + carry
            if h == 0:
                return torch.logsumexp(lam[:, 0] + log_prior, dim=-1)
            peak = lam.amax(dim=-1, keepdim=True).detach()
            msg = torch.einsum("bnj,nij->bni", (lam - peak).exp(), log_trans[nodes].exp())
            log_msg = msg.log() + peak  # [B, n, k] messages to the parents (indexed by parent state)
            n_above = plan[h - 1][0].numel()
            carry = torch.zeros(x.shape[0], n_above, k, dtype=lam.dtype).index_add(1, up, log_msg)
        raise AssertionError("unreachable")

    def log_prob(self, x: Tensor, mask: Tensor | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """Natural-log probability of each row of ``x [B, D]``; ``mask [B, D]`` (True = observed)
        marginalizes the other entries. Returns ``[B]`` in ``dtype`` (parameters renormalized in
        ``dtype``, so float64 results are normalized to float64 accuracy)."""
        x, mask = self._check(x, mask)
        norm = lambda t: (t.to(dtype) / t.to(dtype).sum(-1, keepdim=True)).log()  # noqa: E731
        with torch.no_grad():
            return self._forward(x, mask, norm(self.prior), norm(self.trans), norm(self.emit))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Alias of :meth:`log_prob` (float32)."""
        return self.log_prob(x, mask)

    def bits_per_dim(self, x: Tensor, batch_size: int = 4096) -> float:
        """Average ``-log2 p(x) / D`` over the rows of ``x [N, D]`` (fully observed)."""
        total = 0.0
        for start in range(0, x.shape[0], batch_size):
            total += float(-self.log_prob(x[start : start + batch_size], dtype=torch.float64).sum())
        return total / (x.shape[0] * self.num_vars * np.log(2.0))

    def em_statistics(self, x: Tensor, mask: Tensor | None = None) -> EMStatistics:
        """Expected parameter counts for the batch ``x [B, D]`` (the E step), via circuit flows."""
        x, mask = self._check(x, mask)
        log_prior = self.prior.log().requires_grad_()
        log_trans = self.trans.log().requires_grad_()
        log_emit = self.emit.log().requires_grad_()
        with torch.enable_grad():
            ll = self._forward(x, mask, log_prior, log_trans, log_emit).sum()
            ll.backward()
        return EMStatistics(ll.detach(), log_prior.grad, log_trans.grad, log_emit.grad, int(x.shape[0]))

    # -- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Ancestral samples ``[n, D]`` (hidden states top-down, then emissions)."""
        layout = self.layout
        z = torch.zeros(n, self.num_vars, dtype=torch.int64)
        z[:, layout.root] = torch.multinomial(self.prior.expand(n, -1), 1, generator=generator)[:, 0]
        for v in layout.order.tolist():
            if v != layout.root:
                rows = self.trans[v][z[:, int(layout.parent[v])]]
                z[:, v] = torch.multinomial(rows, 1, generator=generator)[:, 0]
        g = self.emit_index
        probs = self.emit[g.unsqueeze(0).expand(n, -1), z]  # [n, D, K]
        return torch.multinomial(probs.reshape(-1, self.num_categories), 1, generator=generator).reshape(n, -1)
