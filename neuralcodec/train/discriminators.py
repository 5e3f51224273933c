"""GAN discriminators for audio codecs: multi-period (waveform) and multi-resolution STFT (spectral).

Each discriminator returns, per sub-discriminator, its logits and its intermediate feature maps
(for the feature-matching loss): ``list[tuple[Tensor, list[Tensor]]]``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

DiscriminatorOutput = list[tuple[Tensor, list[Tensor]]]


def conv_stack(convs: nn.ModuleList, out: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Leaky-ReLU conv layers then an output conv: ``(flattened logits, every feature map)``."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        features.append(x)
    x = out(x)
    features.append(x)
    return x.flatten(1), features


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN period discriminator: the waveform folded into ``[B, 1, T / p, p]`` and 2-D convs along time."""

    def __init__(self, period: int, channels: Sequence[int] = (32, 64, 128, 256), kernel_size: int = 5,
                 stride: int = 3) -> None:
        super().__init__()
        self.period = period
        layers = []
        in_ch = 1
        for ch in channels:
            layers.append(weight_norm(nn.Conv2d(in_ch, ch, (kernel_size, 1), (stride, 1), padding=(kernel_size // 2, 0))))
            in_ch = ch
        layers.append(weight_norm(nn.Conv2d(in_ch, in_ch, (kernel_size, 1), 1, padding=(kernel_size // 2, 0))))
        self.convs = nn.ModuleList(layers)
        self.out = weight_norm(nn.Conv2d(in_ch, 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, wav: Tensor) -> tuple[Tensor, list[Tensor]]:
        batch, _, length = wav.shape
        if length % self.period:
            wav = F.pad(wav, (0, self.period - length % self.period), mode="reflect")
        x = wav.view(batch, 1, -1, self.period)
        return conv_stack(self.convs, self.out, x)


class MultiPeriodDiscriminator(nn.Module):
    """Period discriminators for periods 2, 3, 5, 7, 11 (by default): periodic waveform structure."""

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), channels: Sequence[int] = (32, 64, 128, 256)) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)

    def forward(self, wav: Tensor) -> DiscriminatorOutput:
        return [d(wav) for d in self.discriminators]


class STFTDiscriminator(nn.Module):
    """2-D conv discriminator on one log-magnitude spectrogram resolution (Vocos' MRD design)."""

    def __init__(self, n_fft: int, hop_length: int, channels: int = 32) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, channels, (7, 5), (2, 2), padding=(3, 2))),
            weight_norm(nn.Conv2d(channels, channels, (5, 3), (2, 1), padding=(2, 1))),
            weight_norm(nn.Conv2d(channels, channels, (5, 3), (2, 1), padding=(2, 1))),
            weight_norm(nn.Conv2d(channels, channels, 3, padding=1)),
        ])
        self.out = weight_norm(nn.Conv2d(channels, 1, 3, padding=1))

    def forward(self, wav: Tensor) -> tuple[Tensor, list[Tensor]]:
        spec = torch.stft(wav[:, 0], self.n_fft, self.hop_length, window=self.window, return_complex=True)
        x = torch.log1p(spec.abs()).unsqueeze(1)  # [B, 1, bins, frames]
        return conv_stack(self.convs, self.out, x)


class MultiResolutionSTFTDiscriminator(nn.Module):
    """STFT discriminators at several resolutions (``n_fft`` values; hop = n_fft / 4)."""

    def __init__(self, fft_sizes: Sequence[int] = (256, 512, 1024), channels: int = 32) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(n, n // 4, channels) for n in fft_sizes)

    def forward(self, wav: Tensor) -> DiscriminatorOutput:
        return [d(wav) for d in self.discriminators]
