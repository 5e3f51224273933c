"""Harmonic excitation from a transmitted pitch track: the phase reference of a pitch-aware decoder.

A decoder conditioned on pitch *features* (:meth:`~neuralcodec.codecs.audio.pitch.PitchQuantizer.features`)
still has to invent a phase that advances at exactly ``k * f0`` for every harmonic ``k``, frame after
frame; our GAN-trained iSTFT heads learn that poorly at CPU training budgets (the speech_pitch pilot
decoded a median 48 cents off the transmitted pitch, the quantizer's own error being under 15).
Source-filter vocoders (LPCNet, NSF, DDSP) do not learn it at all: they synthesise a harmonic source
at the known F0. This module does the same for the iSTFT head: it renders a band-limited harmonic
comb ``sum_k cos(2 pi k phi(t))`` at the transmitted F0 (silent in unvoiced frames) and returns its
STFT on the head's frames, whose per-bin phase the head can adopt (see
:class:`~neuralcodec.codecs.audio.spectral.ISTFTHead`).

Phase bookkeeping: the F0 is constant within a token frame, so the phase (in cycles) at the start of
frame ``n`` is ``phase0 + sum_{j < n} f0_j * hop / sr``: it depends on earlier frames only, and a
chunked decoder passes the phase accumulated over the frames before its window (:meth:`cycles`) to
decode exactly what whole-file decoding gives (up to float64 rounding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class HarmonicExcitation(nn.Module):
    """F0 per token frame ``[B, N]`` (Hz, 0 = unvoiced) -> complex STFT ``[B, n_fft // 2 + 1, N * hop / stft_hop + 1]``
    of a harmonic comb at that F0 (frames centred on multiples of ``stft_hop``, as ``torch.istft(center=True)``).

    Harmonics reach ``max_frequency`` (default: 95 % of Nyquist), each with amplitude 1; the comb is
    zero in unvoiced frames and switches on and off at frame boundaries (the STFT window smooths it).
    """

    def __init__(self, sample_rate: int, hop_length: int, n_fft: int, stft_hop: int, fmin: float = 60.0,
                 max_frequency: float | None = None) -> None:
        super().__init__()
        if hop_length % stft_hop:
            raise ValueError(f"the token hop {hop_length} must be a multiple of the STFT hop {stft_hop}")
        self.sample_rate, self.hop_length = int(sample_rate), int(hop_length)
        self.n_fft, self.stft_hop = int(n_fft), int(stft_hop)
        self.max_frequency = 0.95 * sample_rate / 2 if max_frequency is None else float(max_frequency)
        self.max_harmonics = max(1, int(self.max_frequency // fmin))  # F0 below fmin is clipped to fmin's count
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def cycles(self, f0: Tensor) -> Tensor:
        """Phase advance over the frames of ``f0 [B, N]``, in cycles modulo 1, float64 ``[B]``."""
        return torch.frac((f0.double() * (self.hop_length / self.sample_rate)).sum(-1))

    def waveform(self, f0: Tensor, phase0: Tensor | None = None) -> Tensor:
        """The comb ``[B, N * hop]`` (float32) for ``f0 [B, N]``; ``phase0 [B]``: cycles at the first sample."""
        batch, frames = f0.shape
        f0 = f0.double()
        per_sample = f0 / self.sample_rate                                     # cycles per sample [B, N]
        start = torch.cumsum(per_sample * self.hop_length, dim=-1) - per_sample * self.hop_length
        if phase0 is not None:
            start = start + phase0.double()[:, None]
        start = torch.frac(start)                                              # cycles at each frame start
        offsets = torch.arange(self.hop_length, dtype=torch.float64, device=f0.device)
        phase = torch.frac(start[..., None] + per_sample[..., None] * offsets)  # [B, N, hop]
        top = torch.where(f0 > 0, (self.max_frequency / f0.clamp_min(1e-3)).floor().clamp(0, self.max_harmonics),
                          torch.zeros_like(f0))[..., None]                     # harmonics per frame [B, N, 1]
        # sum_{k=1..K} cos(k theta) = (sin((K + 1/2) theta) - sin(theta / 2)) / (2 sin(theta / 2)), -> K at theta = 0
        half = torch.pi * phase
        den = torch.sin(half)
        safe = den.abs() > 1e-9
        comb = (torch.sin((2 * top + 1) * half) - den) / (2 * torch.where(safe, den, torch.ones_like(den)))
        comb = torch.where(safe, comb, top.expand_as(comb))
        return comb.float().reshape(batch, -1)

    def forward(self, f0: Tensor, phase0: Tensor | None = None) -> Tensor:
        wav = self.waveform(f0, phase0)
        pad = self.n_fft // 2
        padded = F.pad(wav, (pad, pad))  # zero padding, as the encoder's front-end: batch padding stays inert
        return torch.stft(padded, self.n_fft, self.stft_hop, window=self.window, center=False, return_complex=True)
