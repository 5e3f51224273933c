"""Audio decoders: Vocos-style (frame-rate ConvNeXt + iSTFT head) and HiFi-GAN-style (upsampling convs).

Both map a quantized latent ``[B, D, F]`` to a waveform ``[B, 1, F * hop]``.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from neuralcodec.codecs.audio.excitation import HarmonicExcitation
from neuralcodec.codecs.audio.layers import ChannelLayerNorm, ConvNeXtStack, apply_mask
from neuralcodec.codecs.audio.spectral import ISTFTHead


class VocosDecoder(nn.Module):
    """ConvNeXt backbone at ``upsample`` x the token rate, then an iSTFT head (WavTokenizer/Vocos).

    ``upsample > 1`` inserts a transposed convolution before the last ``depth // 2`` blocks so the
    iSTFT hop is ``hop_length / upsample``: a finer hop eases phase prediction for little compute.

    ``pitch_features > 0``: ``forward`` also takes per-frame pitch features ``[B, pitch_features, F]``
    (:meth:`neuralcodec.codecs.audio.pitch.PitchQuantizer.features`), added to the stem's output
    through a zero-initialised 1x1 convolution, so a decoder trained without pitch warm-starts
    unchanged and learns to use it.

    ``harmonic_excitation=True`` (needs ``pitch_features`` and ``sample_rate``): ``forward`` also takes
    the F0 per token frame ``[B, F]`` in Hz (and optionally the phase in cycles at the first sample,
    ``[B]``, for chunked decoding), renders a harmonic comb at that pitch
    (:class:`~neuralcodec.codecs.audio.excitation.HarmonicExcitation`) whose STFT phase the head
    takes in voiced frames, plus a learned offset (zero-initialised); unvoiced frames decode as before.
    """

    def __init__(self, latent_dim: int, hop_length: int, dim: int = 384, depth: int = 8, hidden: int | None = None,
                 upsample: int = 1, fft_factor: int = 4, attention: bool = False, pitch_features: int = 0,
                 harmonic_excitation: bool = False, sample_rate: int | None = None, fmin: float = 60.0) -> None:
        super().__init__()
        if hop_length % upsample:
            raise ValueError(f"hop_length {hop_length} is not divisible by upsample {upsample}")
        self.hop_length = hop_length
        self.upsample = upsample
        self.stem = nn.Conv1d(latent_dim, dim, 7, padding=3)
        self.stem_norm = ChannelLayerNorm(dim)
        self.pitch_proj: nn.Conv1d | None = None
        if pitch_features > 0:
            self.pitch_proj = nn.Conv1d(pitch_features, dim, 1)
            nn.init.zeros_(self.pitch_proj.weight)
            nn.init.zeros_(self.pitch_proj.bias)
        first = depth if upsample == 1 else depth - depth // 2
        self.backbone = ConvNeXtStack(dim, first, hidden, attention_after=(0,) if attention else ())
        if upsample > 1:
            self.up = nn.ConvTranspose1d(dim, dim, 2 * upsample, stride=upsample, padding=upsample // 2)
            self.fine = ConvNeXtStack(dim, depth - first, hidden)
        self.out_norm = ChannelLayerNorm(dim)
        n_fft, stft_hop = fft_factor * hop_length // upsample, hop_length // upsample
        self.excitation: HarmonicExcitation | None = None
        if harmonic_excitation:
            if pitch_features <= 0 or sample_rate is None:
                raise ValueError("harmonic_excitation needs the pitch input (pitch_features > 0) and the sample_rate")
            self.excitation = HarmonicExcitation(sample_rate, hop_length, n_fft, stft_hop, fmin=fmin)
        self.head = ISTFTHead(dim, n_fft, stft_hop, harmonic_phase=harmonic_excitation)

    def forward(self, z: Tensor, mask: Tensor | None = None, pitch: Tensor | None = None,
                f0: Tensor | None = None, phase0: Tensor | None = None) -> Tensor:
        x = self.stem_norm(self.stem(apply_mask(z, mask)))
        if (pitch is None) != (self.pitch_proj is None):
            raise ValueError("pitch features are required exactly when the decoder was built with pitch_features > 0")
        if (f0 is None) != (self.excitation is None):
            raise ValueError("f0 is required exactly when the decoder was built with harmonic_excitation")
        if self.pitch_proj is not None:
            x = x + self.pitch_proj(pitch)
        x = self.backbone(apply_mask(x, mask), mask)
        if self.upsample > 1:
            fine_mask = None if mask is None else mask.repeat_interleave(self.upsample, dim=-1)
            x = apply_mask(self.up(x), fine_mask)
            x = self.fine(x, fine_mask)
        x = self.out_norm(x)
        if self.excitation is None:
            return self.head(x)
        return self.head(x, self.excitation(f0, phase0))


class _ResBlock(nn.Module):
    """HiFi-GAN residual block with dilated convolutions (the "ResBlock1" design)."""

    def __init__(self, channels: int, kernel_size: int = 3, dilations: Sequence[int] = (1, 3, 5)) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=d * (kernel_size - 1) // 2))
            for d in dilations)
        self.convs2 = nn.ModuleList(
            weight_norm(nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2)) for _ in dilations)

    def forward(self, x: Tensor) -> Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1))
        return x


class HiFiGANDecoder(nn.Module):
    """Transposed-convolution upsampler with multi-receptive-field residual blocks (HiFi-Codec style).

    ``prod(rates)`` must equal ``hop_length``. Works at the sample rate in its last stages, so it
    costs far more per second of audio than :class:`VocosDecoder`.
    """

    def __init__(self, latent_dim: int, hop_length: int, channels: int = 256, rates: Sequence[int] = (8, 5, 4, 2),
                 kernel_sizes: Sequence[int] = (3, 7, 11), dilations: Sequence[int] = (1, 3, 5)) -> None:
        super().__init__()
        total = 1
        for r in rates:
            total *= r
        if total != hop_length:
            raise ValueError(f"prod(rates) = {total} must equal hop_length = {hop_length}")
        self.hop_length = hop_length
        self.pre = weight_norm(nn.Conv1d(latent_dim, channels, 7, padding=3))
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = channels
        for rate in rates:
            out_ch = max(ch // 2, 16)
            self.ups.append(weight_norm(nn.ConvTranspose1d(ch, out_ch, 2 * rate, stride=rate, padding=rate // 2 + rate % 2,
                                                           output_padding=rate % 2)))
            self.resblocks.append(nn.ModuleList(_ResBlock(out_ch, k, dilations) for k in kernel_sizes))
            ch = out_ch
        self.post = weight_norm(nn.Conv1d(ch, 1, 7, padding=3))

    def forward(self, z: Tensor, mask: Tensor | None = None) -> Tensor:
        x = self.pre(apply_mask(z, mask))
        for up, blocks in zip(self.ups, self.resblocks):
            x = up(F.leaky_relu(x, 0.1))
            x = sum(block(x) for block in blocks) / len(blocks)
        return self.post(F.leaky_relu(x)).tanh()
