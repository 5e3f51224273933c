"""The NeRV-family decoder network: per-frame embedding -> conv + PixelShuffle blocks -> planes.

HNeRV-style small learned embeddings ``[T, E, h0, w0]`` (one per frame, so any frame decodes on
its own) feed a stem convolution and a stack of upsampling blocks with the NeRV++ additions:

* each :class:`UpBlock` is ``GELU(PixelShuffle(conv(x)))`` plus a parameter-free bilinear skip
  (the first ``C_out`` input channels, bilinearly upsampled), so the convolution learns a residual;
* a separable residual block (depthwise 3x3 -> GELU -> pointwise 1x1) before the first and after
  every upsampling block, cheap spatial mixing at each resolution.

The head maps the last features to the output planes (Y, U, V at full resolution, code values /
255, offset by 0.5). The first block uses a 1x1 convolution (its ``r**2`` output factor makes a 3x3
kernel dominate the parameter count), later ones 3x3, as in HNeRV's increasing kernel sizes.

:class:`NervArch` is the complete, serialisable description the decoder rebuilds the network from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: stride lists tried for a frame size (first block first); the last blocks are always 2x.
_STRIDE_HEADS = (5, 4, 3, 2)
#: channel ratio between consecutive blocks
CHANNEL_DECAY = 1.5
MIN_CHANNELS = 8
MAX_CHANNELS = 1024
MAX_BLOCKS = 8


@dataclass(frozen=True)
class NervArch:
    """Everything needed to build the network: ``channels[i]`` feeds block ``i``; ``len = blocks + 1``."""

    embed_dim: int
    embed_h: int
    embed_w: int
    strides: tuple[int, ...]
    channels: tuple[int, ...]
    out_channels: int = 3

    def __post_init__(self) -> None:
        if not (1 <= len(self.strides) <= MAX_BLOCKS and len(self.channels) == len(self.strides) + 1):
            raise ValueError("need 1..8 strides and one more channel count than strides")
        if any(not 2 <= s <= 8 for s in self.strides):
            raise ValueError("strides must lie in 2..8")
        if any(not MIN_CHANNELS // 2 <= c <= MAX_CHANNELS for c in self.channels):
            raise ValueError(f"channel counts must lie in {MIN_CHANNELS // 2}..{MAX_CHANNELS}")
        if any(b > a for a, b in zip(self.channels, self.channels[1:])):
            raise ValueError("channel counts must not increase (the bilinear skip slices channels)")
        if not (1 <= self.embed_dim <= 64 and 1 <= self.embed_h <= 4096 and 1 <= self.embed_w <= 4096):
            raise ValueError("embedding size out of range")
        if self.out_channels not in (1, 3):
            raise ValueError("out_channels must be 1 or 3")

    @property
    def stride(self) -> int:
        return math.prod(self.strides)

    @property
    def height(self) -> int:
        """Padded output height."""
        return self.embed_h * self.stride

    @property
    def width(self) -> int:
        return self.embed_w * self.stride


#: stride lists whose padded frame exceeds the frame by more than this fraction of its area are not used
MAX_PADDING = 0.15
#: share of a group's bit budget the embeddings may take; the sizer coarsens the grid to stay under it
EMBED_SHARE = 0.25


def stride_candidates(height: int, width: int) -> list[tuple[int, ...]]:
    """Usable stride lists, coarsest embedding grid first (larger product; ties: less padding, fewer blocks).

    Coarse grids with more upsampling blocks fit better per bit than fine grids with few blocks
    (HNeRV uses a 2x4 grid for 640x1280; here, at 320x180, a 3x5 grid at 0.057 bpp fitted 1.6 dB
    better than a 9x16 one at 0.11 bpp). The grid keeps at least 2 cells per side; lists that pad
    the frame by more than :data:`MAX_PADDING` of its area are dropped unless nothing else is left.
    """
    keyed: list[tuple[tuple[int, int, int], tuple[int, ...]]] = []
    for head in _STRIDE_HEADS:
        for twos in range(1, 6):
            strides = (head,) + (2,) * twos
            s = math.prod(strides)
            h0, w0 = -(-height // s), -(-width // s)
            if min(h0, w0) < 2 and (head, twos) != (2, 1):
                continue
            keyed.append(((-s, h0 * w0 * s * s - height * width, twos), strides))
    keyed.sort()
    usable = [strides for (_, waste, _), strides in keyed if waste <= MAX_PADDING * height * width]
    return usable or [min(keyed, key=lambda k: k[0][1])[1]]


def choose_strides(height: int, width: int) -> tuple[int, ...]:
    """The first of :func:`stride_candidates`: the coarsest grid that pads at most :data:`MAX_PADDING`."""
    return stride_candidates(height, width)[0]


def channel_schedule(c0: int, blocks: int, out_channels: int, floor: int = MIN_CHANNELS) -> tuple[int, ...]:
    """``c0`` shrinking by :data:`CHANNEL_DECAY` per block, never below ``floor`` (nor ``out_channels``)."""
    chans = [max(floor, min(MAX_CHANNELS, round(c0 / CHANNEL_DECAY**i))) for i in range(blocks + 1)]
    return tuple(max(c, out_channels) for c in chans)


def floor_for(c0: int) -> int:
    """Narrowest channel count of a network whose first block has ``c0`` channels: ``MIN_CHANNELS``
    once ``c0 >= 2 * MIN_CHANNELS``, else ``c0 // 2`` (at least ``MIN_CHANNELS // 2``), so that tiny
    budgets (small frames, few frames, low rates) still get a network that grows smoothly with ``c0``."""
    return max(MIN_CHANNELS // 2, min(MIN_CHANNELS, c0 // 2))


class SepResBlock(nn.Module):
    """``x + pw(GELU(dw3x3(x)))`` (NeRV++ separable residual block), ``[B, C, H, W]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.pw = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.pw.weight)
        nn.init.zeros_(self.pw.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.pw(F.gelu(self.dw(x)))


class UpBlock(nn.Module):
    """``[B, Cin, H, W] -> [B, Cout, rH, rW]``: GELU(PixelShuffle(conv)) + bilinear skip."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int) -> None:
        super().__init__()
        self.c_out, self.stride = c_out, stride
        self.conv = nn.Conv2d(c_in, c_out * stride * stride, kernel, padding=kernel // 2)
        self.shuffle = nn.PixelShuffle(stride)

    def forward(self, x: Tensor) -> Tensor:
        skip = F.interpolate(x[:, : self.c_out], scale_factor=self.stride, mode="bilinear", align_corners=False)
        return F.gelu(self.shuffle(self.conv(x))) + skip


class NervNet(nn.Module):
    """Embeddings ``[T, E, h0, w0]`` + decoder; ``forward(idx [B]) -> [B, out_channels, H, W]`` (padded)."""

    def __init__(self, arch: NervArch, num_frames: int) -> None:
        super().__init__()
        self.arch, self.num_frames = arch, num_frames
        self.embed = nn.Parameter(torch.randn(num_frames, arch.embed_dim, arch.embed_h, arch.embed_w) * 0.5)
        c = arch.channels
        self.stem = nn.Conv2d(arch.embed_dim, c[0], 3, padding=1)
        self.pre = SepResBlock(c[0])
        self.ups = nn.ModuleList(UpBlock(c[i], c[i + 1], s, 1 if i == 0 else 3) for i, s in enumerate(arch.strides))
        self.posts = nn.ModuleList(SepResBlock(c[i + 1]) for i in range(len(arch.strides)))
        self.head = nn.Conv2d(c[-1], arch.out_channels, 3, padding=1)

    def decode_embedding(self, emb: Tensor) -> Tensor:
        """``[B, E, h0, w0] -> [B, out_channels, H, W]``."""
        x = self.pre(F.gelu(self.stem(emb)))
        for up, post in zip(self.ups, self.posts):
            x = post(up(x))
        return self.head(x) + 0.5

    def forward(self, idx: Tensor) -> Tensor:
        return self.decode_embedding(self.embed[idx])


def count_params(arch: NervArch, num_frames: int) -> tuple[int, int]:
    """``(decoder weights, embedding values)`` for ``arch`` without building it."""
    c, e = arch.channels, arch.embed_dim
    sep = lambda ch: ch * 9 + ch + ch * ch + ch  # noqa: E731
    n = e * c[0] * 9 + c[0] + sep(c[0])
    for i, s in enumerate(arch.strides):
        k = 1 if i == 0 else 9
        n += c[i] * c[i + 1] * s * s * k + c[i + 1] * s * s + sep(c[i + 1])
    n += c[-1] * arch.out_channels * 9 + arch.out_channels
    return n, num_frames * e * arch.embed_h * arch.embed_w


def size_arch(height: int, width: int, num_frames: int, budget_bits: float, *, embed_dim: int,
              weight_bits_per_param: float, embed_bits_per_value: float, out_channels: int = 3) -> NervArch:
    """The widest network whose estimated coded size fits ``budget_bits`` (a group's share of the target).

    Per-frame embeddings cost ``T * E * h0 * w0`` values whatever the decoder's width, and every
    upsampling block has a minimum size, so at low rates or on small frames the least-padding
    strides alone can exceed the budget. The strides are therefore the first of
    :func:`stride_candidates` whose embeddings take at most :data:`EMBED_SHARE` of the budget and
    whose narrowest network fits it; if none qualifies, the strides with the cheapest narrowest
    network. The width ``c0`` (with :func:`floor_for`) then grows while the estimate fits. Bits per
    parameter are rough estimates of the entropy-coded cost; the final file size is measured. If
    even the narrowest network exceeds the budget, it is returned (compare :func:`arch_bits`).
    """

    def arch_for(strides: tuple[int, ...], c0: int) -> NervArch:
        s = math.prod(strides)
        return NervArch(embed_dim, -(-height // s), -(-width // s), strides,
                        channel_schedule(c0, len(strides), out_channels, floor_for(c0)), out_channels)

    def cost(arch: NervArch) -> float:
        return arch_bits(arch, num_frames, weight_bits_per_param, embed_bits_per_value)

    candidates = stride_candidates(height, width)
    narrowest = {st: arch_for(st, MIN_CHANNELS // 2) for st in candidates}
    fitting = [st for st in candidates if cost(narrowest[st]) <= budget_bits
               and count_params(narrowest[st], num_frames)[1] * embed_bits_per_value <= EMBED_SHARE * budget_bits]
    strides = fitting[0] if fitting else min(candidates, key=lambda st: cost(narrowest[st]))
    lo, hi = MIN_CHANNELS // 2, MAX_CHANNELS + 1  # c0 = lo fits (or is the narrowest), hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cost(arch_for(strides, mid)) <= budget_bits else (lo, mid)
    return arch_for(strides, lo)


def arch_bits(arch: NervArch, num_frames: int, weight_bits_per_param: float, embed_bits_per_value: float) -> float:
    """Estimated coded size (bits) of ``arch`` with ``num_frames`` embeddings, as :func:`size_arch` counts it."""
    w, e = count_params(arch, num_frames)
    return w * weight_bits_per_param + e * embed_bits_per_value
