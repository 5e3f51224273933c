"""Contextual encoder and decoder of inter frames (conditional coding, no residual).

Both are the image codec's GDN transforms (:mod:`neuralcodec.codecs.image.transforms`) with the
temporal contexts concatenated at the matching scales (``c1`` at 1/2, ``c2`` at 1/4, ``c3`` at
1/8 of the frame size; see :mod:`.context`): the encoder learns what the context does not
already predict, the decoder learns to fill in from the context, and nothing forces the two to
exchange a pixel residual.

Shapes (``H``, ``W`` multiples of 64): ``x [B, 3, H, W]`` -> ``y [B, M, H/16, W/16]``;
``y_hat`` -> ``(x_hat [B, 3, H, W], F [B, N, H/2, W/2])``, ``F`` being the feature that is
propagated to the next frame.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from neuralcodec.codecs.image.gdn import GDN
from neuralcodec.codecs.image.transforms import conv_down, conv_up


class ContextualEncoder(nn.Module):
    """``(x, c1, c2, c3)`` -> latent ``y [B, M, H/16, W/16]``."""

    def __init__(self, N: int, M: int, C: int) -> None:
        super().__init__()
        self.down1 = nn.Sequential(conv_down(3, N), GDN(N))
        self.down2 = nn.Sequential(conv_down(N + C, N), GDN(N))
        self.down3 = nn.Sequential(conv_down(N + C, N), GDN(N))
        self.down4 = conv_down(N + C, M)

    def forward(self, x: Tensor, c1: Tensor, c2: Tensor, c3: Tensor) -> Tensor:
        h = self.down2(torch.cat([self.down1(x), c1], dim=1))
        h = self.down3(torch.cat([h, c2], dim=1))
        return self.down4(torch.cat([h, c3], dim=1))


class ContextualDecoder(nn.Module):
    """``(y_hat, c1, c2, c3)`` -> ``(x_hat [B, 3, H, W], F [B, N, H/2, W/2])``."""

    def __init__(self, N: int, M: int, C: int) -> None:
        super().__init__()
        self.up1 = nn.Sequential(conv_up(M, N), GDN(N, inverse=True))
        self.up2 = nn.Sequential(conv_up(N + C, N), GDN(N, inverse=True))
        self.up3 = nn.Sequential(conv_up(N + C, N), GDN(N, inverse=True))
        self.fuse = nn.Sequential(nn.Conv2d(N + C, N, 3, 1, 1), nn.LeakyReLU(0.1), nn.Conv2d(N, N, 3, 1, 1))
        self.to_pixels = conv_up(N, 3)

    def forward(self, y_hat: Tensor, c1: Tensor, c2: Tensor, c3: Tensor) -> tuple[Tensor, Tensor]:
        h = self.up2(torch.cat([self.up1(y_hat), c3], dim=1))
        h = self.up3(torch.cat([h, c2], dim=1))
        feature = self.fuse(torch.cat([h, c1], dim=1))
        return self.to_pixels(feature), feature


__all__ = ["ContextualDecoder", "ContextualEncoder"]
