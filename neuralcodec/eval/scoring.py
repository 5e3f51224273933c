"""Objective scores of decoded audio against its reference, after removing a constant delay."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

#: largest delay (seconds) searched for by :func:`align`
MAX_LAG_S = 0.04
_MEL: dict[int, Any] = {}


def delay(decoded: torch.Tensor, reference: torch.Tensor, max_lag: int) -> int:
    """Samples by which ``decoded`` lags ``reference`` (cross-correlation peak within +-``max_lag``)."""
    from scipy.signal import correlate

    n = min(decoded.numel(), reference.numel())
    corr = correlate(decoded[:n].double().numpy(), reference[:n].double().numpy(), mode="full", method="fft")
    centre = n - 1
    window = corr[max(0, centre - max_lag): centre + max_lag + 1]
    return int(np.argmax(window)) + max(0, centre - max_lag) - centre


def align(decoded: torch.Tensor, reference: torch.Tensor, rate: int) -> tuple[torch.Tensor, int]:
    """``decoded`` shifted by its constant delay and cut/padded to the reference length; and the delay."""
    lag = delay(decoded, reference, int(MAX_LAG_S * rate))
    est = decoded.float()[lag:] if lag >= 0 else torch.nn.functional.pad(decoded.float(), (-lag, 0))
    n = reference.numel()
    est = est[:n]
    if est.numel() < n:
        est = torch.nn.functional.pad(est, (0, n - est.numel()))
    return est, lag


def score(decoded: torch.Tensor, reference: torch.Tensor, rate: int, speech: bool) -> dict[str, float]:
    """PESQ-WB, STOI (speech only), mel distance and SI-SDR of ``decoded [T']`` against ``reference [T]``.

    A constant delay (Codec2 has ~16 ms) is removed first: PESQ aligns by itself, STOI, SI-SDR and
    the mel distance do not. The delay in samples is returned under ``"delay"``.
    """
    from neuralcodec.train.losses import MultiResolutionMelLoss
    from neuralcodec.train.metrics import si_sdr, speech_quality

    est, lag = align(decoded, reference, rate)
    if rate not in _MEL:
        _MEL[rate] = MultiResolutionMelLoss(rate)
    with torch.no_grad():
        mel = float(_MEL[rate](est[None, None], reference[None, None]))
    out = {"mel": mel, "si_sdr": si_sdr(est, reference), "pesq_wb": math.nan, "stoi": math.nan, "delay": lag}
    if speech:
        out.update(speech_quality(est[None], reference[None], rate))
    return out
