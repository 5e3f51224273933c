"""Pitch fidelity of decoded speech: F0 error and voicing agreement against the reference.

PESQ and STOI fold pitch errors into one number; a codec that keeps the spectral envelope but
renders the wrong or unstable pitch (our GAN decoders at low rates) scores a low mel distance and
still sounds wrong. These are the standard pitch-tracking error rates, computed with Praat's
autocorrelation pitch tracker (``praat-parselmouth``) on both signals with the same settings:

* ``f0_cents``: median absolute F0 error in cents over frames voiced in both signals (fine pitch);
* ``gpe``: gross pitch error, the fraction of those frames off by more than 20 %;
* ``vde``: voicing decision error, the fraction of all frames voiced in one signal only;
* ``ffe``: F0 frame error, the fraction of all frames with a voicing error or a gross pitch error.

Inputs are aligned mono ``[T]`` waveforms of the same length (see :func:`neuralcodec.eval.scoring.align`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: Praat pitch settings shared by reference and decoded signal
TIME_STEP_S = 0.01
PITCH_FLOOR_HZ = 60.0
PITCH_CEILING_HZ = 500.0
#: relative F0 deviation counted as a gross pitch error
GROSS_ERROR = 0.2


def f0_track(wav: torch.Tensor, rate: int) -> np.ndarray:
    """F0 in Hz per 10 ms frame of a mono ``[T]`` waveform; 0 where Praat finds the frame unvoiced."""
    import parselmouth

    sound = parselmouth.Sound(wav.detach().double().cpu().numpy(), sampling_frequency=float(rate))
    pitch = sound.to_pitch_ac(time_step=TIME_STEP_S, pitch_floor=PITCH_FLOOR_HZ, pitch_ceiling=PITCH_CEILING_HZ)
    return np.nan_to_num(np.asarray(pitch.selected_array["frequency"], dtype=np.float64))


def pitch_errors(decoded: torch.Tensor, reference: torch.Tensor, rate: int) -> dict[str, float]:
    """``f0_cents``, ``gpe``, ``vde`` and ``ffe`` of ``decoded [T]`` against ``reference [T]`` (see the module doc)."""
    return track_errors(f0_track(decoded, rate), f0_track(reference, rate))


def track_errors(estimate: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """The four error rates from two F0 tracks (Hz per frame, 0 = unvoiced) on the same frames.

    NaN for ``f0_cents``/``gpe`` when no frame is voiced in both, and for all four when there is no
    frame. Also used with :class:`neuralcodec.codecs.audio.pitch.YinPitch` tracks (validation).
    """
    n = min(estimate.size, reference.size)
    if n == 0:
        return {"f0_cents": math.nan, "gpe": math.nan, "vde": math.nan, "ffe": math.nan}
    est, ref = np.asarray(estimate[:n], dtype=np.float64), np.asarray(reference[:n], dtype=np.float64)
    v_est, v_ref = est > 0, ref > 0
    both = v_est & v_ref
    voicing_errors = int(np.sum(v_est != v_ref))
    if both.any():
        ratio = est[both] / ref[both]
        cents = float(np.median(np.abs(1200.0 * np.log2(ratio))))
        gross = int(np.sum(np.abs(ratio - 1.0) > GROSS_ERROR))
        gpe = gross / int(both.sum())
    else:
        cents, gross, gpe = math.nan, 0, math.nan
    return {"f0_cents": cents, "gpe": gpe, "vde": voicing_errors / n, "ffe": (voicing_errors + gross) / n}
