"""Encoding = fitting a :class:`~.network.NervNet` to a group of frames.

A plain torch loop (Adam, :func:`neuralcodec.train.module.warmup_cosine` schedule, gradient
clipping) rather than the Lightning ``CodecModule``: a fit runs inside ``codec encode`` on one
in-memory tensor with no data loader, checkpoints or logging, where Lightning's trainer setup
would cost more than short fits take. The loop is the same objective a ``CodecModule`` step
would compute (distortion only; the rate is set by the network size).

The last ``qat_fraction`` of the steps is quantization-aware: the forward pass sees per-channel
fake-quantized weights and embeddings (:func:`~.quant.fake_quantize`, straight-through gradients).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import functional_call

from neuralcodec.codecs.video.nerv.network import NervNet
from neuralcodec.codecs.video.nerv.planes import VideoPlanes, plane_mse
from neuralcodec.codecs.video.nerv.quant import fake_quantize
from neuralcodec.train.module import warmup_cosine


@dataclass
class FitConfig:
    steps: int = 300
    lr: float = 1e-2
    batch_size: int = 2
    warmup_fraction: float = 0.1
    qat_fraction: float = 0.3
    weight_bits: int = 8
    embed_bits: int = 6
    grad_clip: float = 1.0
    seed: int = 0
    progress: bool = True


def bits_for(name: str, cfg: FitConfig) -> int:
    """Bit depth of a parameter: embeddings use ``embed_bits``, everything else ``weight_bits``."""
    return cfg.embed_bits if name == "embed" else cfg.weight_bits


def fake_quantized_params(net: NervNet, cfg: FitConfig) -> dict[str, Tensor]:
    return {name: fake_quantize(p, bits_for(name, cfg)) for name, p in net.named_parameters()}


def psnr_from_mse(mse: float) -> float:
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def fit_group(net: NervNet, video: VideoPlanes, cfg: FitConfig, desc: str = "fit") -> float:
    """Fit ``net`` (embeddings ``[T, ...]`` for the ``T`` frames of ``video``) in place; returns the last PSNR."""
    generator = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    warmup = int(cfg.warmup_fraction * cfg.steps)
    qat_start = cfg.steps - int(round(cfg.qat_fraction * cfg.steps))
    t = video.num_frames
    batch = max(1, min(cfg.batch_size, t))
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc=desc, unit="step", leave=False, file=sys.stderr, disable=None)
    psnr_avg = 0.0
    net.train()
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * warmup_cosine(step, warmup, cfg.steps)
        idx = torch.randperm(t, generator=generator)[:batch]
        if step >= qat_start:
            out = functional_call(net, fake_quantized_params(net, cfg), (idx,))
        else:
            out = net(idx)
        uv = None if video.uv is None else video.uv[idx]
        loss = plane_mse(out, video.y[idx], uv, video.chroma)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        psnr = psnr_from_mse(float(loss.detach()))
        psnr_avg = psnr if step == 0 else 0.9 * psnr_avg + 0.1 * psnr
        if bar is not None:
            bar.update(1)
            if step % 10 == 0 or step == cfg.steps - 1:
                bar.set_postfix(psnr=f"{psnr_avg:.2f}dB", qat=step >= qat_start)
    if bar is not None:
        bar.close()
    net.eval()
    return psnr_avg
