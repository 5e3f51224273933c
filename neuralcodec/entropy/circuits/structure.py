"""Chow-Liu tree structure: pairwise mutual information -> maximum spanning tree -> rooted layout.

The Hidden Chow-Liu Tree (HCLT) attaches one hidden variable to every observed variable and
connects the hidden variables along the Chow-Liu tree of the observed ones (the spanning tree
with the largest total pairwise mutual information). This module learns that tree from data and
derives the two schedules the circuit needs:

* ``levels`` (bottom-up layers of nodes at equal depth) for the vectorized forward pass, and
* ``events`` (a depth-first walk) for coding, where each variable's conditional is computed from
  the messages of the variables already coded without revisiting the rest of the tree.

Everything here is integer bookkeeping with deterministic tie-breaking (lowest index first), so a
tree stored as a ``parent`` array always yields the same schedules.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

#: Event kinds of the depth-first coding walk (see :attr:`TreeLayout.events`).
ENTER, EXIT = 0, 1


def pairwise_mutual_information(
    data: torch.Tensor, num_categories: int, bins: int | None = None, max_samples: int = 20000
) -> np.ndarray:
    """Mutual information (nats) between every pair of columns of ``data [N, D]`` (ints in ``[0, K)``).

    Values are first grouped into ``bins`` equal-width bins (default: all ``K`` categories, at most
    16) so that the joint histograms of all pairs come from one ``[D * bins]^2`` matrix product.
    At most ``max_samples`` rows (the first ones) are used. Returns float64 ``[D, D]`` with a
    zero diagonal.
    """
    x = torch.as_tensor(data)
    if x.dim() != 2:
        raise ValueError(f"data must be [N, D], got shape {tuple(x.shape)}")
    x = x[:max_samples].to(torch.int64)
    n, d = x.shape
    if n == 0:
        raise ValueError("need at least one sample to estimate mutual information")
    nb = min(num_categories, 16) if bins is None else int(bins)
    if nb < 2:
        raise ValueError("need at least 2 bins")
    binned = (x * nb) // num_categories  # [N, D] in [0, nb)
    onehot = torch.zeros(n, d * nb, dtype=torch.float32)
    cols = binned + torch.arange(d).unsqueeze(0) * nb
    onehot.scatter_(1, cols, 1.0)
    # float32 sums of 0/1 are exact below 2**24 samples.
    joint = (onehot.T @ onehot).to(torch.float64).reshape(d, nb, d, nb).permute(0, 2, 1, 3) / n
    marg = onehot.sum(0).to(torch.float64).reshape(d, nb) / n  # [D, nb]
    outer = marg[:, None, :, None] * marg[None, :, None, :]  # [D, D, nb, nb]
    ratio = torch.where(joint > 0, joint / outer.clamp_min(1e-300), torch.ones_like(joint))
    mi = (joint * ratio.log()).sum(dim=(2, 3)).numpy()
    np.fill_diagonal(mi, 0.0)
    return np.maximum(mi, 0.0)


def maximum_spanning_tree(weights: np.ndarray) -> np.ndarray:
    """Prim's algorithm on a dense symmetric ``[D, D]`` weight matrix; returns undirected edges ``[D-1, 2]``.

    Starts from node 0; ties go to the lowest node index, so the result is deterministic.
    """
    w = np.asarray(weights, dtype=np.float64)
    d = w.shape[0]
    if w.shape != (d, d):
        raise ValueError("weights must be a square matrix")
    in_tree = np.zeros(d, dtype=bool)
    in_tree[0] = True
    best = w[0].copy()
    link = np.zeros(d, dtype=np.int64)
    edges = []
    for _ in range(d - 1):
        cand = np.where(in_tree, -np.inf, best)
        v = int(np.argmax(cand))  # first maximum
        edges.append((int(link[v]), v))
        in_tree[v] = True
        better = (~in_tree) & (w[v] > best)
        best = np.where(better, w[v], best)
        link = np.where(better, v, link)
    return np.array(edges, dtype=np.int64).reshape(-1, 2)


def _adjacency(edges: np.ndarray, d: int) -> list[list[int]]:
    adj: list[list[int]] = [[] for _ in range(d)]
    for a, b in np.asarray(edges, dtype=np.int64).reshape(-1, 2).tolist():
        adj[a].append(b)
        adj[b].append(a)
    return [sorted(n) for n in adj]


def _bfs_dist(adj: list[list[int]], src: int) -> np.ndarray:
    dist = np.full(len(adj), -1, dtype=np.int64)
    dist[src] = 0
    queue = [src]
    for u in queue:
        for v in adj[u]:
            if dist[v] < 0:
                dist[v] = dist[u] + 1
                queue.append(v)
    return dist


def root_tree(edges: np.ndarray, num_nodes: int, root: int | None = None) -> np.ndarray:
    """Orient an undirected tree: int64 ``parent [D]`` with ``-1`` at the root.

    Default root: the tree's center (smallest eccentricity, lowest index on ties), which
    minimizes the number of layers of the forward pass.
    """
    adj = _adjacency(edges, num_nodes)
    if root is None:
        ecc = [int(_bfs_dist(adj, s).max()) for s in range(num_nodes)]
        root = int(np.argmin(ecc))
    dist = _bfs_dist(adj, root)
    if np.any(dist < 0):
        raise ValueError("edges do not connect all nodes")
    parent = np.full(num_nodes, -1, dtype=np.int64)
    for v in range(num_nodes):
        if v != root:
            parent[v] = next(u for u in adj[v] if dist[u] == dist[v] - 1)
    return parent


def chow_liu_parent(
    data: torch.Tensor, num_categories: int, bins: int | None = None, max_samples: int = 20000
) -> np.ndarray:
    """The Chow-Liu tree of ``data [N, D]`` rooted at its center, as a ``parent`` array."""
    mi = pairwise_mutual_information(data, num_categories, bins=bins, max_samples=max_samples)
    return root_tree(maximum_spanning_tree(mi), mi.shape[0])


def chain_parent(num_nodes: int) -> np.ndarray:
    """A chain ``0 <- 1 <- ... <- D-1`` (placeholder structure before fitting)."""
    return np.arange(-1, num_nodes - 1, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class TreeLayout:
    """Schedules derived from a rooted tree given as ``parent [D]`` (``-1`` marks the root)."""

    parent: np.ndarray

    def __post_init__(self) -> None:
        p = np.asarray(self.parent, dtype=np.int64).copy()
        p.setflags(write=False)
        object.__setattr__(self, "parent", p)
        d = p.size
        if d < 1:
            raise ValueError("a tree needs at least one node")
        roots = np.flatnonzero(p < 0)
        if roots.size != 1 or np.any(p >= d) or np.any(p < -1):
            raise ValueError("parent must hold exactly one -1 (the root) and indices in [0, D)")
        if np.any(p == np.arange(d)):
            raise ValueError("a node cannot be its own parent")
        if np.any(self.depth < 0):
            raise ValueError("parent array contains a cycle")

    @property
    def num_nodes(self) -> int:
        return int(self.parent.size)

    @cached_property
    def root(self) -> int:
        return int(np.flatnonzero(self.parent < 0)[0])

    @cached_property
    def children(self) -> list[list[int]]:
        """Children of each node in ascending index order."""
        out: list[list[int]] = [[] for _ in range(self.num_nodes)]
        for v, u in enumerate(self.parent.tolist()):
            if u >= 0:
                out[u].append(v)
        return out

    @cached_property
    def depth(self) -> np.ndarray:
        """Depth of each node (root: 0); -1 for nodes not reachable from the root (a cycle)."""
        depth = np.full(self.num_nodes, -1, dtype=np.int64)
        root = int(np.flatnonzero(self.parent < 0)[0])
        depth[root] = 0
        stack = [root]
        kids: list[list[int]] = [[] for _ in range(self.num_nodes)]
        for v, u in enumerate(self.parent.tolist()):
            if u >= 0:
                kids[u].append(v)
        while stack:
            u = stack.pop()
            for v in kids[u]:
                depth[v] = depth[u] + 1
                stack.append(v)
        return depth

    @cached_property
    def levels(self) -> list[np.ndarray]:
        """Nodes grouped by depth, ``levels[0] = [root]``; each level sorted ascending."""
        return [np.flatnonzero(self.depth == h) for h in range(int(self.depth.max()) + 1)]

    @cached_property
    def events(self) -> list[tuple[int, int]]:
        """Depth-first walk as ``(ENTER | EXIT, node)``; children visited in ascending order.

        Variables are coded at ``ENTER`` (pre-order); ``EXIT`` folds a finished subtree into its
        parent. The root is never exited.
        """
        out: list[tuple[int, int]] = []
        stack: list[tuple[int, int]] = [(ENTER, self.root)]
        kids = self.children
        while stack:
            kind, v = stack.pop()
            out.append((kind, v))
            if kind == ENTER:
                if v != self.root:
                    stack.append((EXIT, v))
                for c in reversed(kids[v]):
                    stack.append((ENTER, c))
        return out

    @cached_property
    def order(self) -> np.ndarray:
        """The coding order of the variables (pre-order of the walk)."""
        return np.array([v for kind, v in self.events if kind == ENTER], dtype=np.int64)
