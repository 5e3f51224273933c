"""Temporal context of the conditional video codec (DCVC-TCM style, with DCVC-FM modulation).

The inter decoder leaves a feature map ``F_t [B, N, H/2, W/2]`` (its last hidden layer). The
next frame is coded *conditioned* on contexts derived from it, at four scales:

* ``c1 [B, C, H/2, W/2]``, ``c2 [B, C, H/4, W/4]``, ``c3 [B, C, H/8, W/8]`` condition the
  contextual encoder and decoder (:mod:`.inter`);
* ``c4 [B, C, H/16, W/16]`` conditions the entropy model's mean (:mod:`.stem`).

Sources: the propagated feature ``F_{t-1}``, or - after an intra frame and at every *refresh*
(every ``refresh_period`` P-frames) - features extracted afresh from the decoded pixels
``x_hat_{t-1}``. Propagating features carries more than pixels do, but errors accumulate along
long prediction chains; the periodic refresh from pixels bounds that drift (DCVC-FM).

Quality modulation (DCVC-FM): ``c1`` is scaled channel-wise by a learned per-quality vector
(:class:`~neuralcodec.codecs.image.QualityGain`, interpolated for fractional qualities), so one
set of context weights serves the whole rate range.

Alignment: ``"none"`` (the default, as argued by STEM/DCVC-DC for conditional coding with large
receptive fields) uses ``F_{t-1}`` as is. ``"extrapolated"`` warps ``F_{t-1}`` by a flow that a
small network predicts from the two previous decoded features (``F_{t-1}``, ``F_{t-2}``): decoder-
side motion extrapolation, no bits spent on motion. It is the alternative in the ablation
(``benchmarks/video_conditional_ablation.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neuralcodec.codecs.image.gain import QualityGain

ALIGNMENTS = ("none", "extrapolated")


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, k // 2)


def warp(feature: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp ``feature [B, C, H, W]`` by ``flow [B, 2, H, W]`` (pixels, x then y)."""
    b, _, h, w = feature.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=feature.device, dtype=feature.dtype),
                            torch.arange(w, device=feature.device, dtype=feature.dtype), indexing="ij")
    gx = (xs[None] + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys[None] + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(feature, grid, mode="bilinear", padding_mode="border", align_corners=True)


class TemporalContext(nn.Module):
    """Feature source (propagated / refreshed from pixels), optional alignment, multi-scale contexts."""

    def __init__(self, channels: int, context_channels: int, num_qualities: int, alignment: str = "none") -> None:
        super().__init__()
        if alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
        n, c = int(channels), int(context_channels)
        self.alignment = alignment
        # pixels -> a feature like the decoder's F (used after intra frames and at refreshes)
        self.from_pixels = nn.Sequential(_conv(3, n, 3, 2), nn.LeakyReLU(0.1), _conv(n, n))
        self.refine = nn.Sequential(_conv(n, c), nn.LeakyReLU(0.1), _conv(c, c))
        self.modulation = QualityGain(num_qualities, c, spread=1.0)
        self.down2 = nn.Sequential(_conv(c, c, 3, 2), nn.LeakyReLU(0.1), _conv(c, c))
        self.down3 = nn.Sequential(_conv(c, c, 3, 2), nn.LeakyReLU(0.1), _conv(c, c))
        self.down4 = nn.Sequential(_conv(c, c, 3, 2), nn.LeakyReLU(0.1), _conv(c, c))
        if alignment == "extrapolated":
            self.flow = nn.Sequential(_conv(2 * n, n), nn.LeakyReLU(0.1), _conv(n, n // 2, 3, 2), nn.LeakyReLU(0.1),
                                      _conv(n // 2, 2))
            nn.init.zeros_(self.flow[-1].weight)
            nn.init.zeros_(self.flow[-1].bias)

    def source(self, feature: Tensor | None, older: Tensor | None, x_hat: Tensor, refresh: bool) -> Tensor:
        """The feature ``[B, N, H/2, W/2]`` to build contexts from.

        ``feature``/``older``: the decoder features of the previous two frames (None after an intra
        frame); ``x_hat [B, 3, H, W]``: the previous decoded frame; ``refresh``: re-extract from pixels.
        """
        if refresh or feature is None:
            return self.from_pixels(x_hat)
        if self.alignment == "extrapolated" and older is not None:
            flow = self.flow(torch.cat([feature, older], dim=1))
            flow = F.interpolate(flow, size=feature.shape[-2:], mode="bilinear", align_corners=False) * 2.0
            return warp(feature, flow)
        return feature

    def forward(self, source: Tensor, quality: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Contexts ``(c1, c2, c3, c4)`` at 1/2, 1/4, 1/8 and 1/16 of the frame size."""
        c1 = self.refine(source) * self.modulation.gain(quality)
        c2 = self.down2(c1)
        c3 = self.down3(c2)
        return c1, c2, c3, self.down4(c3)


__all__ = ["ALIGNMENTS", "TemporalContext", "warp"]
