"""Tiny conditional video codecs and small y4m clips for the tests (exactness does not need training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from neuralcodec.codecs.registry import build_codec
from neuralcodec.media import Y4MWriter, rgb_to_yuv

TINY_CONFIG = {
    "codec": "video-conditional", "name": "video-test", "lambdas": [0.005, 0.02, 0.08], "default_quality": 2,
    "gop": 4, "refresh_period": 2,
    "intra": {"N": 16, "M": 24, "entropy": {"z_channels": 16, "hidden_channels": 16, "num_scales": 32}},
    "inter": {"N": 16, "M": 24, "C": 8, "entropy": {"z_channels": 16, "hidden_channels": 16, "num_scales": 32}},
}


def make_codec(**overrides):
    """Random weights, frozen; analysis outputs scaled up so latents span realistic magnitudes."""
    torch.manual_seed(0)
    codec = build_codec({**TINY_CONFIG, **overrides})
    with torch.no_grad():
        for layer in (codec.intra.g_a[-1], codec.encoder.down4):
            layer.weight.mul_(40.0)
            layer.bias.mul_(40.0)
    return codec.eval().freeze()


def moving_clip(frames: int = 4, height: int = 48, width: int = 64, seed: int = 0) -> torch.Tensor:
    """A smooth pattern translating by 2 px per frame: RGB ``[T, 3, H, W]`` in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    phases = rng.random((3, 2)) * 6
    out = []
    for t in range(frames):
        ch = [0.5 + 0.4 * np.sin((xx + 2 * t) / (5 + 3 * c) + phases[c, 0]) * np.cos(yy / (7 + c) + phases[c, 1])
              for c in range(3)]
        out.append(np.stack(ch))
    return torch.from_numpy(np.stack(out)).float().clamp(0, 1)


def write_y4m(path: Path, clip: torch.Tensor, chroma: str = "420", fps=(25, 1)) -> Path:
    """Write an RGB clip ``[T, 3, H, W]`` as an 8-bit y4m file."""
    with Y4MWriter(path, clip.shape[-1], clip.shape[-2], fps, chroma) as writer:
        for frame in clip:
            writer.write(rgb_to_yuv(frame, chroma))
    return path
