"""Frame-rate audio encoder: STFT front-end, ConvNeXt stages and strided downsampling."""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from neuralcodec.codecs.audio.layers import ChannelLayerNorm, ConvNeXtStack, apply_mask
from neuralcodec.codecs.audio.spectral import STFTFrontend


class SpectralEncoder(nn.Module):
    """Waveform ``[B, 1, T]`` -> latent ``[B, D, T // hop]``.

    The STFT runs with hop ``hop_length / prod(strides)``; each stage is a ConvNeXt stack followed
    by a strided convolution, so the network works at (a small multiple of) the token frame rate.
    """

    def __init__(self, hop_length: int, latent_dim: int, channels: Sequence[int] = (256, 384),
                 depths: Sequence[int] = (3, 3), strides: Sequence[int] = (2,), fft_factor: int = 4,
                 attention: bool = False) -> None:
        super().__init__()
        if len(channels) != len(depths) or len(strides) != len(channels) - 1:
            raise ValueError("need len(channels) == len(depths) == len(strides) + 1")
        total_stride = 1
        for s in strides:
            total_stride *= s
        if hop_length % total_stride:
            raise ValueError(f"hop_length {hop_length} is not divisible by the total stride {total_stride}")
        self.hop_length = hop_length
        self.frontend = STFTFrontend(fft_factor * hop_length // total_stride, hop_length // total_stride)
        self.stem = nn.Conv1d(self.frontend.num_bins, channels[0], 7, padding=3)
        self.stem_norm = ChannelLayerNorm(channels[0])
        self.stages = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        self.strides = tuple(strides)
        for i, (dim, depth) in enumerate(zip(channels, depths)):
            last = i == len(channels) - 1
            self.stages.append(ConvNeXtStack(dim, depth, attention_after=(depth - 1,) if attention and last else ()))
            if not last:
                stride = strides[i]
                self.downsamplers.append(nn.Sequential(
                    ChannelLayerNorm(dim), nn.Conv1d(dim, channels[i + 1], 2 * stride, stride=stride, padding=stride // 2)))
        self.out_norm = ChannelLayerNorm(channels[-1])
        self.proj = nn.Conv1d(channels[-1], latent_dim, 1)

    def forward(self, wav: Tensor, mask: Tensor | None = None) -> Tensor:
        """``wav`` ``[B, 1, T]`` with ``T % hop == 0``; ``mask`` ``[B, 1, T // hop]`` marks valid frames."""
        x = self.frontend(wav)
        fine_mask = None
        if mask is not None:
            factor = x.shape[-1] // mask.shape[-1]
            fine_mask = mask.repeat_interleave(factor, dim=-1)
        x = apply_mask(self.stem_norm(self.stem(apply_mask(x, fine_mask))), fine_mask)
        for i, stage in enumerate(self.stages):
            x = stage(x, fine_mask)
            if i < len(self.downsamplers):
                x = self.downsamplers[i](x)
                if fine_mask is not None:
                    fine_mask = F.max_pool1d(fine_mask, self.strides[i])
                x = apply_mask(x, fine_mask)
        return apply_mask(self.proj(self.out_norm(x)), mask)
