"""Objective audio quality metrics used in validation and benchmarks (PESQ-WB, STOI, pitch errors, SI-SDR)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from neuralcodec.media.audio import resample


def si_sdr(estimate: Tensor, reference: Tensor, eps: float = 1e-8) -> float:
    """Scale-invariant signal-to-distortion ratio in dB of 1-D signals."""
    reference = reference - reference.mean()
    estimate = estimate - estimate.mean()
    alpha = (estimate @ reference) / (reference @ reference + eps)
    target = alpha * reference
    noise = estimate - target
    return float(10 * torch.log10((target @ target + eps) / (noise @ noise + eps)))


def speech_quality(estimate: Tensor, reference: Tensor, sample_rate: int) -> dict[str, float]:
    """PESQ-WB (at 16 kHz) and STOI of ``[B, T]`` signals, averaged over the batch.

    PESQ needs 8 or 16 kHz audio, so signals at other rates are resampled to 16 kHz first. Items on
    which PESQ fails (e.g. silence) are skipped; NaN is returned when none succeeds.
    """
    from pesq import pesq
    from pystoi import stoi

    est16, ref16 = estimate.detach().float().cpu(), reference.detach().float().cpu()
    if sample_rate != 16000:
        est16, ref16 = resample(est16, sample_rate, 16000), resample(ref16, sample_rate, 16000)
    pesq_values, stoi_values = [], []
    for e, r in zip(est16.numpy().astype(np.float64), ref16.numpy().astype(np.float64)):
        try:
            pesq_values.append(pesq(16000, r, e, "wb"))
        except Exception:
            pass
        stoi_values.append(stoi(r, e, 16000, extended=False))
    return {"pesq_wb": float(np.mean(pesq_values)) if pesq_values else math.nan,
            "stoi": float(np.mean(stoi_values)) if stoi_values else math.nan}


def pitch_quality(estimate: Tensor, reference: Tensor, sample_rate: int) -> dict[str, float]:
    """Median F0 error (cents), gross pitch error and voicing error of ``[B, T]`` signals, batch means.

    Tracks both with :class:`neuralcodec.codecs.audio.pitch.YinPitch` (10 ms frames; pure torch, so
    validation needs no Praat) and scores them with :func:`neuralcodec.eval.pitch.track_errors`;
    items without a frame voiced in both are left out of the F0 error and the gross pitch error.
    """
    from neuralcodec.codecs.audio.pitch import YinPitch
    from neuralcodec.eval.pitch import track_errors

    tracker = YinPitch(sample_rate, sample_rate // 100)
    est = tracker(estimate.detach().float().cpu())[0].numpy()
    ref = tracker(reference.detach().float().cpu())[0].numpy()
    rows = [track_errors(e, r) for e, r in zip(est, ref)]
    out = {}
    for key in ("f0_cents", "gpe", "vde"):
        values = [row[key] for row in rows if not math.isnan(row[key])]
        out[key] = float(np.mean(values)) if values else math.nan
    return out
