"""Lloyd's k-means used to initialise codebooks from the first training batches.

With ``sync`` the assignment statistics (counts and sums) are all-reduced every iteration and the
initial centroids are drawn jointly, so every data-parallel process ends with the same codebook.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from neuralcodec.quantizers.distributed import all_reduce_sum_, share_rows
from neuralcodec.quantizers.search import nearest


def cluster_stats(x: Tensor, codes: Tensor, num_codes: int, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-code counts ``[K]`` and sums ``[K, d]`` of rows ``x`` ``[N, d]`` assigned to ``codes`` ``[N]``.

    ``weight`` ``[N]`` (0/1) excludes rows without a host sync.
    """
    counts = torch.bincount(codes, weights=weight, minlength=num_codes).float()
    if weight is not None:
        x = x * weight.unsqueeze(1)
    sums = torch.zeros(num_codes, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, codes, x)
    return counts, sums


def kmeans(
    x: Tensor, num_codes: int, iters: int = 10, cosine: bool = False, sync: bool = False
) -> tuple[Tensor, Tensor]:
    """Cluster rows ``x`` ``[N, d]`` into ``num_codes`` centroids -> ``(centroids [K, d], counts [K])``.

    Empty clusters keep their previous centroid; ``counts`` are from the final assignment.
    """
    x = x.float()
    if cosine:
        x = F.normalize(x, dim=1)
    means = share_rows(x, num_codes, sync)
    counts = torch.zeros(num_codes, device=x.device)
    for _ in range(max(1, iters)):
        codes = nearest(x, means)
        counts, sums = cluster_stats(x, codes, num_codes)
        both = all_reduce_sum_(torch.cat([counts.unsqueeze(1), sums], dim=1), sync)
        counts, sums = both[:, 0], both[:, 1:]
        new = sums / counts.clamp_min(1.0).unsqueeze(1)
        if cosine:
            new = F.normalize(new, dim=1)
        means = torch.where((counts > 0).unsqueeze(1), new, means)
    return means, counts
