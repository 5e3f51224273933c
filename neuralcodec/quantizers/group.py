"""Group-residual VQ (HiFi-Codec, Yang et al. 2023): channels split into G groups, one RVQ each.

Codes are ordered stage-major, ``q = stage * G + group``, so the first ``k * G`` codebooks are a
complete lower-bitrate stream: ``encode(z, num_codebooks=k * G)`` keeps ``k`` stages in every group.
Quantizer dropout draws one ``k`` per batch item, shared by all groups.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
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
from neuralcodec.quantizers.residual import ResidualVQ, sample_stage_counts


class GroupResidualVQ(Quantizer):
    """``groups`` independent ``ResidualVQ`` of ``num_codebooks`` stages on ``dim / groups`` channels.

    Codes ``[B, groups * num_codebooks, ...]`` (stage-major). Keyword arguments other than
    ``dropout`` / ``min_codebooks`` go to each group's ``ResidualVQ``.
    """

    def __init__(
        self,
        dim: int,
        groups: int = 2,
        num_codebooks: int = 4,
        codebook_size: int | Sequence[int] = 1024,
        *,
        dropout: float = 0.0,
        min_codebooks: int = 1,
        **rvq_kwargs: object,
    ) -> None:
        super().__init__()
        if groups < 1 or dim % groups:
            raise ValueError(f"dim {dim} is not divisible into {groups} groups")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be in [0, 1], got {dropout}")
        if not 1 <= min_codebooks <= num_codebooks:
            raise ValueError(f"min_codebooks must be in [1, {num_codebooks}], got {min_codebooks}")
        self.dim = dim
        self.groups = groups
        self.stages_per_group = num_codebooks
        self.dropout = dropout
        self.min_codebooks = min_codebooks
        self.rvqs = nn.ModuleList(
            ResidualVQ(dim // groups, num_codebooks, codebook_size, **rvq_kwargs)  # type: ignore[arg-type]
            for _ in range(groups)
        )

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        per_group = [rvq.codebook_sizes for rvq in self.rvqs]
        return tuple(per_group[g][s] for s in range(self.stages_per_group) for g in range(self.groups))

    @property
    def codebook_step(self) -> int:
        return self.groups

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, groups={self.groups}, stages_per_group={self.stages_per_group}, "
            f"dropout={self.dropout}, min_codebooks={self.min_codebooks}"
        )

    def _row_stage_counts(self, lead: tuple[int, ...], device: torch.device) -> Tensor | None:
        n = self.stages_per_group
        if not self.training or self.dropout <= 0 or n <= self.min_codebooks:
            return None
        per_item = sample_stage_counts(lead[0], n, self.dropout, self.min_codebooks, device)
        positions = 1
        for s in lead[1:]:
            positions *= s
        return per_item.repeat_interleave(positions)

    def _split(self, rows: Tensor) -> tuple[Tensor, ...]:
        return rows.chunk(self.groups, dim=1)

    def _stages_for(self, num_codebooks: int | None) -> int:
        return check_num_codebooks(num_codebooks, self.num_codebooks, self.groups) // self.groups

    def forward(self, z: Tensor) -> QuantizerOutput:
        """``z`` ``[B, D, ...]`` -> quantized (dtype of ``z``), codes ``[B, G * n, ...]``."""
        with full_precision(z.device):
            rows, lead = to_rows(z, self.dim)
            row_stages = self._row_stage_counts(lead, z.device)
            outs, codes, metrics = [], [], {}
            loss = rows.new_zeros(())
            for g, (rvq, part) in enumerate(zip(self.rvqs, self._split(rows), strict=True)):
                out, c, group_loss, results = rvq.forward_rows(part, row_stages)
                outs.append(out)
                codes.append(c)
                loss = loss + group_loss
                for s, res in enumerate(results):
                    metrics.update(usage_metrics(res.counts, s * self.groups + g, res.dead))
            all_codes = rearrange(torch.stack(codes), "g s n -> (s g) n")
            quantized = from_rows(torch.cat(outs, dim=1), lead).to(z.dtype)
            return QuantizerOutput(quantized, rows_to_codes(all_codes, lead), loss, metrics)

    @torch.no_grad()
    def encode(self, z: Tensor, num_codebooks: int | None = None) -> Tensor:
        """``[B, D, ...]`` -> codes ``[B, k, ...]``; ``k`` must be a multiple of ``groups``."""
        stages = self._stages_for(num_codebooks)
        with full_precision(z.device):
            rows, lead = to_rows(z, self.dim)
            codes = [rvq.encode_rows(part, stages) for rvq, part in zip(self.rvqs, self._split(rows), strict=True)]
            return rows_to_codes(rearrange(torch.stack(codes), "g s n -> (s g) n"), lead)

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, k, ...]`` (``k`` a multiple of ``groups``) -> fp32 latent ``[B, D, ...]``."""
        with full_precision(codes.device):
            flat, lead = codes_to_rows(codes, self.num_codebooks)
            self._stages_for(flat.shape[0])
            check_code_range(flat, self.codebook_sizes, allow_dropped=True)
            per_group = rearrange(flat, "(s g) n -> g s n", g=self.groups)
            outs = [rvq.decode_rows(c) for rvq, c in zip(self.rvqs, per_group, strict=True)]
            return from_rows(torch.cat(outs, dim=1), lead)
