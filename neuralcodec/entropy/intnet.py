"""Integer-exact networks for the coding path (after Ballé et al. 2019, "Integer networks for data
compression with latent-variable models").

A decoder must reproduce the encoder's probabilities exactly, but float convolutions differ in
the last bits between thread counts, batch sizes and devices. Here a network is trained in float
and, at freeze time, its weights become integers ``round(W * 2**s)`` (``|w| < 2**15``) with a
power-of-two shift ``s`` per layer; activations are fixed-point integers with ``act_frac_bits``
fractional bits, clamped to ``[0, 2**ACT_BITS]`` after each ReLU. The arithmetic runs on float64
tensors that hold integers: every product and partial sum is an integer below ``2**53`` (checked
at freeze), so each floating-point operation is exact and the result does not depend on the
order of summation, the BLAS, the thread count or the batch size. Re-quantization between layers
is ``floor((acc + 2**(s-1)) / 2**s)``, exact as well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: Integer weights satisfy ``|w| <= 2**WEIGHT_BITS - 1``.
WEIGHT_BITS = 15
#: Fixed-point activations satisfy ``|x| <= 2**ACT_BITS``.
ACT_BITS = 22
_EXACT_LIMIT = 2.0**53


def weight_shift(weight: torch.Tensor, max_shift: int = 30) -> int:
    """Largest shift ``s <= max_shift`` with ``round(|W| * 2**s) < 2**WEIGHT_BITS``."""
    peak = float(weight.detach().abs().max()) if weight.numel() else 0.0
    if peak == 0.0:
        return 0
    s = WEIGHT_BITS - 1 - math.floor(math.log2(peak))
    while s > 0 and round(peak * 2.0**s) >= 2**WEIGHT_BITS:
        s -= 1
    return max(0, min(max_shift, s))


def quantize_weight(weight: torch.Tensor, shift: int) -> torch.Tensor:
    """int32 ``round(W * 2**shift)`` clamped to the weight range."""
    lim = 2**WEIGHT_BITS - 1
    return torch.round(weight.detach().double() * 2.0**shift).clamp(-lim, lim).to(torch.int32)


def quantize_bias(bias: torch.Tensor | None, scale_bits: int, size: int) -> torch.Tensor:
    """int64 ``round(b * 2**scale_bits)`` (zeros for a missing bias), clamped to ``+-2**50``."""
    if bias is None:
        return torch.zeros(size, dtype=torch.int64)
    return torch.round(bias.detach().double() * 2.0**scale_bits).clamp(-(2.0**50), 2.0**50).to(torch.int64)


def round_shift(acc: torch.Tensor, shift: int) -> torch.Tensor:
    """``floor((acc + 2**(shift-1)) / 2**shift)`` on integer-valued float64 (exact)."""
    if shift == 0:
        return acc
    return torch.floor((acc + 2.0 ** (shift - 1)) * 2.0**-shift)


@dataclass(frozen=True)
class ConvSpec:
    """One layer: ``kind`` is ``"conv"`` (stride-s downsampling) or ``"deconv"`` (stride-s upsampling)."""

    kind: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1


class FixedPointConvNet(nn.Module):
    """A 2-D conv stack with ReLU between layers, with a float and an integer-exact forward.

    ``forward(x)``: float, for training. ``forward_fixed(x_int)``: input and output are integer-
    valued float64 tensors in fixed point with ``act_frac_bits`` fractional bits; identical on every
    machine and for any batch split. Convolutions use "same" padding (``kernel // 2``); a deconv
    with stride ``s`` multiplies the spatial size by exactly ``s``.
    """

    def __init__(self, specs: Sequence[ConvSpec], act_frac_bits: int = 8) -> None:
        super().__init__()
        self.specs = tuple(specs)
        self.act_frac_bits = int(act_frac_bits)
        self.layers = nn.ModuleList()
        for i, sp in enumerate(self.specs):
            pad = sp.kernel // 2
            if sp.kind == "conv":
                layer = nn.Conv2d(sp.in_channels, sp.out_channels, sp.kernel, sp.stride, pad)
            elif sp.kind == "deconv":
                layer = nn.ConvTranspose2d(
                    sp.in_channels, sp.out_channels, sp.kernel, sp.stride, pad, output_padding=sp.stride - 1
                )
            else:
                raise ValueError(f"unknown layer kind {sp.kind!r}")
            self.layers.append(layer)
            self.register_buffer(f"int_weight{i}", torch.zeros(layer.weight.shape, dtype=torch.int32))
            self.register_buffer(f"int_bias{i}", torch.zeros(sp.out_channels, dtype=torch.int64))
            self.register_buffer(f"int_shift{i}", torch.zeros((), dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x

    @torch.no_grad()
    def freeze(self) -> None:
        """Quantize the current float weights into the integer buffers (checks exactness bounds)."""
        for i, (sp, layer) in enumerate(zip(self.specs, self.layers, strict=True)):
            s = weight_shift(layer.weight)
            w = quantize_weight(layer.weight, s)
            b = quantize_bias(layer.bias, s + self.act_frac_bits, sp.out_channels)
            fan_in = sp.in_channels * sp.kernel * sp.kernel
            bound = fan_in * float(w.abs().max()) * 2.0**ACT_BITS + float(b.abs().max())
            if bound >= _EXACT_LIMIT:
                raise ValueError(f"layer {i}: integer accumulator bound {bound:.3g} exceeds 2**53")
            getattr(self, f"int_weight{i}").copy_(w)
            getattr(self, f"int_bias{i}").copy_(b)
            getattr(self, f"int_shift{i}").fill_(s)

    def to_fixed(self, x: torch.Tensor) -> torch.Tensor:
        """Float input -> fixed-point integer-valued float64 (``round(x * 2**act_frac_bits)``, clamped)."""
        lim = 2.0**ACT_BITS
        return torch.round(x.detach().to(torch.float64) * 2.0**self.act_frac_bits).clamp(-lim, lim)

    @torch.no_grad()
    def forward_fixed(self, x: torch.Tensor) -> torch.Tensor:
        """Integer-exact forward pass on fixed-point input (see :meth:`to_fixed`).

        Always computed on the CPU (result returned there): GPU libraries may pick FFT-based
        convolution algorithms, whose rounding would break exactness.
        """
        lim = 2.0**ACT_BITS
        x = x.detach().to("cpu", torch.float64).clamp(-lim, lim)
        for i, sp in enumerate(self.specs):
            w = getattr(self, f"int_weight{i}").to("cpu", torch.float64)
            b = getattr(self, f"int_bias{i}").to("cpu", torch.float64)
            pad = sp.kernel // 2
            if sp.kind == "conv":
                acc = F.conv2d(x, w, b, sp.stride, pad)
            else:
                acc = F.conv_transpose2d(x, w, b, sp.stride, pad, output_padding=sp.stride - 1)
            x = round_shift(acc, int(getattr(self, f"int_shift{i}")))
            x = x.clamp(0.0, lim) if i < len(self.specs) - 1 else x.clamp(-lim, lim)
        return x
