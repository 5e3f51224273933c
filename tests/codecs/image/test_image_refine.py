"""Encoder-side latent refinement (``--steps``): lower exact R-D cost, same decoder, no side effects."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_codec

from neuralcodec.codecs.image import STRIDE, pad_to_multiple
from neuralcodec.codecs.image.gain import interpolate_lambdas
from neuralcodec.codecs.image.refine import refine_latent
from neuralcodec.errors import NeuralCodecError


def _image(seed: int = 0, height: int = 40, width: int = 56) -> torch.Tensor:
    """A smooth image with an edge (something a codec can do better or worse on)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    base = torch.stack([0.5 + 0.4 * torch.sin(3 * xx + c) * torch.cos(2 * yy) for c in range(3)])
    base[:, :, width // 2:] *= 0.6
    return (base + 0.02 * torch.randn(base.shape, generator=g)).clamp(0, 1)


def _poor_encoder_codec():
    """A test codec with a deliberately poor analysis transform: refinement has a gap to close."""
    codec = make_codec()
    with torch.no_grad():
        codec.g_a[-1].weight.mul_(0.5)
        codec.g_a[-1].bias.mul_(0.5)
    return codec


def _cost(codec, image, metadata, chunks, quality):
    lam = float(interpolate_lambdas(codec.lambdas, torch.tensor([float(quality)]))[0])
    mse = float((codec.decompress(metadata, chunks) - image).pow(2).mean())
    return codec._file_bits(metadata, chunks) / (image.shape[1] * image.shape[2]) + lam * 255.0**2 * mse


@pytest.mark.parametrize("quality", [2, 3])
def test_refinement_lowers_the_exact_cost_of_a_poor_encoder(quality):
    codec = _poor_encoder_codec()
    image = _image()
    before = {k: v.clone() for k, v in codec.state_dict().items()}
    fingerprint = codec.fingerprint()
    meta0, chunks0 = codec.compress(image, quality=quality, postfilter=False)
    torch.manual_seed(0)  # the rate proxy's noise
    meta1, chunks1 = codec.compress(image, quality=quality, steps=40, postfilter=False)
    chunks0, chunks1 = list(chunks0), list(chunks1)
    assert meta0 == meta1  # same header: any decoder reads a refined file
    assert _cost(codec, image, meta1, chunks1, quality) < 0.99 * _cost(codec, image, meta0, chunks0, quality)
    # the model is untouched: weights, gradients, mode and fingerprint
    assert all(torch.equal(before[k], v) for k, v in codec.state_dict().items())
    assert all(p.grad is None for p in codec.parameters())
    assert not codec.training and not codec.hyperprior.training and codec.fingerprint() == fingerprint


def test_refinement_never_keeps_a_worse_latent(monkeypatch):
    """If the optimiser wrecks the latent, the amortized file is written instead."""
    import neuralcodec.codecs.image.codec as image_codec

    codec = make_codec()
    image = _image(1)
    meta0, chunks0 = codec.compress(image, quality=2, postfilter=False)
    monkeypatch.setattr(image_codec, "refine_latent", lambda codec, x, y, q, steps: y + 50.0)
    meta1, chunks1 = codec.compress(image, quality=2, steps=5, postfilter=False)
    assert list(chunks1) == list(chunks0)


def test_refine_latent_optimises_the_training_objective():
    codec = make_codec()
    image = _image(2)[None]
    q = torch.tensor([2.0])
    y0 = codec.g_a(pad_to_multiple(image, STRIDE)) * codec.gain.gain(q)
    y1 = refine_latent(codec, image, y0, q, steps=30)
    assert y1.shape == y0.shape and not y1.requires_grad and not torch.equal(y1, y0)
    assert torch.equal(refine_latent(codec, image, y0, q, steps=0), y0.detach())
    with pytest.raises(ValueError):
        refine_latent(codec, image, y0, q, steps=-1)


def test_steps_option_is_validated():
    codec = make_codec()
    image = _image()
    for bad in (-1, 10**6, 2.5, True):
        with pytest.raises(NeuralCodecError, match="--steps"):
            codec.compress(image, quality=2, steps=bad)
    with pytest.raises(NeuralCodecError, match="--target-bpp"):
        codec.compress(image, target_bpp=0.5, steps=3)
    meta, chunks = codec.compress(image, quality=2, steps=0)
    assert math.isfinite(float(codec.decompress(meta, chunks).mean()))


def test_bf16_synthesis_refines_as_well_as_float32():
    """The default bf16 synthesis (a faster search) closes the same gap as the float32 one."""
    codec = _poor_encoder_codec()
    image = _image(3)
    quality = 3
    q = torch.tensor([float(quality)])
    meta, _ = codec.compress(image, quality=quality, postfilter=False)
    y0 = codec.g_a(pad_to_multiple(image[None], STRIDE)).detach() * codec.gain.gain(q)
    base = _cost(codec, image, meta, codec._code_gained(y0), quality)
    costs = {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        latent = refine_latent(codec, image[None], y0, q, steps=40, bf16=bf16)
        costs[bf16] = _cost(codec, image, meta, codec._code_gained(latent), quality)
    assert costs[False] < 0.99 * base and costs[True] < 0.99 * base
    assert abs(costs[True] - costs[False]) < 0.02 * base
