"""Fixtures for the bitstream tests: a factory for valid headers."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from neuralcodec.bitstream import Modality, StreamHeader, fingerprint_bytes


def build_header(**overrides: Any) -> StreamHeader:
    fields: dict[str, Any] = dict(
        modality=Modality.AUDIO,
        codec_id="audio-test",
        model_id="tiny-v1",
        fingerprint=fingerprint_bytes(b"weights", b"config"),
        entropy_model_id="prior-v1",
        coder_precision=16,
        metadata={"sample_rate": 16000, "channels": 1, "num_samples": 1234},
    )
    fields.update(overrides)
    return StreamHeader(**fields)


@pytest.fixture
def make_header() -> Callable[..., StreamHeader]:
    """``make_header(**field_overrides)`` -> a valid :class:`StreamHeader`."""
    return build_header
