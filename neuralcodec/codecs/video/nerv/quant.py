"""Per-channel scalar quantization of network tensors, with a straight-through estimator for fitting.

A tensor ``w`` (channel = dim 0; 1-D tensors are one channel) with ``b`` bits is stored as integers
``q = round(w / step)`` in ``[-(2**(b-1) - 1), 2**(b-1) - 1]`` and one signed byte per channel,
the step code ``k``: ``step = 2**(k / 8)``, the smallest such step with ``max|w[c]| <= qmax * step``.
Steps are built from an exact table (:func:`step_values`), so encoder and decoder get the same
float32 steps on any machine, and side information costs 8 bits per channel.
:func:`dequantize` is the one place integers become weights, used both after fitting and in the
decoder, so both run the very same network.
"""

from __future__ import annotations

import torch
from torch import Tensor

MIN_BITS, MAX_BITS = 2, 12
#: step codes are signed bytes: steps 2**-16 .. 2**(127/8)
CODE_MIN, CODE_MAX = -128, 127
#: 2**(i/8) for i = 0..7, as exact float32 literals (the fractional part of a step code)
_FRACTIONS = (1.0, 1.0905077326652577, 1.189207115002721, 1.2968395546510096,
              1.4142135623730951, 1.5422108254079407, 1.681792830507429, 1.8340080864093424)


def qmax(bits: int) -> int:
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"quantization bits must lie in {MIN_BITS}..{MAX_BITS}, got {bits}")
    return (1 << (bits - 1)) - 1


def channels_of(shape: torch.Size | tuple[int, ...]) -> int:
    """Number of quantization channels of a tensor shape (dim 0, or 1 for scalars/1-D)."""
    return int(shape[0]) if len(shape) >= 2 else 1


def step_values(codes: Tensor) -> Tensor:
    """float32 steps ``2**(code / 8)`` for int codes ``[C]`` (exact power of two times a table entry)."""
    c = codes.to(torch.int64)
    frac = torch.tensor(_FRACTIONS, dtype=torch.float32)[torch.remainder(c, 8)]
    return torch.ldexp(frac, torch.div(c, 8, rounding_mode="floor").to(torch.int32)).to(torch.float32)


def step_codes(w: Tensor, bits: int) -> Tensor:
    """int64 codes ``[C]``: the smallest step ``2**(k/8) >= max|w[c]| / qmax`` (clamped to the byte range)."""
    flat = w.detach().float().reshape(channels_of(w.shape), -1)
    need = flat.abs().amax(dim=1).double() / qmax(bits)
    logs = torch.ceil(8 * torch.log2(need.clamp_min(2.0**-40)) - 1e-9)
    codes = torch.where(need > 0, logs, torch.full_like(logs, CODE_MIN)).clamp(CODE_MIN, CODE_MAX).to(torch.int64)
    # guard the log2 rounding: step the code up until the table value covers the need
    short = step_values(codes).double() < need
    while bool(short.any()):
        codes = torch.where(short & (codes < CODE_MAX), codes + 1, codes)
        short = (step_values(codes).double() < need) & (codes < CODE_MAX)
    return codes


def _expand(step: Tensor, shape: torch.Size | tuple[int, ...]) -> Tensor:
    return step.reshape((-1,) + (1,) * (len(shape) - 1)) if len(shape) >= 2 else step.reshape(())


def quantize(w: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """``(integers int64 shaped like w, step codes int64 [C])``."""
    codes = step_codes(w, bits)
    m = qmax(bits)
    q = torch.round(w.detach().float() / _expand(step_values(codes), w.shape)).clamp_(-m, m).to(torch.int64)
    return q, codes


def dequantize(q: Tensor, codes: Tensor) -> Tensor:
    """float32 weights ``q * step[c]`` (the decoder's exact arithmetic)."""
    return q.to(torch.float32) * _expand(step_values(codes), q.shape)


def fake_quantize(w: Tensor, bits: int) -> Tensor:
    """Quantize-dequantize in the forward pass, identity gradient (STE) in the backward pass."""
    step = _expand(step_values(step_codes(w, bits)), w.shape)
    m = qmax(bits)
    wq = torch.round(w / step).clamp(-m, m) * step
    return w + (wq - w).detach()
