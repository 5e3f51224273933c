"""Single-codebook vector quantizer (VQ-VAE) with EMA codebooks and factorised codes.

Per position: ``x`` (``dim``) -> optional linear projection to ``codebook_dim`` (factorised codes,
as in ViT-VQGAN / DAC) -> optional L2 normalisation (cosine distance) -> nearest code -> gradient
estimator (straight-through or rotation trick) -> projection back to ``dim``.

Loss = ``commitment_weight * mean||x_e - sg(q)||^2`` (+ ``codebook_weight * mean||sg(x_e) - q||^2``
when the codebook is learned by gradient instead of EMA).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neuralcodec.precision import full_precision
from neuralcodec.quantizers.base import (
    Quantizer,
    QuantizerOutput,
    check_code_range,
    check_latent,
    check_num_codebooks,
    codes_to_rows,
    from_rows,
    rows_to_codes,
    to_rows,
)
from neuralcodec.quantizers.codebook import Codebook
from neuralcodec.quantizers.estimators import ESTIMATORS, apply_estimator
from neuralcodec.quantizers.metrics import usage_metrics
from neuralcodec.quantizers.projection import linear_fp32, project_in, project_out

Distance = Literal["l2", "cosine"]


@dataclass
class StageResult:
    """Rows-level result of one quantizer stage (used by the residual quantizers).

    out: ``[N, dim]`` fp32 quantized rows (value exactly ``decode_rows(codes)``), with gradient path.
    codes: int64 ``[N]``. loss: scalar. counts: batch code counts ``[K]``. dead: scalar or None.
    """

    out: Tensor
    codes: Tensor
    loss: Tensor
    counts: Tensor
    dead: Tensor | None


def weighted_mse(a: Tensor, b: Tensor, weight: Tensor | None) -> Tensor:
    """Mean squared error over rows ``[N, d]``, counting only rows with ``weight`` 1."""
    if weight is None:
        return F.mse_loss(a, b)
    err = (a - b).pow(2).sum(dim=1)
    return (err * weight).sum() / (weight.sum().clamp_min(1.0) * a.shape[1])


class VectorQuantizer(Quantizer):
    """One codebook of ``codebook_size`` vectors; codes ``[B, 1, ...]``.

    Args:
        dim: latent channels ``D``.
        codebook_size: number of codes ``K``.
        codebook_dim: if set and != ``dim``, codes live in this lower-dimensional space, with
            learned linear projections in and out (factorised codes).
        distance: ``"l2"`` or ``"cosine"`` (inputs and codes L2-normalised before the search).
        ema: EMA codebook updates (default); False learns the codebook by a codebook loss.
        decay: EMA decay of the codebook statistics.
        commitment_weight / codebook_weight: loss weights (codebook loss only when ``ema=False``).
        kmeans_init / kmeans_iters / kmeans_batches: k-means initialisation on the rows of the
            first ``kmeans_batches`` training batches.
        dead_code_threshold: a code is dead below this fraction of uniform usage (EMA).
        replace_dead_codes: revive dead codes from batch rows (training only).
        gradient: ``"ste"`` (straight-through) or ``"rotation"`` (rotation trick).
        sync: all-reduce statistics over the process group (None: when one exists).
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        codebook_dim: int | None = None,
        distance: Distance = "l2",
        ema: bool = True,
        decay: float = 0.99,
        commitment_weight: float = 0.25,
        codebook_weight: float = 1.0,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        kmeans_batches: int = 1,
        dead_code_threshold: float = 0.1,
        replace_dead_codes: bool = True,
        gradient: str = "ste",
        sync: bool | None = None,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if distance not in ("l2", "cosine"):
            raise ValueError(f"distance must be 'l2' or 'cosine', got {distance!r}")
        if gradient not in ESTIMATORS:
            raise ValueError(f"gradient must be one of {ESTIMATORS}, got {gradient!r}")
        self.dim = dim
        self.size = codebook_size
        self.codebook_dim = codebook_dim or dim
        self.distance = distance
        self.commitment_weight = commitment_weight
        self.codebook_weight = codebook_weight
        self.gradient = gradient
        if self.codebook_dim != dim:
            self.project_in: nn.Linear | None = nn.Linear(dim, self.codebook_dim)
            self.project_out: nn.Linear | None = nn.Linear(self.codebook_dim, dim)
        else:
            self.project_in = None
            self.project_out = None
        self.codebook = Codebook(
            codebook_size,
            self.codebook_dim,
            cosine=distance == "cosine",
            ema=ema,
            decay=decay,
            eps=eps,
            kmeans_init=kmeans_init,
            kmeans_iters=kmeans_iters,
            kmeans_batches=kmeans_batches,
            dead_code_threshold=dead_code_threshold,
            replace_dead_codes=replace_dead_codes,
            sync=sync,
        )

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return (self.size,)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, codebook_size={self.size}, codebook_dim={self.codebook_dim}, "
            f"distance={self.distance!r}, gradient={self.gradient!r}, commitment_weight={self.commitment_weight}"
        )

    # ----------------------------------------------------------------- rows level
    def _normalize(self, x_e: Tensor) -> Tensor:
        return F.normalize(x_e, dim=1) if self.distance == "cosine" else x_e

    def _embed_rows(self, x: Tensor) -> Tensor:
        return self._normalize(linear_fp32(x, self.project_in))

    def _embed_latent(self, z: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        """Latent ``[B, D, ...]`` -> code-space rows ``[N, codebook_dim]`` (no transpose of ``z`` if projected)."""
        if self.project_in is None:
            rows, lead = to_rows(z, self.dim)
            return self._normalize(rows), lead
        check_latent(z, self.dim)
        x_e, lead = project_in(z, self.project_in.weight, self.project_in.bias)
        return self._normalize(x_e), lead

    def _emit_latent(self, q: Tensor, lead: tuple[int, ...]) -> Tensor:
        """Code-space rows ``[N, codebook_dim]`` -> latent ``[B, D, ...]``."""
        if self.project_out is None:
            return from_rows(q, lead)
        return project_out(q, self.project_out.weight, self.project_out.bias, lead)

    def _quantize_embedded(self, x_e: Tensor, weight: Tensor | None) -> tuple[Tensor, StageResult]:
        """Code-space rows -> (code vectors with the gradient estimator applied, stage result without ``out``)."""
        book = self.codebook
        if self.training and book.kmeans_init and not book.is_initted():
            book.maybe_kmeans_init(x_e, weight)
        codes = book.search(x_e.detach())
        q = book.lookup(codes)
        loss = self.commitment_weight * weighted_mse(x_e, q.detach(), weight)
        if not book.ema:
            loss = loss + self.codebook_weight * weighted_mse(x_e.detach(), q, weight)
        if self.training and book.is_initted():
            counts, dead = book.update(x_e, codes, weight)
        else:
            with torch.no_grad():
                counts = torch.bincount(codes, weights=weight, minlength=self.size).float()
                dead = book.dead_mask().sum()
        q_est = apply_estimator(self.gradient, x_e, q)
        return q_est, StageResult(q_est, codes, loss, counts, dead)

    def encode_rows(self, x: Tensor) -> Tensor:
        """fp32 rows ``[N, dim]`` -> int64 codes ``[N]``."""
        return self.codebook.search(self._embed_rows(x))

    def decode_rows(self, codes: Tensor) -> Tensor:
        """int64 codes ``[N]`` -> fp32 rows ``[N, dim]``."""
        return linear_fp32(self.codebook.lookup(codes), self.project_out)

    def quantize_rows(self, x: Tensor, weight: Tensor | None = None) -> StageResult:
        """Quantize fp32 rows ``[N, dim]``; ``weight`` ``[N]`` (0/1) masks rows out of all statistics."""
        q_est, res = self._quantize_embedded(self._embed_rows(x), weight)
        res.out = linear_fp32(q_est, self.project_out)
        return res

    # ----------------------------------------------------------------- public API
    def forward(self, z: Tensor) -> QuantizerOutput:
        """``z`` ``[B, D, ...]`` -> quantized ``[B, D, ...]`` (dtype of ``z``), codes ``[B, 1, ...]``."""
        with full_precision(z.device):
            x_e, lead = self._embed_latent(z)
            q_est, res = self._quantize_embedded(x_e, None)
            quantized = self._emit_latent(q_est, lead).to(z.dtype)
            codes = rows_to_codes(res.codes.unsqueeze(0), lead)
            return QuantizerOutput(quantized, codes, res.loss, usage_metrics(res.counts, 0, res.dead))

    @torch.no_grad()
    def encode(self, z: Tensor, num_codebooks: int | None = None) -> Tensor:
        """``[B, D, ...]`` -> int64 codes ``[B, 1, ...]`` (``num_codebooks`` may only be None or 1)."""
        check_num_codebooks(num_codebooks, 1)
        with full_precision(z.device):
            x_e, lead = self._embed_latent(z)
            return rows_to_codes(self.codebook.search(x_e).unsqueeze(0), lead)

    def decode(self, codes: Tensor) -> Tensor:
        """int64 codes ``[B, 1, ...]`` -> fp32 latent ``[B, D, ...]``."""
        with full_precision(codes.device):
            flat, lead = codes_to_rows(codes, 1)
            check_code_range(flat, self.codebook_sizes, allow_dropped=False)
            return self._emit_latent(self.codebook.lookup(flat[0]), lead)
