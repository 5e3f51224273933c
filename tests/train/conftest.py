"""Fixtures shared by the training tests."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture
def audio_dir(tmp_path):
    """Six 1 s, 16 kHz tone clips (a tiny training folder; data modules resample to the model rate)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "audio"
    folder.mkdir()
    for i in range(6):
        t = np.arange(16000) / 16000
        x = 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(str(folder / f"clip{i}.wav"), x, 16000)
    return folder
