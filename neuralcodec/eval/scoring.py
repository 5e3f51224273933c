"""Objective scores of decoded audio against its reference, after removing a constant delay."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

#: largest delay (seconds) searched for by :func:`align`
MAX_LAG_S = 0.04
_MEL: dict[int, Any] = {}


#: smoothing window (seconds) of the amplitude envelope that :func:`delay` correlates
ENVELOPE_S = 0.004
#: normalised waveform correlation above which the waveform (sample-exact) lag is trusted
WAVEFORM_TRUST = 0.5


def _xcorr_window(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[np.ndarray, int]:
    """Cross-correlation of ``a`` against ``b`` at lags ``-max_lag .. max_lag`` (lag > 0: ``a`` is late)."""
    from scipy.signal import correlate

    corr = correlate(a, b, mode="full", method="fft")
    centre = b.size - 1
    lo = max(0, centre - max_lag)
    return corr[lo: centre + max_lag + 1], lo - centre


def _envelope(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average of ``|x|`` over ``width`` samples, mean removed."""
    c = np.concatenate([[0.0], np.cumsum(np.abs(x))])
    env = (c[width:] - c[:-width]) / width
    return env - env.mean()


def delay(decoded: torch.Tensor, reference: torch.Tensor, max_lag: int, rate: int = 16000) -> int:
    """Samples by which ``decoded`` lags ``reference``, within +-``max_lag``.

    The lag is found on the amplitude envelopes (``|x|`` smoothed over :data:`ENVELOPE_S`), then
    refined to the sample on the waveforms when they correlate (normalised peak >=
    :data:`WAVEFORM_TRUST`). Envelopes first because generative and parametric codecs (our GAN
    decoders, Codec2) do not keep the waveform's phase: their waveform cross-correlation peaks at an
    arbitrary lag, and shifting by it (up to 40 ms) wrecked STOI and the mel distance.
    """
    n = min(decoded.numel(), reference.numel())
    est = decoded[:n].double().numpy()
    ref = reference[:n].double().numpy()
    width = max(1, min(n, int(round(ENVELOPE_S * rate))))
    env, offset = _xcorr_window(_envelope(est, width), _envelope(ref, width), max_lag)
    if not np.any(env):
        return 0
    lag = int(np.argmax(env)) + offset
    # Sample-exact refinement for waveform-preserving codecs, near the envelope's lag only.
    wave, woff = _xcorr_window(est, ref, max_lag)
    lo, hi = max(0, lag - width - woff), min(wave.size, lag + width - woff + 1)
    if lo < hi:
        best = lo + int(np.argmax(wave[lo:hi]))
        norm = math.sqrt(float(np.dot(est, est)) * float(np.dot(ref, ref)))
        if norm > 0 and wave[best] / norm >= WAVEFORM_TRUST:
            lag = best + woff
    return lag


def align(decoded: torch.Tensor, reference: torch.Tensor, rate: int) -> tuple[torch.Tensor, int]:
    """``decoded`` shifted by its constant delay and cut/padded to the reference length; and the delay."""
    lag = delay(decoded, reference, int(MAX_LAG_S * rate), rate)
    est = decoded.float()[lag:] if lag >= 0 else torch.nn.functional.pad(decoded.float(), (-lag, 0))
    n = reference.numel()
    est = est[:n]
    if est.numel() < n:
        est = torch.nn.functional.pad(est, (0, n - est.numel()))
    return est, lag


def score(decoded: torch.Tensor, reference: torch.Tensor, rate: int, speech: bool) -> dict[str, float]:
    """PESQ-WB, STOI and pitch errors (speech only), mel distance and SI-SDR of ``decoded [T']`` against
    ``reference [T]``. The pitch errors are :func:`neuralcodec.eval.pitch.pitch_errors`'s ``f0_cents``,
    ``gpe``, ``vde`` and ``ffe`` (NaN for non-speech).

    A constant delay (Codec2 has ~16 ms) is removed first: PESQ aligns by itself, STOI, SI-SDR and
    the mel distance do not. The delay in samples is returned under ``"delay"``.
    """
    from neuralcodec.eval.pitch import pitch_errors
    from neuralcodec.train.losses import MultiResolutionMelLoss
    from neuralcodec.train.metrics import si_sdr, speech_quality

    est, lag = align(decoded, reference, rate)
    if rate not in _MEL:
        _MEL[rate] = MultiResolutionMelLoss(rate)
    with torch.no_grad():
        mel = float(_MEL[rate](est[None, None], reference[None, None]))
    out = {"mel": mel, "si_sdr": si_sdr(est, reference), "pesq_wb": math.nan, "stoi": math.nan, "delay": lag,
           "f0_cents": math.nan, "gpe": math.nan, "vde": math.nan, "ffe": math.nan}
    if speech:
        out.update(speech_quality(est[None], reference[None], rate))
        out.update(pitch_errors(est, reference, rate))
    return out
