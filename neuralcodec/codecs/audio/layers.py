"""Building blocks shared by the audio encoder and decoders (all run at frame rate).

Every block takes and returns ``[B, C, T]`` and accepts an optional validity ``mask`` ``[B, 1, T]``
(1 inside an item, 0 in batch padding) so that padded batch items give the same result as one
item on its own: after each temporal mixing step the padded region is reset to zero, which is
exactly what zero "same" padding shows a lone item.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def apply_mask(x: Tensor, mask: Tensor | None) -> Tensor:
    """Zero the padded frames of ``x`` ``[B, C, T]`` (``mask`` ``[B, 1, T]`` or None)."""
    return x if mask is None else x * mask


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a ``[B, C, T]`` tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt-1D block (depthwise conv, LayerNorm, pointwise MLP, layer scale), as in Vocos."""

    def __init__(self, dim: int, hidden: int | None = None, kernel_size: int = 7, layer_scale: float = 1e-2) -> None:
        super().__init__()
        hidden = hidden or 3 * dim
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, hidden)
        self.pw2 = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        residual = x
        y = self.dwconv(apply_mask(x, mask)).transpose(1, 2)
        y = self.pw2(F.gelu(self.pw1(self.norm(y))))
        return apply_mask(residual + (self.gamma * y).transpose(1, 2), mask)


class SelfAttentionBlock(nn.Module):
    """Pre-norm multi-head self-attention over frames; padded frames are excluded as keys."""

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h = self.norm(x.transpose(1, 2))
        key_padding = None if mask is None else mask[:, 0] < 0.5
        y, _ = self.attn(h, h, h, key_padding_mask=key_padding, need_weights=False)
        return apply_mask(x + y.transpose(1, 2), mask)


class ConvNeXtStack(nn.Module):
    """``depth`` ConvNeXt blocks with optional self-attention blocks after the given indices."""

    def __init__(self, dim: int, depth: int, hidden: int | None = None, attention_after: tuple[int, ...] = (),
                 heads: int = 4) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        for i in range(depth):
            blocks.append(ConvNeXtBlock(dim, hidden))
            if i in attention_after:
                blocks.append(SelfAttentionBlock(dim, heads))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        for block in self.blocks:
            x = block(x, mask)
        return x
