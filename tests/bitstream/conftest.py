"""Fixtures for the bitstream tests: a factory for valid headers."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from neuralcodec.bitstream import SUPPORTED_VERSIONS, Modality, StreamHeader, fingerprint_bytes


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


@pytest.fixture(params=SUPPORTED_VERSIONS, ids=lambda v: f"v{v}")
def make_header(request) -> Callable[..., StreamHeader]:
    """``make_header(**field_overrides)`` -> a valid :class:`StreamHeader`, once per supported format version."""
    version = request.param

    def make(**overrides: Any) -> StreamHeader:
        overrides.setdefault("version", version)
        return build_header(**overrides)

    return make
