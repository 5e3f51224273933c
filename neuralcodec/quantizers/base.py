"""The quantizer contract shared by every codec: latent tensor <-> integer codes.

Latents are channels-first, ``[B, D, T]`` for audio or ``[B, D, H, W]`` for images (any number of
trailing positional axes works). Codes are int64 ``[B, Q, ...]`` with the same positional axes and
``Q = num_codebooks``.

Guarantee (eval mode): ``decode(encode(z)).to(z.dtype)`` equals ``forward(z).quantized``
bit for bit. All quantizers compute internally in fp32 with autocast disabled, so the
guarantee also holds for bf16/fp16 latents and under ``torch.autocast``; ``decode`` returns fp32.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import Tensor, nn

from neuralcodec.errors import ModelError

#: Latent dtypes accepted by every quantizer (computation itself is always fp32).
SUPPORTED_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


@dataclass
class QuantizerOutput:
    """Result of ``Quantizer.forward``.

    quantized: ``[B, D, ...]`` in the input dtype; carries the gradient estimator's gradient to ``z``
               (may be a non-contiguous view of channels-last rows; call ``.contiguous()`` if needed).
    codes:     int64 ``[B, Q, ...]``; ``-1`` marks a residual stage dropped for that item (training only).
    loss:      scalar fp32 auxiliary loss (commitment, plus codebook loss for learnable codebooks).
    metrics:   per-codebook float tensors, keys ``usage/i``, ``perplexity/i``, ``dead_codes/i``.
    """

    quantized: Tensor
    codes: Tensor
    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


def check_latent(z: Tensor, dim: int) -> None:
    """Raise ``ModelError`` unless ``z`` is a supported channels-first latent with ``dim`` channels."""
    if z.ndim < 3:
        raise ModelError(f"quantizer expects a channels-first latent [B, D, ...], got shape {tuple(z.shape)}")
    if z.shape[1] != dim:
        raise ModelError(f"quantizer expects {dim} channels, got latent of shape {tuple(z.shape)}")
    if z.dtype not in SUPPORTED_DTYPES:
        raise ModelError(f"unsupported latent dtype {z.dtype}; use one of {SUPPORTED_DTYPES}")


def to_rows(z: Tensor, dim: int) -> tuple[Tensor, tuple[int, ...]]:
    """``[B, D, *S]`` -> fp32 rows ``[B * prod(S), D]`` plus the shape ``(B, *S)`` to undo it."""
    check_latent(z, dim)
    lead = (z.shape[0], *z.shape[2:])
    rows = rearrange(z, "b d ... -> b ... d").reshape(-1, dim)
    return rows.float(), lead


def from_rows(rows: Tensor, lead: tuple[int, ...]) -> Tensor:
    """Rows ``[N, D]`` -> channels-first ``[B, D, *S]`` (a view; may be non-contiguous)."""
    return rows.reshape(*lead, rows.shape[-1]).movedim(-1, 1)


def codes_to_rows(codes: Tensor, num_codebooks: int) -> tuple[Tensor, tuple[int, ...]]:
    """Codes ``[B, Q, *S]`` -> ``[Q, N]`` int64 plus the shape ``(B, *S)``."""
    if codes.ndim < 2 or codes.shape[1] > num_codebooks or codes.shape[1] < 1:
        raise ModelError(f"codes must be [B, Q, ...] with 1 <= Q <= {num_codebooks}, got shape {tuple(codes.shape)}")
    if codes.dtype.is_floating_point or codes.dtype == torch.bool:
        raise ModelError(f"codes must be integers, got {codes.dtype}")
    lead = (codes.shape[0], *codes.shape[2:])
    return rearrange(codes.long(), "b q ... -> q (b ...)"), lead


def rows_to_codes(codes: Tensor, lead: tuple[int, ...]) -> Tensor:
    """``[Q, N]`` -> ``[B, Q, *S]``."""
    return codes.reshape(codes.shape[0], *lead).movedim(0, 1)


def check_num_codebooks(k: int | None, n: int, multiple_of: int = 1) -> int:
    """Validate an inference-time number of codebooks (None means all ``n``)."""
    if k is None:
        return n
    if not 1 <= k <= n or k % multiple_of:
        extra = f" and a multiple of {multiple_of}" if multiple_of > 1 else ""
        raise ModelError(f"num_codebooks must be in [1, {n}]{extra}, got {k}")
    return k


def check_code_range(codes: Tensor, sizes: Sequence[int], allow_dropped: bool) -> None:
    """Raise ``ModelError`` if any code in ``[Q, N]`` lies outside its codebook (one host sync)."""
    if codes.numel() == 0:
        return
    upper = torch.tensor(list(sizes[: codes.shape[0]]), device=codes.device).unsqueeze(1)
    lower = -1 if allow_dropped else 0
    bad = (codes < lower) | (codes >= upper)
    if bool(bad.any()):
        q = int(bad.any(dim=1).nonzero()[0, 0])
        raise ModelError(
            f"code out of range for codebook {q} (size {sizes[q]}): "
            f"min {int(codes[q].min())}, max {int(codes[q].max())}"
        )


class KeepFP32(nn.Module):
    """Mixin: this module's own fp32 buffers and parameters stay fp32 under ``.to(dtype)`` / ``.half()``.

    Codebooks and FSQ constants must not be rounded to bf16 (indices and EMA statistics would
    break); device moves still apply. Child modules (e.g. projections) convert as usual.
    """

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        keep_buffers = {n: b for n, b in self._buffers.items() if b is not None and b.dtype == torch.float32}
        keep_params = {n: p.data for n, p in self._parameters.items() if p is not None and p.dtype == torch.float32}
        super()._apply(fn, recurse)
        for name, old in keep_buffers.items():
            new = self._buffers[name]
            if new is not None and new.dtype != torch.float32:
                self._buffers[name] = old.to(new.device)
        for name, old in keep_params.items():
            param = self._parameters[name]
            if param is not None and param.dtype != torch.float32:
                param.data = old.to(param.device)
        return self


class Quantizer(nn.Module, ABC):
    """Base class: ``forward`` for training, ``encode``/``decode`` for coding.

    Subclasses set ``dim`` (latent channels) and implement the abstract members.
    """

    dim: int

    @abstractmethod
    def forward(self, z: Tensor) -> QuantizerOutput:
        """Quantize ``z`` ``[B, D, ...]``; in training mode also update codebook statistics."""

    @abstractmethod
    def encode(self, z: Tensor, num_codebooks: int | None = None) -> Tensor:
        """``[B, D, ...]`` -> int64 codes ``[B, k, ...]``; never changes module state.

        ``num_codebooks=k`` keeps only the first ``k`` codebooks (a lower bitrate) where the
        quantizer supports it (residual ones); None means all ``Q``.
        """

    @abstractmethod
    def decode(self, codes: Tensor) -> Tensor:
        """Int64 codes ``[B, Q, ...]`` -> fp32 latent ``[B, D, ...]``."""

    @property
    @abstractmethod
    def codebook_sizes(self) -> tuple[int, ...]:
        """Size of each of the ``Q`` codebooks, in code order."""

    @property
    def num_codebooks(self) -> int:
        """``Q``: how many codes each latent position gets."""
        return len(self.codebook_sizes)

    @property
    def codebook_step(self) -> int:
        """``encode(z, num_codebooks=k)`` takes the multiples ``k`` of this (1; GRVQ: its number of groups)."""
        return 1

    @property
    def bits_per_frame(self) -> float:
        """Uncompressed bits per latent position: ``sum(log2(size))`` over all codebooks."""
        return float(sum(math.log2(s) for s in self.codebook_sizes))

    def bits_per_frame_at(self, num_codebooks: int) -> float:
        """Bits per position when only the first ``num_codebooks`` codebooks are sent."""
        return float(sum(math.log2(s) for s in self.codebook_sizes[:num_codebooks]))
