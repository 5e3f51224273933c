"""Losses for codec training: multi-resolution mel L1, multi-resolution linear STFT, hinge GAN terms,
feature matching."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
import torchaudio
from torch import Tensor, nn

from neuralcodec.precision import full_precision
from neuralcodec.train.discriminators import DiscriminatorOutput


class MultiResolutionMelLoss(nn.Module):
    """Mean L1 distance between log-mel spectrograms at several STFT resolutions.

    Also serves as the validation "mel distance" metric. Inputs are ``[B, 1, T]`` waveforms; computed
    in float32 even inside a mixed-precision region (log of small mel energies).
    """

    def __init__(self, sample_rate: int, fft_sizes: Sequence[int] = (256, 512, 1024, 2048),
                 n_mels: Sequence[int] = (20, 40, 80, 128)) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(
            torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n, hop_length=n // 4, n_mels=m, power=1.0,
                                                 center=True, f_max=sample_rate / 2)
            for n, m in zip(fft_sizes, n_mels))

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        with full_precision(fake):
            fake, real = fake.float(), real.float()
            loss = fake.new_zeros(())
            for mel in self.transforms:
                loss = loss + F.l1_loss(torch.log(mel(fake[:, 0]).clamp_min(1e-5)),
                                        torch.log(mel(real[:, 0]).clamp_min(1e-5)))
            return loss / len(self.transforms)


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1 on linear-frequency STFTs at several resolutions.

    Complements :class:`MultiResolutionMelLoss`: mel bands merge the harmonics above ~1 kHz, so a
    mel loss cannot see whether the decoder renders the pitch harmonics or noise between them; a
    1024/2048-point linear STFT resolves them. Spectral convergence (relative Frobenius error of the
    magnitudes) weights the loud bins, i.e. the harmonics and formants. Inputs are ``[B, 1, T]``
    waveforms; computed in float32. The windows are made on the fly (no state in checkpoints).
    """

    def __init__(self, fft_sizes: Sequence[int] = (512, 1024, 2048)) -> None:
        super().__init__()
        self.fft_sizes = tuple(int(n) for n in fft_sizes)

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        with full_precision(fake):
            fake, real = fake[:, 0].float(), real[:, 0].float()
            loss = fake.new_zeros(())
            for n in self.fft_sizes:
                window = torch.hann_window(n, device=fake.device)
                mag_f, mag_r = (torch.stft(x, n, n // 4, window=window, return_complex=True).abs().clamp_min(1e-5)
                                for x in (fake, real))
                convergence = torch.linalg.vector_norm(mag_f - mag_r) / torch.linalg.vector_norm(mag_r).clamp_min(1e-5)
                loss = loss + convergence + F.l1_loss(torch.log(mag_f), torch.log(mag_r))
            return loss / len(self.fft_sizes)


def discriminator_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput) -> Tensor:
    """Hinge loss for the discriminator, averaged over sub-discriminators (float32 sums)."""
    loss = real[0][0].new_zeros((), dtype=torch.float32)
    for (r, _), (f, _) in zip(real, fake):
        loss = loss + F.relu(1 - r.float()).mean() + F.relu(1 + f.float()).mean()
    return loss / len(real)


def generator_adversarial_loss(fake: DiscriminatorOutput) -> Tensor:
    """Hinge generator loss, averaged over sub-discriminators (float32 sums)."""
    loss = fake[0][0].new_zeros((), dtype=torch.float32)
    for f, _ in fake:
        loss = loss + F.relu(1 - f.float()).mean()
    return loss / len(fake)


def feature_matching_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput) -> Tensor:
    """Mean relative L1 distance between discriminator feature maps of real and generated audio
    (float32 sums, also for bf16 feature maps)."""
    loss = real[0][0].new_zeros((), dtype=torch.float32)
    count = 0
    for (_, real_feats), (_, fake_feats) in zip(real, fake):
        for r, f in zip(real_feats, fake_feats):
            r, f = r.detach().float(), f.float()
            loss = loss + (r - f).abs().mean() / (r.abs().mean() + 1e-5)
            count += 1
    return loss / max(count, 1)
