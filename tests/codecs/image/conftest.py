"""Tiny, randomly initialised image codecs (exactness does not depend on training)."""

from __future__ import annotations

import pytest
import torch

from neuralcodec.codecs.registry import build_codec

TINY_CONFIG = {"codec": "image", "name": "image-test", "N": 16, "M": 24,
               "entropy": {"z_channels": 16, "hidden_channels": 16}}


def make_codec(**overrides):
    """Random weights; the analysis output is scaled up so that latents span realistic magnitudes
    (about 1 to 30 quantization steps across the quality levels) instead of rounding to zero."""
    torch.manual_seed(0)
    codec = build_codec({**TINY_CONFIG, **overrides})
    with torch.no_grad():
        codec.g_a[-1].weight.mul_(40.0)
        codec.g_a[-1].bias.mul_(40.0)
    return codec.eval().freeze()


@pytest.fixture(scope="module")
def codec():
    return make_codec()


@pytest.fixture
def dev_images(shared_data):
    """The scikit-image development photos (RGB, and the grayscale ``camera.png``)."""
    folder = shared_data / "images" / "skimage"
    if not folder.is_dir():
        pytest.skip(f"development images not found at {folder}")
    return folder
