"""The shipped `image` model: real file round trip on a dev photo it never saw in training."""

from __future__ import annotations

import math

import pytest
import torch

from neuralcodec.codecs.registry import available_models, load_codec
from neuralcodec.media import load_image

pytestmark = pytest.mark.skipif("image" not in available_models(), reason="no shipped image model")


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    qa, qb = (t.clamp(0, 1).mul(255).round() for t in (a, b))
    return 10 * math.log10(255.0**2 / max((qa - qb).pow(2).mean().item(), 1e-12))


@pytest.fixture(scope="module")
def crop(shared_data):
    image = load_image(shared_data / "images" / "skimage" / "astronaut.png")
    return image[:, 96:288, 160:352].contiguous()  # 192x192: face and suit (unseen in training)


def test_shipped_image_round_trip_quality_and_rate(crop):
    codec = load_codec("image")
    rates, qualities = [], []
    for quality in (1, 8):
        metadata, chunks = codec.compress(crop, quality=quality, postfilter=False)
        chunks = list(chunks)
        decoded = codec.decompress(metadata, chunks)
        assert decoded.shape == crop.shape
        with torch.no_grad():
            reference = codec(crop[None], float(quality)).x_hat[0].clamp(0, 1)
        assert abs(psnr(decoded, crop) - psnr(reference, crop)) <= 0.01
        rates.append(8 * sum(map(len, chunks)) / (crop.shape[1] * crop.shape[2]))
        qualities.append(psnr(decoded, crop))
    # a trained model: more bits buy clearly more quality, and the low end is a usable image
    assert rates[0] < 0.5 * rates[1] and qualities[1] > qualities[0] + 3.0
    assert qualities[0] > 24.0
