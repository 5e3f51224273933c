"""NeRV building blocks: per-channel weight quantization and the weight entropy coder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralcodec.codecs.video.nerv import weightcoding as wc
from neuralcodec.codecs.video.nerv.network import (EMBED_SHARE, MAX_PADDING, MIN_CHANNELS, NervArch, NervNet, arch_bits,
                                                   choose_strides, count_params, size_arch, stride_candidates)
from neuralcodec.codecs.video.nerv.quant import dequantize, fake_quantize, qmax, quantize, step_values
from neuralcodec.errors import BitstreamError


def test_quantize_covers_range_and_dequantizes_exactly():
    w = torch.randn(6, 4, 3, 3) * torch.tensor([1e-3, 0.1, 1, 10, 0, 3]).reshape(6, 1, 1, 1)
    q, codes = quantize(w, 8)
    assert q.abs().max() <= qmax(8)
    step = step_values(codes)
    flat = w.reshape(6, -1).abs().amax(1)
    assert torch.all(flat <= qmax(8) * step)
    assert torch.all((w - dequantize(q, codes)).abs().reshape(6, -1).amax(1) <= step / 2 + 1e-7)
    assert torch.equal(fake_quantize(w, 8), dequantize(q, codes))  # same grid in fitting and decoding


def test_fake_quantize_straight_through():
    w = torch.randn(3, 5, requires_grad=True)
    fake_quantize(w, 4).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_weight_coding_round_trip_and_estimate():
    rng = np.random.default_rng(0)
    tensors = [wc.CodedTensor(np.clip(np.round(rng.laplace(0, s, shape)), -127, 127).astype(np.int64),
                              rng.integers(-40, 10, shape[0] if len(shape) > 1 else 1))
               for s, shape in [(20, (16, 8, 3, 3)), (3, (16,)), (60, (4, 300))]]
    tensors[1].q[0] = 127  # an escape-range value
    for t in tensors:
        wc.fit_distribution(t)
    payload = wc.encode_tensors(tensors)
    assert len(payload) <= wc.estimate_bytes(tensors) + 8
    out = wc.decode_tensors(payload, [t.q.shape for t in tensors], [t.step.size for t in tensors], [127] * 3)
    for t, (q, step) in zip(tensors, out):
        assert np.array_equal(q, t.q) and np.array_equal(step, t.step)
    with pytest.raises(BitstreamError):
        wc.decode_tensors(payload[:5], [t.q.shape for t in tensors], [t.step.size for t in tensors], [127] * 3)
    with pytest.raises(BitstreamError):  # integers beyond the bit depth
        wc.decode_tensors(payload, [t.q.shape for t in tensors], [t.step.size for t in tensors], [7] * 3)


def test_network_shapes_and_sizing():
    assert choose_strides(360, 640) == (4, 2, 2, 2, 2, 2)  # coarsest grid (3x5) padding <= 15 %
    arch = size_arch(64, 96, 4, 40_000, embed_dim=2, weight_bits_per_param=7, embed_bits_per_value=4)
    assert arch.height >= 64 and arch.width >= 96
    weights, embeds = count_params(arch, 4)
    net = NervNet(arch, 4)
    assert sum(p.numel() for p in net.parameters()) == weights + embeds
    assert net(torch.tensor([0, 3])).shape == (2, 3, arch.height, arch.width)
    bigger = size_arch(64, 96, 4, 400_000, embed_dim=2, weight_bits_per_param=7, embed_bits_per_value=4)
    assert bigger.channels[0] > arch.channels[0]
    with pytest.raises(ValueError):
        NervArch(2, 2, 2, (2, 2), (8, 16, 8))  # channels must not increase


@pytest.mark.parametrize("height,width,frames", [(90, 160, 32), (180, 320, 32), (144, 176, 30)])
def test_sizing_hits_low_rates_on_small_frames(height, width, frames):
    """Small frames at low rates: a coarser embedding grid and narrower blocks keep the estimate in budget."""
    kw = dict(embed_dim=2, weight_bits_per_param=6.8, embed_bits_per_value=4.5)
    pixels = height * width * frames
    previous = 0.0
    for bpp in (0.05, 0.1, 0.2, 0.4):
        arch = size_arch(height, width, frames, bpp * pixels, **kw)
        bits = arch_bits(arch, frames, 6.8, 4.5)
        assert 0.5 * bpp * pixels < bits <= bpp * pixels, (bpp, arch)
        assert count_params(arch, frames)[1] * 4.5 <= EMBED_SHARE * bpp * pixels
        assert arch.height * arch.width <= (1 + MAX_PADDING) * height * width
        assert bits > previous
        previous = bits


def test_sizing_prefers_coarse_grids_and_reports_unreachable_budgets():
    kw = dict(embed_dim=2, weight_bits_per_param=6.8, embed_bits_per_value=4.5)
    for bpp in (0.05, 0.4):  # one architecture family across rates: only the widths change
        assert size_arch(180, 320, 32, bpp * 180 * 320 * 32, **kw).strides == (4, 2, 2, 2, 2)
    tiny = size_arch(48, 80, 4, 1000, **kw)  # no network this small exists: the narrowest is returned
    assert arch_bits(tiny, 4, 6.8, 4.5) > 1000 and max(tiny.channels) == MIN_CHANNELS // 2
    assert all(st in stride_candidates(90, 160) for st in [(5, 2), (4, 2, 2, 2)])
    assert stride_candidates(90, 160).index((4, 2, 2, 2)) < stride_candidates(90, 160).index((2, 2, 2, 2, 2))
