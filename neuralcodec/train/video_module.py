"""Rate-distortion training of the conditional video codec over short prediction chains.

A clip ``[B, T, 3, H, W]`` is coded as one intra frame followed by ``T - 1`` P-frames, each
conditioned on the previous *decoded* frame's context, with gradients flowing through the whole
chain (errors a frame passes on are paid for by the frames after it). The loss, accumulated over
the chain, is

    mean over clips and frames of  bpp_t + lambda(q) * 255^2 * MSE_t

with one quality ``q`` per clip (continuous with probability ``continuous_fraction``), so the
per-quality gains and context modulation of all levels train together. ``intra_weight`` scales
the intra frame's term; with ``freeze_intra`` (e.g. after ``intra_init`` from the shipped ``image``
model) the intra coder runs without gradients. ``refresh_prob``: chance per clip that its
context refresh falls inside the chain (so the refresh path is trained on propagated states too).
Validation freezes the tables and logs exact bpp / PSNR per quality, intra and inter separately.
"""

from __future__ import annotations

import math
import random
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from neuralcodec.codecs.image.gain import interpolate_lambdas
from neuralcodec.errors import NeuralCodecError
from neuralcodec.train.image_module import psnr
from neuralcodec.train.module import CodecModule


class VideoRDModule(CodecModule):
    """Trains :class:`~neuralcodec.codecs.video.conditional.ConditionalVideoCodec` on clips in [0, 1]."""

    def __init__(self, codec: Mapping[str, Any], lr: float = 1e-4, betas: Sequence[float] = (0.9, 0.999),
                 weight_decay: float = 0.0, warmup_steps: int = 200, total_steps: int = 100_000,
                 grad_clip: float = 1.0, aux_lr_factor: float = 10.0, continuous_fraction: float = 0.5,
                 intra_weight: float = 1.0, freeze_intra: bool = False, intra_init: str | None = None,
                 refresh_prob: float = 0.25, val_qualities: Sequence[float] | None = None) -> None:
        super().__init__(codec, lr, tuple(betas), weight_decay, warmup_steps, total_steps, grad_clip)
        q = self.codec.num_qualities
        self.save_hyperparameters({"aux_lr_factor": aux_lr_factor, "continuous_fraction": continuous_fraction,
                                   "intra_weight": intra_weight, "freeze_intra": freeze_intra,
                                   "intra_init": intra_init, "refresh_prob": refresh_prob,
                                   "val_qualities": list(val_qualities) if val_qualities else sorted({1, q})})
        if intra_init:
            load_intra(self.codec, intra_init)
        if freeze_intra:
            self.codec.intra.requires_grad_(False)

    # ----- loss -------------------------------------------------------------------------------
    def sample_qualities(self, batch: int, device: torch.device) -> Tensor:
        """Float qualities ``[B]`` in ``[1, Q]`` (one per clip)."""
        levels = self.codec.num_qualities
        integer = torch.randint(1, levels + 1, (batch,), device=device).float()
        continuous = 1.0 + torch.rand(batch, device=device) * (levels - 1)
        use_continuous = torch.rand(batch, device=device) < self.hparams.continuous_fraction
        return torch.where(use_continuous, continuous, integer)

    def rd_terms(self, clip: Tensor, quality: Tensor, refresh_period: int | None = None) -> dict[str, Tensor]:
        """Per-frame ``bpp``, ``mse`` ``[B, T]`` and the chain loss ``[B]`` for ``clip [B, T, 3, H, W]``."""
        codec = self.codec
        if self.hparams.freeze_intra:
            codec.intra.eval()  # fixed intra coder: its noise-free eval path (not frozen: float scales)
        out = codec(clip, quality, gop=clip.shape[1] + 1, refresh_period=refresh_period)
        mse = (out.x_hat - clip).pow(2).flatten(2).mean(dim=2)
        lam = interpolate_lambdas(codec.lambdas, quality)[:, None]
        weights = torch.tensor([self.hparams.intra_weight if i else 1.0 for i in out.intra], device=clip.device)
        per_frame = (out.bpp + lam * 255.0**2 * mse) * weights
        return {"bpp": out.bpp, "mse": mse, "loss": per_frame.sum(dim=1) / weights.sum()}

    def training_losses(self, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        clip = batch
        if clip.dim() != 5:
            raise NeuralCodecError(f"video training expects clips [B, T, 3, H, W], got {tuple(clip.shape)}")
        quality = self.sample_qualities(clip.shape[0], clip.device)
        p_frames = clip.shape[1] - 1
        refresh = None
        if p_frames >= 2 and random.random() < self.hparams.refresh_prob:
            refresh = random.randint(1, p_frames - 1)  # a refresh at P-frame refresh + 1
        terms = self.rd_terms(clip, quality, refresh)
        aux = self.codec.aux_loss()
        loss = terms["loss"].mean() + aux
        inter_mse = terms["mse"][:, 1:]
        logs = {"rd_loss": terms["loss"].mean().detach(), "bpp": terms["bpp"].mean().detach(),
                "bpp_intra": terms["bpp"][:, 0].mean().detach(), "bpp_inter": terms["bpp"][:, 1:].mean().detach(),
                "psnr_intra": psnr(terms["mse"][:, 0]).mean().detach(),
                "psnr_inter": psnr(inter_mse).mean().detach(), "aux": aux.detach(), "quality": quality.mean()}
        return loss, logs

    # ----- optimiser --------------------------------------------------------------------------
    def _aux_parameters(self) -> list[Tensor]:
        return [p for p in self.codec.aux_parameters() if p.requires_grad]

    # ----- validation / export ----------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self.codec.freeze()

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        clip = batch
        for q in self.hparams.val_qualities:
            quality = torch.full((clip.shape[0],), float(q), device=clip.device)
            out = self.codec(clip, quality, gop=clip.shape[1] + 1)
            mse = (out.x_hat.clamp(0, 1) - clip).pow(2).flatten(2).mean(dim=2)
            tag = f"q{q:g}"
            lam = self.codec.lambdas[min(len(self.codec.lambdas), max(1, math.floor(q))) - 1]
            logs = {f"val/bpp_{tag}": out.bpp.mean(), f"val/psnr_{tag}": psnr(mse).mean(),
                    f"val/bpp_inter_{tag}": out.bpp[:, 1:].mean(), f"val/psnr_inter_{tag}": psnr(mse[:, 1:]).mean(),
                    f"val/loss_{tag}": (out.bpp + lam * 255.0**2 * mse).mean()}
            self.log_dict(logs, on_epoch=True, batch_size=clip.shape[0])

    def on_train_end(self) -> None:
        self.codec.freeze()


def load_intra(codec, path: str) -> None:
    """Copy an exported ``image`` model's weights into ``codec.intra`` (the warm start of the intra coder)."""
    from neuralcodec.codecs.registry import load_codec

    source = load_codec(path)
    if source.config.get("codec") != "image":
        raise NeuralCodecError(f"intra_init={path} is a {source.config.get('codec')!r} model, not an image model")
    missing, unexpected = codec.intra.load_state_dict(source.state_dict(), strict=False)
    if missing or unexpected:
        raise NeuralCodecError(f"intra_init={path} does not fit the intra config: missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]}")
    codec.intra.train()


__all__ = ["VideoRDModule", "load_intra"]
