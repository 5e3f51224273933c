"""Finite scalar quantization (Mentzer et al. 2023) and its residual form.

Each of ``d = len(levels)`` dimensions is bounded and rounded to ``levels[i]`` integer values; the
codebook is implicit (their product) and the index is the mixed-radix number of the per-dimension
digits, ``index = sum(digit_i * prod(levels[:i]))``. All index arithmetic is int64 and all value
arithmetic fp32 with autocast off, so index <-> value mapping is exact.

Digits ``0 .. L-1`` correspond to the centred integers ``digit - L // 2`` and to the normalised
values ``(digit - L // 2) / (L // 2)`` in ``[-1, 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from neuralcodec.precision import full_precision
from neuralcodec.quantizers.base import (
    KeepFP32,
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
from neuralcodec.quantizers.estimators import apply_estimator
from neuralcodec.quantizers.metrics import usage_metrics
from neuralcodec.quantizers.projection import project_in, project_out
from neuralcodec.quantizers.residual import ResidualQuantizer
from neuralcodec.quantizers.vq import StageResult

Bound = Literal["tanh", "clamp"]


class FSQ(Quantizer, KeepFP32):
    """Finite scalar quantizer with per-dimension ``levels``; codes ``[B, 1, ...]``.

    Args:
        levels: number of values per dimension (each >= 2), e.g. ``(8, 5, 5, 5)`` (1000 codes).
        dim: latent channels; if != ``len(levels)``, learned linear projections map in and out.
        bound: ``"tanh"`` (the paper's smooth bound) or ``"clamp"`` (hard clamp of the
            normalised value to ``[-1, 1]``; used for residual stages).
        scale: fixed per-stage scale (residual FSQ): the stage quantizes ``x / scale`` and outputs
            ``value * scale``.
        eps: the paper's small widening of the tanh range so the extreme levels are reachable.
    """

    def __init__(
        self,
        levels: Sequence[int],
        dim: int | None = None,
        *,
        bound: Bound = "tanh",
        scale: float | Sequence[float] | Tensor = 1.0,
        eps: float = 1e-3,
    ) -> None:
        super().__init__()
        levels = [int(v) for v in levels]
        if not levels or min(levels) < 2:
            raise ValueError(f"FSQ levels must be a non-empty list of integers >= 2, got {levels}")
        if bound not in ("tanh", "clamp"):
            raise ValueError(f"bound must be 'tanh' or 'clamp', got {bound!r}")
        if bound == "tanh" and min(levels) < 3:
            # the shifted tanh puts 0 on the upper level: the lower one needs inputs below about -3.8
            raise ValueError("FSQ levels of 2 are degenerate with the tanh bound; use >= 3 (or bound='clamp')")
        self.levels = tuple(levels)
        self.size = math.prod(levels)
        self.dim = dim or len(levels)
        self.bound = bound
        self.eps = eps
        lv = torch.tensor(levels, dtype=torch.float32)
        half_width = torch.floor(lv / 2)
        half_span = (lv - 1) * (1 + eps) / 2
        offset = torch.where(lv % 2 == 0, 0.5, 0.0)
        scale_t = torch.as_tensor(scale, dtype=torch.float32).expand(len(levels)).clone()
        if not bool((scale_t > 0).all()):
            raise ValueError("FSQ scale must be positive")
        self._unit_scale = bool((scale_t == 1).all())
        # Non-persistent buffers: all derived from the constructor arguments, never checkpointed.
        # "Digit coordinates" u run from 0 to L - 1; the code digit is round(u).
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.long), persistent=False)
        self.register_buffer(
            "_basis", torch.tensor([math.prod(levels[:i]) for i in range(len(levels))]), persistent=False
        )
        self.register_buffer("_basis_f", self._basis.float(), persistent=False)
        self.register_buffer("_half_width", half_width, persistent=False)
        self.register_buffer("_half_span", half_span, persistent=False)
        self.register_buffer("_offset", offset, persistent=False)
        self.register_buffer("_shift", torch.atanh(offset / half_span), persistent=False)
        self.register_buffer("_digit_bias", half_width - offset, persistent=False)  # tanh -> digit coords
        self.register_buffer("_top", lv - 1, persistent=False)
        self.register_buffer("_zero", torch.zeros(len(levels)), persistent=False)
        self.register_buffer("_scale", scale_t, persistent=False)
        self.register_buffer("_in_gain", half_width / scale_t, persistent=False)  # clamp bound: x -> digit coords
        self.register_buffer("_out_gain", scale_t / half_width, persistent=False)  # digit -> output value
        self.register_buffer("_neg_scale", -scale_t, persistent=False)
        # index arithmetic in fp32 is exact while every index is below 2^24
        self._float_index = self.size <= 1 << 24
        if self.dim != len(levels):
            self.project_in: nn.Linear | None = nn.Linear(self.dim, len(levels))
            self.project_out: nn.Linear | None = nn.Linear(len(levels), self.dim)
        else:
            self.project_in = None
            self.project_out = None

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return (self.size,)

    # ----------------------------------------------------------------- exact mappings
    def indices_to_digits(self, indices: Tensor) -> Tensor:
        """int64 ``[...]`` -> per-dimension digits ``[..., d]`` in ``[0, L_i)``."""
        return torch.div(indices.long().unsqueeze(-1), self._basis, rounding_mode="floor") % self._levels

    def digits_to_indices(self, digits: Tensor) -> Tensor:
        """Integer-valued digits ``[..., d]`` (any dtype) -> int64 indices ``[...]``, clamped into range
        (so even NaN latents give valid codes)."""
        if self._float_index and digits.is_floating_point():
            return (
                torch.mv(digits.reshape(-1, digits.shape[-1]).float(), self._basis_f)
                .reshape(digits.shape[:-1])
                .long()
                .clamp_(0, self.size - 1)
            )
        digits = torch.minimum(digits.long().clamp_(min=0), self._levels - 1)
        return (digits * self._basis).sum(dim=-1)

    def digits_to_values(self, digits: Tensor) -> Tensor:
        """Digits ``[..., d]`` -> output values ``(digit - L // 2) / (L // 2) * scale`` (fp32)."""
        return torch.addcmul(self._neg_scale, digits.float(), self._out_gain)

    def indices_to_values(self, indices: Tensor) -> Tensor:
        """int64 ``[...]`` -> normalised grid values ``[..., d]`` in ``[-1, 1]`` (fp32, before ``scale``)."""
        centred = self.indices_to_digits(indices).float() - self._half_width
        return centred / self._half_width

    def values_to_indices(self, values: Tensor) -> Tensor:
        """Normalised grid values ``[..., d]`` (as from ``indices_to_values``) -> int64 indices."""
        return self.digits_to_indices(torch.round(values.float() * self._half_width + self._half_width))

    # ----------------------------------------------------------------- bound and round
    def _folded_in(self) -> tuple[Tensor, Tensor]:
        """Input projection with the bound's affine pre-step folded in: ``t = W' x + b'``.

        tanh bound: ``t = (W x + b) / scale + shift``; clamp bound: ``t = (W x + b) * L//2 / scale + L//2``.
        """
        assert self.project_in is not None
        gain = 1.0 / self._scale if self.bound == "tanh" else self._in_gain
        offset = self._shift if self.bound == "tanh" else self._half_width
        weight = self.project_in.weight.float() * gain.unsqueeze(1)
        bias = offset if self.project_in.bias is None else self.project_in.bias.float() * gain + offset
        return weight, bias

    def _pre_rows(self, x: Tensor) -> Tensor:
        """Rows ``[N, dim]`` -> pre-bound rows ``t`` ``[N, d]``."""
        if self.project_in is not None:
            weight, bias = self._folded_in()
            return torch.addmm(bias, x, weight.t())
        if self.bound == "tanh":
            return (x if self._unit_scale else x / self._scale) + self._shift
        return torch.addcmul(self._half_width, x, self._in_gain)

    def _pre_latent(self, z: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        """Latent ``[B, D, ...]`` -> pre-bound rows ``[N, d]`` without transposing the latent."""
        if self.project_in is not None:
            check_latent(z, self.dim)
            return project_in(z, *self._folded_in())
        rows, lead = to_rows(z, self.dim)
        return self._pre_rows(rows), lead

    def _bound(self, t: Tensor) -> Tensor:
        """Pre-bound ``t`` -> continuous digit coordinates ``u`` in ``[0, L - 1]``."""
        if self.bound == "tanh":
            return torch.addcmul(self._digit_bias, torch.tanh(t), self._half_span)
        return torch.clamp(t, min=self._zero, max=self._top)

    def digit_coords(self, x: Tensor) -> Tensor:
        """Rows ``[N, dim]`` -> bounded continuous digit coordinates ``u`` ``[N, d]`` in ``[0, L - 1]``."""
        return self._bound(self._pre_rows(x))

    def _folded_out(self) -> tuple[Tensor, Tensor]:
        """Output projection with the digit -> value map folded in: ``out = W' digits + b'``."""
        assert self.project_out is not None
        w = self.project_out.weight.float()
        bias = torch.mv(w, self._neg_scale)
        if self.project_out.bias is not None:
            bias = bias + self.project_out.bias.float()
        return w * self._out_gain.unsqueeze(0), bias

    def _emit_rows(self, digits: Tensor) -> Tensor:
        """Digits ``[N, d]`` (float, possibly carrying a gradient) -> output rows ``[N, dim]``."""
        if self.project_out is not None:
            weight, bias = self._folded_out()
            return torch.addmm(bias, digits, weight.t())
        return self.digits_to_values(digits)

    def _emit_latent(self, digits: Tensor, lead: tuple[int, ...]) -> Tensor:
        """Digits ``[N, d]`` -> contiguous latent ``[B, D, ...]``."""
        if self.project_out is not None:
            return project_out(digits, *self._folded_out(), lead)
        return from_rows(self.digits_to_values(digits), lead)

    def _quantize(self, t: Tensor, weight: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Pre-bound rows -> (digits with straight-through gradient, codes ``[N]``, counts ``[K]``)."""
        u = self._bound(t)
        digits = torch.round(u.detach())
        codes = self.digits_to_indices(digits)
        with torch.no_grad():
            counts = torch.bincount(codes, weights=weight, minlength=self.size).float()
        return apply_estimator("ste", u, digits), codes, counts

    # ----------------------------------------------------------------- rows level (residual stages)
    def encode_rows(self, x: Tensor) -> Tensor:
        """fp32 rows ``[N, dim]`` -> int64 indices ``[N]``."""
        return self.digits_to_indices(torch.round(self.digit_coords(x)))

    def decode_rows(self, codes: Tensor) -> Tensor:
        """int64 indices ``[N]`` -> fp32 rows ``[N, dim]``."""
        return self._emit_rows(self.indices_to_digits(codes).float())

    def quantize_rows(self, x: Tensor, weight: Tensor | None = None) -> StageResult:
        """Quantize fp32 rows ``[N, dim]`` (straight-through rounding); FSQ has no auxiliary loss."""
        digits, codes, counts = self._quantize(self._pre_rows(x), weight)
        return StageResult(self._emit_rows(digits), codes, x.new_zeros(()), counts, None)

    # ----------------------------------------------------------------- public API
    def forward(self, z: Tensor) -> QuantizerOutput:
        """``z`` ``[B, D, ...]`` -> quantized (dtype of ``z``), codes ``[B, 1, ...]``."""
        with full_precision(z.device):
            t, lead = self._pre_latent(z)
            digits, codes, counts = self._quantize(t, None)
            quantized = self._emit_latent(digits, lead).to(z.dtype)
            codes = rows_to_codes(codes.unsqueeze(0), lead)
            return QuantizerOutput(quantized, codes, t.new_zeros(()), usage_metrics(counts, 0))

    @torch.no_grad()
    def encode(self, z: Tensor, num_codebooks: int | None = None) -> Tensor:
        """``[B, D, ...]`` -> int64 codes ``[B, 1, ...]`` (``num_codebooks`` may only be None or 1)."""
        check_num_codebooks(num_codebooks, 1)
        with full_precision(z.device):
            t, lead = self._pre_latent(z)
            codes = self.digits_to_indices(torch.round(self._bound(t)))
            return rows_to_codes(codes.unsqueeze(0), lead)

    def decode(self, codes: Tensor) -> Tensor:
        """int64 codes ``[B, 1, ...]`` -> fp32 latent ``[B, D, ...]``."""
        with full_precision(codes.device):
            flat, lead = codes_to_rows(codes, 1)
            check_code_range(flat, self.codebook_sizes, allow_dropped=False)
            return self._emit_latent(self.indices_to_digits(flat[0]).float(), lead)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, dim={self.dim}, bound={self.bound!r}"


class ResidualFSQ(ResidualQuantizer):
    """Residual FSQ: ``num_codebooks`` FSQ stages with shrinking fixed scales; codes ``[B, n, ...]``.

    The latent is projected to ``len(levels)`` dims (if ``dim`` differs) and tanh-bounded once to
    ``[-1, 1]``; stage ``i`` hard-clamps and rounds ``residual / s_i`` with
    ``s_i = (2 * (L // 2)) ** -i`` per dimension, i.e. each stage refines the previous stage's
    rounding interval.
    """

    def __init__(
        self,
        levels: Sequence[int],
        dim: int | None = None,
        num_codebooks: int = 4,
        *,
        dropout: float = 0.0,
        min_codebooks: int = 1,
        eps: float = 1e-3,
    ) -> None:
        levels = [int(v) for v in levels]
        d = len(levels)
        step = torch.tensor([2.0 * (v // 2) for v in levels])
        stages = [FSQ(levels, d, bound="clamp", scale=step.pow(-float(i)), eps=eps) for i in range(num_codebooks)]
        super().__init__(dim or d, stages, dropout=dropout, min_codebooks=min_codebooks)
        self.levels = tuple(levels)
        self.bounder = FSQ(levels, d, bound="tanh", eps=eps)
        if self.dim != d:
            self.project_in: nn.Linear | None = nn.Linear(self.dim, d)
            self.project_out: nn.Linear | None = nn.Linear(d, self.dim)
        else:
            self.project_in = None
            self.project_out = None

    def latent_in(self, z: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        """Latent -> projected, tanh-bounded rows ``[N, d]`` in ``[-1, 1]`` (the stages' space)."""
        b = self.bounder
        if self.project_in is not None:
            check_latent(z, self.dim)
            weight = self.project_in.weight.float()
            bias = b._shift if self.project_in.bias is None else self.project_in.bias.float() + b._shift
            t, lead = project_in(z, weight, bias)
        else:
            t, lead = b._pre_latent(z)
        return b._bound(t) / b._half_width - 1.0, lead

    def latent_out(self, rows: Tensor, lead: tuple[int, ...]) -> Tensor:
        """Summed stage outputs ``[N, d]`` -> latent ``[B, D, ...]``."""
        if self.project_out is None:
            return from_rows(rows, lead)
        bias = None if self.project_out.bias is None else self.project_out.bias
        return project_out(rows, self.project_out.weight, bias, lead)
