"""Convolutional transforms of the mean-scale hyperprior (Balle et al. 2018, Minnen et al. 2018).

Reusable blocks (the video codecs reuse them as their intra-frame coder):

* :class:`AnalysisTransform` ``g_a``: image ``[B, 3, H, W]`` -> latent ``y [B, M, H/16, W/16]``
  (four 5x5 stride-2 convolutions with GDN between them);
* :class:`SynthesisTransform` ``g_s``: ``y_hat [B, M, h, w]`` -> image ``[B, 3, 16h, 16w]``
  (transposed convolutions with inverse GDN).

The hyper-analysis and hyper-synthesis (``z [B, N, h/4, w/4]`` and the mean/scale predictors)
belong to :class:`neuralcodec.entropy.Hyperprior`, whose scale branch is integer-exact. The
total stride from pixels to ``z`` is therefore :data:`STRIDE` = 64: images are padded to a
multiple of it before coding (see :mod:`neuralcodec.codecs.image.padding`).
"""

from __future__ import annotations

from torch import nn

from neuralcodec.codecs.image.gdn import GDN

#: Downsampling factor from pixels to the latent ``y``.
LATENT_STRIDE = 16
#: Downsampling factor from pixels to the side latent ``z``.
STRIDE = 64


def conv_down(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """Strided convolution that divides the spatial size exactly by ``stride``."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)


def conv_up(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """Transposed convolution that multiplies the spatial size exactly by ``stride``."""
    return nn.ConvTranspose2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2,
                              output_padding=stride - 1)


class AnalysisTransform(nn.Sequential):
    """``g_a``: ``[B, in_ch, H, W]`` -> ``[B, M, H/16, W/16]`` (conv + GDN, x4)."""

    def __init__(self, N: int, M: int, in_ch: int = 3) -> None:
        super().__init__(
            conv_down(in_ch, N), GDN(N),
            conv_down(N, N), GDN(N),
            conv_down(N, N), GDN(N),
            conv_down(N, M),
        )


class SynthesisTransform(nn.Sequential):
    """``g_s``: ``[B, M, h, w]`` -> ``[B, out_ch, 16h, 16w]`` (transposed conv + inverse GDN, x4)."""

    def __init__(self, N: int, M: int, out_ch: int = 3) -> None:
        super().__init__(
            conv_up(M, N), GDN(N, inverse=True),
            conv_up(N, N), GDN(N, inverse=True),
            conv_up(N, N), GDN(N, inverse=True),
            conv_up(N, out_ch),
        )


def count_parameters(module: nn.Module) -> int:
    """Number of scalars in ``module``'s parameters."""
    return sum(p.numel() for p in module.parameters())


__all__ = [
    "AnalysisTransform",
    "LATENT_STRIDE",
    "STRIDE",
    "SynthesisTransform",
    "conv_down",
    "conv_up",
    "count_parameters",
]

