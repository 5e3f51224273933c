"""Chow-Liu structure learning and the layer / coding schedules of a rooted tree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralcodec.entropy.circuits import TreeLayout, chow_liu_parent, maximum_spanning_tree, pairwise_mutual_information, root_tree
from neuralcodec.entropy.circuits.structure import ENTER, EXIT


def test_maximum_spanning_tree_picks_heaviest_edges():
    w = np.zeros((4, 4))
    for a, b, v in [(0, 1, 5.0), (1, 2, 4.0), (2, 3, 3.0), (0, 3, 1.0), (0, 2, 2.0)]:
        w[a, b] = w[b, a] = v
    edges = {tuple(sorted(e)) for e in maximum_spanning_tree(w).tolist()}
    assert edges == {(0, 1), (1, 2), (2, 3)}


def test_root_tree_uses_center_of_a_chain():
    edges = np.array([[i, i + 1] for i in range(6)])
    parent = root_tree(edges, 7)
    assert parent[3] == -1
    assert parent.tolist() == [1, 2, 3, -1, 3, 4, 5]
    assert len(TreeLayout(parent).levels) == 4


def test_mutual_information_of_copies_and_independent_columns():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 4, (20000, 1), generator=g)
    b = torch.randint(0, 4, (20000, 1), generator=g)
    mi = pairwise_mutual_information(torch.cat([a, a, b], 1), 4)
    assert mi[0, 1] == pytest.approx(np.log(4), abs=0.01)  # H(uniform over 4) in nats
    assert mi[0, 2] < 0.01 and mi[1, 2] < 0.01
    assert np.allclose(mi, mi.T)


def test_chow_liu_recovers_a_markov_chain():
    # x0 -> x1 -> x2 -> x3 with strong coupling, columns shuffled: the tree must follow the chain.
    g = torch.Generator().manual_seed(1)
    n = 20000
    cols = [torch.randint(0, 8, (n,), generator=g)]
    for _ in range(3):
        flip = torch.rand(n, generator=g) < 0.2
        cols.append(torch.where(flip, torch.randint(0, 8, (n,), generator=g), cols[-1]))
    perm = [2, 0, 3, 1]  # column j holds chain variable perm[j]
    data = torch.stack([cols[p] for p in perm], 1)
    parent = chow_liu_parent(data, 8)
    edges = {tuple(sorted((v, int(parent[v])))) for v in range(4) if parent[v] >= 0}
    pos = {p: j for j, p in enumerate(perm)}
    expected = {tuple(sorted((pos[i], pos[i + 1]))) for i in range(3)}
    assert edges == expected


def test_layout_events_are_a_depth_first_walk():
    parent = np.array([-1, 0, 0, 1, 1, 2])
    layout = TreeLayout(parent)
    assert layout.order.tolist() == [0, 1, 3, 4, 2, 5]
    entered: list[int] = []
    for kind, v in layout.events:
        if kind == ENTER:
            if v != 0:
                assert parent[v] in entered  # parent before child
            entered.append(v)
        else:
            assert kind == EXIT
    # every non-root node exits once, after all of its descendants entered
    exits = [v for kind, v in layout.events if kind == EXIT]
    assert sorted(exits) == [1, 2, 3, 4, 5]
    assert [lv.tolist() for lv in layout.levels] == [[0], [1, 2], [3, 4, 5]]


@pytest.mark.parametrize("parent", [[-1, -1, 0], [1, 2, 0], [0, -1, 1], [-1, 5, 0]])
def test_layout_rejects_invalid_trees(parent):
    with pytest.raises(ValueError):
        TreeLayout(np.array(parent))
