"""Optional synchronisation of codebook statistics across data-parallel processes.

Quantizers never start processes; they only use a process group that the trainer (Lightning,
torchrun) has already initialised. ``sync=None`` means "sync when a group with more than one
process exists", ``False`` never syncs, ``True`` requires a group.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default group, ``(0, 1)`` when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def resolve_sync(sync: bool | None) -> bool:
    """Decide, at call time, whether statistics are all-reduced."""
    _, size = world()
    if sync is None:
        return size > 1
    if sync and not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("quantizer sync=True needs an initialised torch.distributed process group")
    return bool(sync)


def all_reduce_sum_(t: Tensor, enabled: bool) -> Tensor:
    """Sum ``t`` in place over all processes when ``enabled``; returns ``t``."""
    if enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def share_rows(pool: Tensor, count: int, enabled: bool) -> Tensor:
    """``count`` distinct random rows of ``pool`` ``[N, d]`` identical on every process.

    Without sync: a random subset of the local rows (without replacement, repeated only when
    ``N < count``). With sync: output row ``j`` comes from process ``j % world_size``, and the
    pieces are combined by one all-reduce, so every process ends with the same rows.
    """
    n = pool.shape[0]
    if n == 0 and not enabled:
        raise ValueError("cannot sample rows from an empty batch")
    if n == 0:  # still join the all-reduce; this process contributes zeros
        out = pool.new_zeros(count, pool.shape[1])
    elif n >= count:
        out = pool[torch.randperm(n, device=pool.device)[:count]]
    else:
        out = pool[torch.randint(n, (count,), device=pool.device)]
    if not enabled:
        return out
    rank, size = world()
    mine = (torch.arange(count, device=pool.device) % size == rank).unsqueeze(1)
    out = torch.where(mine, out, torch.zeros_like(out))
    return all_reduce_sum_(out, True)
