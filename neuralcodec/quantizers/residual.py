"""Residual quantization (SoundStream / EnCodec / DAC): stage i quantizes what stages < i missed.

``ResidualQuantizer`` is the generic stack (any stage with ``quantize_rows`` / ``encode_rows`` /
``decode_rows``); ``ResidualVQ`` stacks ``VectorQuantizer`` stages. ``GroupResidualVQ`` lives in
``group.py`` and ``ResidualFSQ`` in ``fsq.py``.

Quantizer dropout: in training, each batch item independently keeps only its first ``k`` stages,
``k`` uniform in ``[min_codebooks, n]`` with probability ``dropout``, else all ``n``. Dropped
stages neither change that item's output nor enter any statistic (EMA, k-means, dead codes,
loss, metrics), and their codes are ``-1`` (``decode`` treats ``-1`` as "stage absent"). At
inference ``encode(z, num_codebooks=k)`` gives the lower bitrate.

Gradient path (as in DAC): ``residual <- residual - out_i`` without detaching, so with
straight-through the summed output has an identity Jacobian w.r.t. ``z`` whatever ``k`` is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from neuralcodec.precision import full_precision
from neuralcodec.quantizers.base import (
    Quantizer,
    QuantizerOutput,
    check_code_range,
    check_num_codebooks,
    codes_to_rows,
    from_rows,
    rows_to_codes,
    to_rows,
)
from neuralcodec.quantizers.metrics import usage_metrics
from neuralcodec.quantizers.vq import Distance, StageResult, VectorQuantizer


def sample_stage_counts(batch: int, n: int, dropout: float, min_codebooks: int, device: torch.device) -> Tensor:
    """Per-item number of active stages ``[B]``: uniform in ``[min_codebooks, n]`` w.p. ``dropout``."""
    full = torch.full((batch,), n, dtype=torch.long, device=device)
    if dropout <= 0 or n <= min_codebooks:
        return full
    k = torch.randint(min_codebooks, n + 1, (batch,), device=device)
    return torch.where(torch.rand(batch, device=device) < dropout, k, full)


class ResidualQuantizer(Quantizer):
    """A stack of stages applied to successive residuals; codes ``[B, n, ...]``.

    Subclasses may override ``latent_in`` / ``latent_out`` to wrap the whole stack (e.g. a shared
    projection and bound, as ``ResidualFSQ`` does).
    """

    def __init__(
        self,
        dim: int,
        stages: Sequence[nn.Module],
        *,
        dropout: float = 0.0,
        min_codebooks: int = 1,
    ) -> None:
        super().__init__()
        if len(stages) < 1:
            raise ValueError("a residual quantizer needs at least one stage")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be in [0, 1], got {dropout}")
        if not 1 <= min_codebooks <= len(stages):
            raise ValueError(f"min_codebooks must be in [1, {len(stages)}], got {min_codebooks}")
        self.dim = dim
        self.stages = nn.ModuleList(stages)
        self.dropout = dropout
        self.min_codebooks = min_codebooks

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return tuple(size for stage in self.stages for size in stage.codebook_sizes)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, stages={len(self.stages)}, dropout={self.dropout}, min_codebooks={self.min_codebooks}"

    # ----------------------------------------------------------------- hooks for subclasses
    def latent_in(self, z: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        """Latent ``[B, D, ...]`` -> rows in the stages' space ``[N, d]`` plus ``(B, ...)``."""
        return to_rows(z, self.dim)

    def latent_out(self, rows: Tensor, lead: tuple[int, ...]) -> Tensor:
        """Summed stage outputs ``[N, d]`` -> latent ``[B, D, ...]``."""
        return from_rows(rows, lead)

    # ----------------------------------------------------------------- rows level
    def forward_rows(self, rows: Tensor, row_stages: Tensor | None) -> tuple[Tensor, Tensor, Tensor, list[StageResult]]:
        """Quantize rows ``[N, d]`` (stage space); ``row_stages`` ``[N]`` = active stages per row (None: all).

        Returns ``(quantized rows [N, d], codes [n, N], loss, per-stage results)``.
        """
        residual = rows
        total: Tensor | None = None
        loss = residual.new_zeros(())
        results: list[StageResult] = []
        codes = []
        last = len(self.stages) - 1
        for i, stage in enumerate(self.stages):
            weight = None if row_stages is None else (row_stages > i).float()
            res = stage.quantize_rows(residual, weight)
            if weight is None:
                contribution = res.out
                codes.append(res.codes)
            else:
                contribution = res.out * weight.unsqueeze(1)
                codes.append(torch.where(weight > 0, res.codes, torch.full_like(res.codes, -1)))
            total = contribution if total is None else total + contribution
            if i < last:
                residual = residual - contribution
            loss = loss + res.loss
            results.append(res)
        assert total is not None
        return total, torch.stack(codes), loss, results

    def encode_rows(self, rows: Tensor, num_stages: int) -> Tensor:
        """Rows ``[N, d]`` (stage space) -> codes ``[num_stages, N]``."""
        residual = rows
        codes = []
        for i, stage in enumerate(self.stages[:num_stages]):
            c = stage.encode_rows(residual)
            if i < num_stages - 1:
                residual = residual - stage.decode_rows(c)
            codes.append(c)
        return torch.stack(codes)

    def decode_rows(self, codes: Tensor) -> Tensor:
        """Codes ``[k, N]`` (``-1`` = stage absent) -> rows ``[N, d]`` (stage space)."""
        total: Tensor | None = None
        for stage, c in zip(self.stages, codes, strict=False):  # codes may cover fewer stages
            valid = c >= 0
            out = stage.decode_rows(c.clamp_min(0))
            out = torch.where(valid.unsqueeze(1), out, torch.zeros_like(out))
            total = out if total is None else total + out
        assert total is not None
        return total

    def row_stage_counts(self, lead: tuple[int, ...], device: torch.device) -> Tensor | None:
        """Per-row active stage count for this training batch, or None when nothing is dropped."""
        if not self.training or self.dropout <= 0 or len(self.stages) <= self.min_codebooks:
            return None
        per_item = sample_stage_counts(lead[0], len(self.stages), self.dropout, self.min_codebooks, device)
        positions = 1
        for s in lead[1:]:
            positions *= s
        return per_item.repeat_interleave(positions)

    # ----------------------------------------------------------------- public API
    def forward(self, z: Tensor) -> QuantizerOutput:
        """``z`` ``[B, D, ...]`` -> quantized (dtype of ``z``), codes ``[B, n, ...]`` (-1 = dropped)."""
        with full_precision(z.device):
            rows, lead = self.latent_in(z)
            out, codes, loss, results = self.forward_rows(rows, self.row_stage_counts(lead, z.device))
            metrics: dict[str, Tensor] = {}
            for i, res in enumerate(results):
                metrics.update(usage_metrics(res.counts, i, res.dead))
            quantized = self.latent_out(out, lead).to(z.dtype)
            return QuantizerOutput(quantized, rows_to_codes(codes, lead), loss, metrics)

    @torch.no_grad()
    def encode(self, z: Tensor, num_codebooks: int | None = None) -> Tensor:
        """``[B, D, ...]`` -> codes ``[B, k, ...]`` from the first ``k = num_codebooks`` stages."""
        k = check_num_codebooks(num_codebooks, len(self.stages))
        with full_precision(z.device):
            rows, lead = self.latent_in(z)
            return rows_to_codes(self.encode_rows(rows, k), lead)

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, k, ...]`` (``k <= n``; ``-1`` = stage absent) -> fp32 latent ``[B, D, ...]``."""
        with full_precision(codes.device):
            flat, lead = codes_to_rows(codes, len(self.stages))
            check_code_range(flat, self.codebook_sizes, allow_dropped=True)
            return self.latent_out(self.decode_rows(flat), lead)


class ResidualVQ(ResidualQuantizer):
    """``num_codebooks`` ``VectorQuantizer`` stages on successive residuals; codes ``[B, n, ...]``.

    ``codebook_size`` is one size for all stages or one per stage. Remaining keyword arguments
    (``codebook_dim``, ``distance``, ``decay``, ``kmeans_init``, ``gradient``, ...) go to every stage.
    """

    def __init__(
        self,
        dim: int,
        num_codebooks: int = 8,
        codebook_size: int | Sequence[int] = 1024,
        *,
        dropout: float = 0.0,
        min_codebooks: int = 1,
        codebook_dim: int | None = None,
        distance: Distance = "l2",
        **stage_kwargs: object,
    ) -> None:
        sizes = [codebook_size] * num_codebooks if isinstance(codebook_size, int) else list(codebook_size)
        if len(sizes) != num_codebooks:
            raise ValueError(f"got {len(sizes)} codebook sizes for {num_codebooks} codebooks")
        stages = [
            VectorQuantizer(dim, size, codebook_dim=codebook_dim, distance=distance, **stage_kwargs)  # type: ignore[arg-type]
            for size in sizes
        ]
        super().__init__(dim, stages, dropout=dropout, min_codebooks=min_codebooks)
