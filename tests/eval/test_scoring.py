"""Delay removal before scoring: sample-exact for waveform codecs, envelope-based for phase-free ones."""

from __future__ import annotations

import math

import torch

from neuralcodec.eval.scoring import align, delay, score

RATE = 16000


def _modulated_noise(seconds: float = 2.0, seed: int = 0) -> torch.Tensor:
    """Noise under a syllable-like (4 Hz, gated) envelope: a stand-in for speech."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * RATE)) / RATE
    envelope = torch.clamp(torch.sin(2 * math.pi * 4 * t + torch.rand(1, generator=g) * 6), min=0) ** 2
    return 0.3 * envelope * torch.randn(t.numel(), generator=g)


def _shift(x: torch.Tensor, lag: int) -> torch.Tensor:
    return torch.cat([torch.zeros(lag), x[: x.numel() - lag]])


def _random_phase(x: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """Same short-time magnitudes, random phases: what a GAN decoder's output is to the waveform."""
    g = torch.Generator().manual_seed(seed)
    window = torch.hann_window(256)
    spec = torch.stft(x, 256, 64, window=window, return_complex=True)
    phase = torch.rand(spec.shape, generator=g) * 2 * math.pi
    return torch.istft(spec.abs() * torch.exp(1j * phase), 256, 64, window=window, length=x.numel())


def test_waveform_preserving_codec_gets_the_exact_delay() -> None:
    ref = _modulated_noise()
    assert delay(_shift(ref, 123), ref, 640, RATE) == 123
    assert delay(ref, _shift(ref, 57), 640, RATE) == -57


def test_phase_free_codec_is_aligned_by_its_envelope() -> None:
    ref = _modulated_noise()
    phase_free = _random_phase(ref)
    # No true delay: the estimate must stay within the envelope's resolution (not jump +-40 ms).
    assert abs(delay(phase_free, ref, 640, RATE)) <= 64
    assert abs(delay(_shift(phase_free, 240), ref, 640, RATE) - 240) <= 64


def test_score_removes_the_envelope_delay() -> None:
    ref = _modulated_noise(seconds=3.0)
    late = _shift(_random_phase(ref), 320)
    est, lag = align(late, ref, RATE)
    assert est.numel() == ref.numel() and abs(lag - 320) <= 64
    scored = score(late, ref, RATE, speech=False)
    assert scored["delay"] == lag
    # Removing the delay brings the mel distance back near the unshifted signal's.
    unshifted = score(_random_phase(ref), ref, RATE, speech=False)["mel"]
    assert scored["mel"] < unshifted * 1.1


def test_silence_has_no_delay() -> None:
    silence = torch.zeros(RATE)
    assert delay(silence, silence, 640, RATE) == 0
