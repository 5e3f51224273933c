"""Fixtures of the demo-site tests: two short development speech clips."""

from __future__ import annotations

from pathlib import Path

import pytest

CLIPS = ("speech/ljspeech/LJ001-0004.flac", "speech/cmu_arctic/cmu_arctic_us_aew_a0001.flac")


@pytest.fixture(scope="session")
def demo_inputs(tmp_path_factory, shared_data) -> Path:
    """A folder with 2 s excerpts of two development clips (LJSpeech at 22.05 kHz, ARCTIC at 16 kHz)."""
    import soundfile as sf

    folder = tmp_path_factory.mktemp("demo-inputs")
    for rel in CLIPS:
        data, rate = sf.read(shared_data / rel)
        sf.write(folder / f"{Path(rel).stem}.flac", data[: 2 * rate], rate)
    return folder
