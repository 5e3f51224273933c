"""Nearest-codeword search in fp32, chunked over rows to bound memory.

argmin_k ||x - e_k||^2 = argmin_k (||e_k||^2 - 2 x.e_k): the ||x||^2 term is constant per row and
is dropped, so one ``addmm`` per chunk produces the scores. Ties resolve to the lowest index
(``torch.argmin`` returns the first minimum), so results are deterministic.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Upper bound on the number of score entries held at once (fp32: 4 bytes each).
SCORE_BUDGET = 1 << 22


def chunk_rows(num_codes: int, budget: int = SCORE_BUDGET) -> int:
    """Rows per chunk so that a ``[rows, num_codes]`` score matrix stays within ``budget`` entries."""
    return max(1, budget // max(1, num_codes))


def nearest(x: Tensor, embed: Tensor, embed_sq: Tensor | None = None, budget: int = SCORE_BUDGET) -> Tensor:
    """Index of the nearest row of ``embed`` ``[K, d]`` for each row of ``x`` ``[N, d]`` -> int64 ``[N]``."""
    x = x.float()
    embed = embed.float()
    if embed_sq is None:
        embed_sq = embed.pow(2).sum(dim=1)
    step = chunk_rows(embed.shape[0], budget)
    et = embed.t()
    if x.shape[0] <= step:
        return torch.addmm(embed_sq, x, et, beta=1.0, alpha=-2.0).argmin(dim=1)
    out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    for start in range(0, x.shape[0], step):
        scores = torch.addmm(embed_sq, x[start : start + step], et, beta=1.0, alpha=-2.0)
        torch.argmin(scores, dim=1, out=out[start : start + step])
    return out
