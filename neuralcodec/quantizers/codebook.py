"""Codebook state and its training-time updates: EMA, k-means initialisation, dead-code revival.

State is a fixed set of buffers (``embed``, ``cluster_size``, ``embed_sum``, ``initted``), so a
``state_dict`` round trip restores the codebook bit for bit. With ``ema=False`` the codebook is a
learnable ``nn.Parameter`` trained by a codebook loss; ``cluster_size`` is still tracked (for
dead-code revival and metrics) and ``embed_sum`` is absent.

EMA update (per training step, counts/sums all-reduced when syncing)::

    cluster_size <- decay * cluster_size + (1 - decay) * counts
    embed_sum    <- decay * embed_sum    + (1 - decay) * sums
    embed         = embed_sum / cluster_size            (codes never used keep their vector)

Both EMAs start at zero and share the same weights, so the ratio is unbiased from step one.

Dead codes: a code is dead when ``cluster_size < threshold * mean(cluster_size)``, i.e. below a
fraction of the usage it would have if all codes were used uniformly. Dead codes are replaced
*after* the EMA step by distinct random rows of the current batch, and their statistics are reset
consistently (``embed_sum = row * c``, ``cluster_size = c``, ``c = threshold * mean``) so the next
refresh ``embed_sum / cluster_size`` reproduces the new vector instead of undoing the revival.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neuralcodec.quantizers.base import KeepFP32
from neuralcodec.quantizers.distributed import all_reduce_sum_, resolve_sync, share_rows
from neuralcodec.quantizers.kmeans import cluster_stats, kmeans
from neuralcodec.quantizers.search import nearest


class Codebook(KeepFP32):
    """``num_codes`` vectors of size ``dim`` with EMA / k-means / dead-code machinery.

    Rows handed to this module are fp32 ``[N, dim]``, already L2-normalised when ``cosine``.
    The state stays fp32 even if the model is converted to bf16/fp16.
    """

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        cosine: bool = False,
        ema: bool = True,
        decay: float = 0.99,
        eps: float = 1e-5,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        kmeans_batches: int = 1,
        kmeans_max_rows: int = 131072,
        dead_code_threshold: float = 0.1,
        replace_dead_codes: bool = True,
        sync: bool | None = None,
    ) -> None:
        super().__init__()
        if num_codes < 2:
            raise ValueError(f"a codebook needs at least 2 codes, got {num_codes}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if dead_code_threshold < 0:
            raise ValueError(f"dead_code_threshold must be >= 0, got {dead_code_threshold}")
        if kmeans_batches < 1:
            raise ValueError(f"kmeans_batches must be >= 1, got {kmeans_batches}")
        self.num_codes = num_codes
        self.dim = dim
        self.cosine = cosine
        self.ema = ema
        self.decay = decay
        self.eps = eps
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        self.kmeans_batches = kmeans_batches
        self.kmeans_max_rows = kmeans_max_rows
        self.dead_code_threshold = dead_code_threshold
        self.replace_dead_codes = replace_dead_codes and dead_code_threshold > 0
        self.sync = sync

        init = torch.randn(num_codes, dim)
        if cosine:
            init = F.normalize(init, dim=1)
        if ema:
            self.register_buffer("embed", init)
            self.register_buffer("embed_sum", torch.zeros(num_codes, dim))
        else:
            self.embed = nn.Parameter(init)
        self.register_buffer("cluster_size", torch.zeros(num_codes))
        self.register_buffer("initted", torch.tensor(not kmeans_init))
        self._initted_cache: bool | None = None
        self._kmeans_pool: list[Tensor] = []

    # ----------------------------------------------------------------- lookup / search
    def weight(self) -> Tensor:
        """The codebook as fp32 ``[K, dim]`` (unit rows when ``cosine``; keeps the autograd link
        for learnable codebooks, whose raw parameter is free to drift off the sphere)."""
        embed = self.embed.float()
        if self.cosine and not self.ema:
            embed = F.normalize(embed, dim=1)
        return embed

    def search(self, x: Tensor) -> Tensor:
        """Nearest code for each row ``[N, dim]`` -> int64 ``[N]``."""
        return nearest(x, self.weight().detach())

    def lookup(self, codes: Tensor) -> Tensor:
        """Code vectors ``[N, dim]`` for int64 ``codes`` ``[N]``."""
        return F.embedding(codes, self.weight())

    # ----------------------------------------------------------------- training updates
    def is_initted(self) -> bool:
        """Whether k-means initialisation has happened (cached to avoid a host sync per step)."""
        if self._initted_cache is None:
            self._initted_cache = bool(self.initted)
        return self._initted_cache

    def dead_mask(self) -> Tensor:
        """``[K]`` bool: codes whose EMA usage is below ``threshold * mean usage``."""
        cs = self.cluster_size
        return cs < self.dead_code_threshold * cs.mean()

    @torch.no_grad()
    def maybe_kmeans_init(self, x: Tensor, weight: Tensor | None = None) -> bool:
        """Collect rows from the first ``kmeans_batches`` batches, then run k-means.

        Returns True when the codebook is ready (initialised now or earlier).
        """
        if self.is_initted():
            return True
        rows = x.detach().float() if weight is None else x.detach().float()[weight > 0]
        self._kmeans_pool.append(rows)
        if len(self._kmeans_pool) < self.kmeans_batches:
            return False
        pool = torch.cat(self._kmeans_pool)
        self._kmeans_pool = []
        if pool.shape[0] > self.kmeans_max_rows:
            pool = pool[torch.randperm(pool.shape[0], device=pool.device)[: self.kmeans_max_rows]]
        sync = resolve_sync(self.sync)
        means, counts = kmeans(pool, self.num_codes, self.kmeans_iters, cosine=self.cosine, sync=sync)
        counts = counts / self.kmeans_batches  # per-batch scale, like the (all-reduced) EMA counts
        self.embed.data.copy_(means)
        self.cluster_size.copy_(counts)
        if self.ema:
            self.embed_sum.copy_(means * counts.unsqueeze(1))
        self.initted.fill_(True)
        self._initted_cache = True
        return True

    @torch.no_grad()
    def update(self, x: Tensor, codes: Tensor, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One training step of statistics for rows ``x`` ``[N, dim]`` assigned to ``codes`` ``[N]``.

        ``weight`` ``[N]`` (0/1) excludes rows. Returns ``(local batch counts [K], dead codes found)``.
        """
        x = x.detach().float()
        sync = resolve_sync(self.sync)
        counts, sums = cluster_stats(x, codes, self.num_codes, weight)
        local_counts = counts
        if self.ema:
            both = all_reduce_sum_(torch.cat([counts.unsqueeze(1), sums], dim=1), sync)
            counts, sums = both[:, 0], both[:, 1:]
            self.cluster_size.lerp_(counts, 1.0 - self.decay)
            self.embed_sum.lerp_(sums, 1.0 - self.decay)
            self._refresh_embed()
        else:
            counts = all_reduce_sum_(counts.clone(), sync)
            self.cluster_size.lerp_(counts, 1.0 - self.decay)
        dead = self.dead_mask()
        num_dead = dead.sum()
        if self.replace_dead_codes:
            self._replace(dead, x, weight, sync)
        return local_counts, num_dead

    def _refresh_embed(self) -> None:
        cs = self.cluster_size.unsqueeze(1)
        fresh = self.embed_sum / cs.clamp_min(self.eps)
        if self.cosine:
            fresh = F.normalize(fresh, dim=1)
        self.embed.copy_(torch.where(cs > self.eps, fresh, self.embed))

    def _replace(self, dead: Tensor, x: Tensor, weight: Tensor | None, sync: bool) -> None:
        """Move dead codes onto distinct random rows of the batch (no host sync unless masked/synced)."""
        if weight is not None:
            x = x[weight > 0]
        if sync and not bool(dead.any()):  # identical on every process: cluster_size is synced
            return
        n, k = x.shape[0], self.num_codes
        if n == 0 and not sync:
            return
        if n >= k or sync:
            candidates = share_rows(x, k, sync)
            take = dead
        else:
            # Fewer rows than codes: revive at most n dead codes now, each from a different row.
            rank = torch.cumsum(dead.long(), 0) - 1
            take = dead & (rank < n)
            candidates = x[torch.randperm(n, device=x.device)[rank.clamp(0, n - 1)]]
        reset = self.dead_code_threshold * self.cluster_size.mean()
        take_col = take.unsqueeze(1)
        self.embed.data.copy_(torch.where(take_col, candidates, self.embed.data))
        self.cluster_size.copy_(torch.where(take, reset, self.cluster_size))
        if self.ema:
            self.embed_sum.copy_(torch.where(take_col, candidates * reset, self.embed_sum))

    # ----------------------------------------------------------------- state dict
    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._initted_cache = None
        self._kmeans_pool = []

    def extra_repr(self) -> str:
        return (
            f"num_codes={self.num_codes}, dim={self.dim}, cosine={self.cosine}, ema={self.ema}, "
            f"decay={self.decay}, kmeans_init={self.kmeans_init}, dead_code_threshold={self.dead_code_threshold}"
        )
