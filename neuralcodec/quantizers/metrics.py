"""Cheap per-codebook usage statistics for logging (no host synchronisation)."""

from __future__ import annotations

import torch
from torch import Tensor


def usage_metrics(counts: Tensor, index: int, dead: Tensor | None = None) -> dict[str, Tensor]:
    """Metrics for codebook ``index`` from its batch code counts ``[K]``.

    usage/i:      fraction of codes used at least once in the batch.
    perplexity/i: exp(entropy) of the batch code distribution (K when perfectly uniform).
    dead_codes/i: ``dead`` if given (e.g. from EMA usage), else codes unused in the batch.
    """
    counts = counts.detach().float()
    used = counts > 0
    total = counts.sum().clamp_min(1e-12)
    p = counts / total
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    if dead is None:
        dead = (~used).sum()
    return {
        f"usage/{index}": used.float().mean(),
        f"perplexity/{index}": entropy.exp(),
        f"dead_codes/{index}": dead.float(),
    }
