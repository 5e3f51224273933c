"""Pitch errors of decoded speech: exact for identical signals, gross for a wrong pitch, voicing
errors for an unvoiced rendering, and part of :func:`score` for speech."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuralcodec.eval.pitch import f0_track, pitch_errors
from neuralcodec.eval.scoring import score

RATE = 16000


def _voice(f0: float, seconds: float = 1.0) -> torch.Tensor:
    """A vowel-like harmonic tone (partials up to 4 kHz, falling 6 dB/octave) with a 0.2 s pause in the middle."""
    t = torch.arange(int(seconds * RATE)) / RATE
    wav = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, int(4000 / f0) + 1))
    gate = ((t < 0.4 * seconds) | (t > 0.6 * seconds)).float()
    return 0.2 * wav * gate


def test_f0_track_finds_the_pitch_and_the_pause() -> None:
    track = f0_track(_voice(120.0), RATE)
    voiced = track[track > 0]
    assert voiced.size > 50 and abs(float(voiced.mean()) - 120.0) < 2.0
    assert (track == 0).sum() >= 15  # the 0.2 s pause (20 frames) is unvoiced


def test_identical_signals_have_no_pitch_error() -> None:
    ref = _voice(150.0)
    assert pitch_errors(ref, ref, RATE) == {"f0_cents": 0.0, "gpe": 0.0, "vde": 0.0, "ffe": 0.0}


def test_a_transposed_rendering_is_a_gross_pitch_error() -> None:
    ref, est = _voice(110.0), _voice(170.0)  # what speech v0.5 does to a 108 Hz male voice
    errors = pitch_errors(est, ref, RATE)
    assert errors["f0_cents"] == pytest.approx(1200 * math.log2(170 / 110), abs=15)
    assert errors["gpe"] > 0.9 and errors["ffe"] > 0.5 and errors["vde"] < 0.1


def test_an_unvoiced_rendering_is_a_voicing_error() -> None:
    ref = _voice(200.0)
    noise = 0.05 * torch.randn(ref.numel(), generator=torch.Generator().manual_seed(0)) * (ref.abs() > 0).float()
    errors = pitch_errors(noise, ref, RATE)
    assert errors["vde"] > 0.5 and errors["ffe"] >= errors["vde"]


def test_score_reports_pitch_errors_for_speech_only() -> None:
    ref = _voice(130.0, seconds=1.5)
    speech = score(_voice(131.0, seconds=1.5), ref, RATE, speech=True)
    assert speech["f0_cents"] == pytest.approx(1200 * math.log2(131 / 130), abs=5) and speech["gpe"] == 0.0
    music = score(ref, ref, RATE, speech=False)
    assert all(math.isnan(music[k]) for k in ("f0_cents", "gpe", "vde", "ffe"))


def test_validation_pitch_quality_uses_the_torch_tracker_per_item() -> None:
    """pitch_quality (validation): the YinPitch tracks of a batch scored item by item, then averaged;
    an item with no frame voiced in both (silence) stays out of the F0 error instead of making it NaN."""
    from neuralcodec.train.metrics import pitch_quality

    ref = torch.stack([_voice(110.0), _voice(200.0), torch.zeros(RATE)])
    est = torch.stack([_voice(170.0), _voice(200.0), torch.zeros(RATE)])
    scores = pitch_quality(est, ref, RATE)
    assert scores["gpe"] == pytest.approx(0.5, abs=0.05)  # item 0 all gross, item 1 none
    assert scores["f0_cents"] == pytest.approx(1200 * math.log2(170 / 110) / 2, abs=15)
    assert scores["vde"] < 0.05


def test_track_errors_without_common_voiced_frames() -> None:
    from neuralcodec.eval.pitch import track_errors

    errors = track_errors(np.zeros(10), np.full(10, 100.0))
    assert math.isnan(errors["f0_cents"]) and math.isnan(errors["gpe"]) and errors["vde"] == 1.0 and errors["ffe"] == 1.0
    assert all(math.isnan(v) for v in track_errors(np.zeros(0), np.zeros(0)).values())
