"""STFT front-end (encoder input) and iSTFT head (decoder output): the frame-rate boundary.

The encoder never convolves at the sample rate: it sees log-magnitude STFT frames. The Vocos-style
decoder predicts magnitude and phase per frame and the inverse STFT makes the waveform. Both use
zero padding at the edges (not reflection), so a signal followed by batch padding produces the
same frames as the signal alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class STFTFrontend(nn.Module):
    """Waveform ``[B, 1, T]`` -> log-magnitude frames ``[B, n_fft // 2 + 1, T // hop]``.

    Frame ``k`` is centred on sample ``k * hop + hop / 2`` of the zero-padded signal, so ``T``
    (a multiple of ``hop``) gives exactly ``T // hop`` frames.
    """

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        if n_fft < hop_length:
            raise ValueError("n_fft must be at least hop_length")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    @property
    def num_bins(self) -> int:
        return self.n_fft // 2 + 1

    def forward(self, wav: Tensor) -> Tensor:
        batch, channels, length = wav.shape
        if channels != 1 or length % self.hop_length:
            raise ValueError(f"expected [B, 1, k*{self.hop_length}] waveform, got {tuple(wav.shape)}")
        left = (self.n_fft - self.hop_length) // 2
        right = self.n_fft - self.hop_length - left
        padded = F.pad(wav[:, 0], (left, right))
        spec = torch.stft(padded, self.n_fft, self.hop_length, window=self.window, center=False, return_complex=True)
        return torch.log(spec.abs().clamp_min(1e-5))


class ISTFTHead(nn.Module):
    """Frame features ``[B, C, F]`` -> waveform ``[B, 1, F * hop]`` through predicted magnitude and phase.

    A linear layer gives ``n_fft + 2`` values per frame: log-magnitude and a phase angle for each
    bin (Vocos). The iSTFT uses ``F + 1`` frames (the last one repeated) with centred windows so
    every output sample is covered by full overlap-add support.

    ``harmonic_phase=True`` takes the phase of voiced frames from a harmonic excitation at the
    transmitted pitch (:class:`~neuralcodec.codecs.audio.excitation.HarmonicExcitation`): ``forward``
    then also takes the excitation's complex STFT ``[B, n_fft // 2 + 1, F + 1]``, and wherever it is
    non-zero the bin's phase is the excitation's plus an offset from a zero-initialised linear layer
    (the filter's phase response, learned); elsewhere (unvoiced frames) the head's own phase. So the
    periodicity is exact by construction and the network only learns magnitudes and phase offsets.
    Why not a gain on the excitation that starts at zero (a warm start that decodes unchanged): the
    network cannot see the excitation's absolute phase, so a small excitation term adds at random
    phases to its own prediction and gets no consistent gradient (tried: the gain stayed at ~0.001
    over 1,000 generator steps).
    """

    def __init__(self, dim: int, n_fft: int, hop_length: int, harmonic_phase: bool = False) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.proj = nn.Linear(dim, n_fft + 2)
        self.phase_offset: nn.Linear | None = None
        if harmonic_phase:
            self.phase_offset = nn.Linear(dim, n_fft // 2 + 1)
            nn.init.zeros_(self.phase_offset.weight)
            nn.init.zeros_(self.phase_offset.bias)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, x: Tensor, excitation: Tensor | None = None) -> Tensor:
        if (excitation is None) != (self.phase_offset is None):
            raise ValueError("the excitation spectrum is required exactly when the head was built with harmonic_phase")
        x = F.pad(x, (0, 1), mode="replicate")
        out = self.proj(x.transpose(1, 2)).transpose(1, 2)
        log_mag, phase = out.chunk(2, dim=1)
        mag = torch.exp(log_mag.clamp(max=6.0))
        phase = phase.float()
        if self.phase_offset is not None:
            if excitation.shape != phase.shape:
                raise ValueError(f"excitation spectrum {tuple(excitation.shape)} does not match the head's {tuple(phase.shape)}")
            offset = self.phase_offset(x.transpose(1, 2)).transpose(1, 2).float()
            phase = torch.where(excitation.abs() > 1e-3, torch.angle(excitation) + offset, phase)
        spec = torch.polar(mag.float(), phase)
        frames = x.shape[-1]
        wav = torch.istft(spec, self.n_fft, self.hop_length, window=self.window, center=True,
                          length=(frames - 1) * self.hop_length)
        return wav.unsqueeze(1)
