"""YinPitch, the encoder-side F0 tracker: agrees with Praat on real speech, is exact on tones,
batch == one by one, and frame-local (a frame ignores samples outside its window)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from neuralcodec.codecs.audio.pitch import YinPitch
from neuralcodec.media.audio import resample

RATE = 16000


def _tone(f0: float, seconds: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * RATE)) / RATE
    return 0.3 * sum(torch.sin(2 * math.pi * k * f0 * t + k) / k for k in range(1, int(4000 / f0) + 1))


@pytest.mark.parametrize("f0", [65.0, 108.0, 220.0, 470.0])
def test_harmonic_tones_get_their_pitch(f0):
    estimate, voiced = YinPitch(RATE, 320)(_tone(f0)[None])
    inner = estimate[0, 3:-3]  # away from the zero padding at the ends
    assert voiced[0, 3:-3].all() and torch.allclose(inner, torch.full_like(inner, f0), rtol=2e-3)


def test_silence_and_noise_are_unvoiced():
    silence = torch.zeros(1, RATE // 2)
    noise = 0.1 * torch.randn(1, RATE // 2, generator=torch.Generator().manual_seed(0))
    tracker = YinPitch(RATE, 320)
    assert not tracker(silence)[1].any()
    assert tracker(noise)[1].float().mean() < 0.1


def test_agrees_with_praat_on_real_speech(shared_data):
    """Male and female dev voices: gross disagreements with Praat's autocorrelation tracker on frames
    both call voiced stay under 3 %, the median deviation under 10 cents."""
    from neuralcodec.eval.pitch import f0_track

    tracker = YinPitch(RATE, 160)  # 10 ms frames, Praat's time step
    ratios = []
    for name in ("cmu_arctic/cmu_arctic_us_aew_a0001.flac", "cmu_arctic/cmu_arctic_us_axb_a0004.flac",
                 "ljspeech/LJ001-0004.flac"):
        wav, rate = sf.read(shared_data / "speech" / name, dtype="float32")
        wav = resample(torch.from_numpy(wav)[None], rate, RATE)[0]
        ours = tracker(wav[None])[0][0].numpy()
        praat = f0_track(wav, RATE)
        # Praat's frame k is centred at (k + 0.5) * 10 ms + a small offset: compare at the nearest frame.
        import parselmouth

        times = parselmouth.Sound(wav.double().numpy(), float(RATE)).to_pitch_ac(
            time_step=0.01, pitch_floor=60.0, pitch_ceiling=500.0).xs()
        ours = ours[np.clip(np.round(times * 100 - 0.5).astype(int), 0, ours.size - 1)]
        both = (ours > 0) & (praat > 0)
        assert both.mean() > 0.3
        ratios.append(ours[both] / praat[both])
    ratios = np.concatenate(ratios)
    assert np.mean(np.abs(ratios - 1) > 0.2) < 0.03
    assert np.median(np.abs(1200 * np.log2(ratios))) < 10


def test_batch_equals_one_by_one_and_frames_are_local():
    g = torch.Generator().manual_seed(1)
    a = _tone(150.0, 1.0) + 0.01 * torch.randn(RATE, generator=g)
    b = _tone(95.0, 1.0)
    tracker = YinPitch(RATE, 320)
    batch = tracker(torch.stack([a, b]))[0]
    assert torch.equal(batch[0], tracker(a[None])[0][0]) and torch.equal(batch[1], tracker(b[None])[0][0])
    # Replace everything after 0.5 s: frames whose window ends before that keep their value exactly.
    spliced = torch.cat([a[: RATE // 2], b[RATE // 2:]])
    keep = (RATE // 2 - tracker.frame_length) // tracker.hop - 1
    assert torch.equal(tracker(spliced[None])[0][0, :keep], tracker(a[None])[0][0, :keep])


def test_rejects_bad_settings_and_shapes():
    with pytest.raises(ValueError, match="fmin"):
        YinPitch(RATE, 320, fmin=600.0, fmax=500.0)
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        YinPitch(RATE, 320)(torch.zeros(1, 1, 100))
