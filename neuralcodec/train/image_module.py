"""Rate-distortion training of image models: our variable-rate codec, and single-rate baselines.

Every training image draws its own quality ``q`` (continuous in ``[1, Q]`` with probability
``continuous_fraction``, else one of the integer levels), and the loss is

    mean over the batch of  bpp(x, q) + lambda(q) * 255^2 * MSE(x, x_hat)

with ``lambda(q)`` interpolated log-linearly between the configured levels; so the gains of all
levels (and the points between them, used by ``--target-bpp``) train together. The side-latent
prior's quantiles are fitted by their auxiliary loss in the same optimiser (their own parameter
group, higher learning rate, excluded from gradient clipping). Validation freezes the entropy
model and reports the exact code length and PSNR at a few qualities; the model is frozen again at
the end of training so the exported file codes with tables of its final weights.

:class:`SingleRateImageRDModule` is the same trainer for a single-rate model at one fixed lambda
(CompressAI's ``bmshj2018_hyperprior``, ``experiment=image_bmshj2018``): same loss convention,
optimiser, schedule, clipping, auxiliary-loss group, validation and export; only the model and the
absence of a quality draw differ.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from neuralcodec.codecs.image.gain import interpolate_lambdas
from neuralcodec.train.module import CodecModule


def psnr(mse: Tensor, peak: float = 1.0) -> Tensor:
    """PSNR in dB from mean squared error(s)."""
    return 10.0 * torch.log10(peak**2 / mse.clamp_min(1e-10))


def rd_loss(bpp: Tensor, mse: Tensor, lmbda: Tensor | float) -> Tensor:
    """The image R-D objective ``bpp + lambda * 255^2 * MSE`` (CompressAI's lambda convention)."""
    return bpp + lmbda * (255.0**2) * mse


class ImageRDModule(CodecModule):
    """Trains :class:`~neuralcodec.codecs.image.ImageCodec` on batches ``[B, 3, H, W]`` in [0, 1]."""

    def __init__(self, codec: Mapping[str, Any], lr: float = 1e-4, betas: Sequence[float] = (0.9, 0.999),
                 weight_decay: float = 0.0, warmup_steps: int = 200, total_steps: int = 100_000,
                 grad_clip: float = 1.0, aux_lr_factor: float = 10.0, continuous_fraction: float = 0.5,
                 quality_per: str = "image", val_qualities: Sequence[float] | None = None,
                 channels_last: bool = False) -> None:
        super().__init__(codec, lr, tuple(betas), weight_decay, warmup_steps, total_steps, grad_clip, channels_last)
        if quality_per not in ("image", "batch"):
            raise ValueError("quality_per must be 'image' or 'batch'")
        q = self.codec.num_qualities
        default_val = sorted({1, (q + 1) // 2, q})
        self.save_hyperparameters({"aux_lr_factor": aux_lr_factor, "continuous_fraction": continuous_fraction,
                                   "quality_per": quality_per,
                                   "val_qualities": list(val_qualities) if val_qualities else default_val})

    # ----- loss -------------------------------------------------------------------------------
    def sample_qualities(self, batch: int, device: torch.device) -> Tensor:
        """Float qualities ``[B]`` in ``[1, Q]``: per image (or one per batch), integer or continuous."""
        levels = self.codec.num_qualities
        n = batch if self.hparams.quality_per == "image" else 1
        integer = torch.randint(1, levels + 1, (n,), device=device).float()
        continuous = 1.0 + torch.rand(n, device=device) * (levels - 1)
        use_continuous = torch.rand(n, device=device) < self.hparams.continuous_fraction
        q = torch.where(use_continuous, continuous, integer)
        return q.expand(batch) if n == 1 else q

    def rd_terms(self, x: Tensor, quality: Tensor) -> dict[str, Tensor]:
        """Per-image ``bpp``, ``mse`` and weighted loss ``[B]`` for images ``x [B, 3, H, W]``."""
        out = self.codec(x, quality)
        mse = (out.x_hat - x).pow(2).flatten(1).mean(dim=1)
        lam = interpolate_lambdas(self.codec.lambdas, quality)
        return {"bpp": out.bpp, "mse": mse, "loss": rd_loss(out.bpp, mse, lam)}

    def training_losses(self, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        x = batch
        quality = self.sample_qualities(x.shape[0], x.device)
        terms = self.rd_terms(x, quality)
        aux = self.codec.aux_loss()
        loss = terms["loss"].mean() + aux
        logs = {"rd_loss": terms["loss"].mean().detach(), "bpp": terms["bpp"].mean().detach(),
                "mse": terms["mse"].mean().detach(), "psnr": psnr(terms["mse"]).mean().detach(),
                "aux": aux.detach(), "quality": quality.mean()}
        return loss, logs

    # ----- optimiser --------------------------------------------------------------------------
    def _aux_parameters(self) -> list[Tensor]:
        return [self.codec.hyperprior.factorized.quantiles]

    # ----- validation / export ----------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self.codec.freeze()

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        x = batch
        for q in self.hparams.val_qualities:
            quality = torch.full((x.shape[0],), float(q), device=x.device)
            out = self.codec(x, quality)
            mse = (out.x_hat.clamp(0, 1) - x).pow(2).flatten(1).mean(dim=1)
            tag = f"q{q:g}"
            self.log(f"val/bpp_{tag}", out.bpp.mean(), on_epoch=True, batch_size=x.shape[0])
            self.log(f"val/psnr_{tag}", psnr(mse).mean(), on_epoch=True, batch_size=x.shape[0])
            lam = self.codec.lambdas[min(len(self.codec.lambdas), max(1, math.floor(q))) - 1]
            self.log(f"val/loss_{tag}", rd_loss(out.bpp, mse, lam).mean(), on_epoch=True,
                     batch_size=x.shape[0])

    def on_train_end(self) -> None:
        self.codec.freeze()


class SingleRateImageRDModule(CodecModule):
    """Trains a single-rate image model at one ``lmbda`` -- CompressAI's ``ScaleHyperprior``
    (:class:`~neuralcodec.eval.bmshj2018.BMSHJ2018Baseline`) -- with the loss
    ``mean(bpp + lmbda * 255^2 * MSE)`` plus CompressAI's auxiliary loss for the entropy-bottleneck
    quantiles (their own parameter group at ``aux_lr_factor`` x lr, outside gradient clipping).
    ``lmbda`` is written into the model config, so every checkpoint and export records its rate point.
    """

    def __init__(self, codec: Mapping[str, Any], lmbda: float = 0.0067, lr: float = 1e-4,
                 betas: Sequence[float] = (0.9, 0.999), weight_decay: float = 0.0, warmup_steps: int = 200,
                 total_steps: int = 100_000, grad_clip: float = 1.0, aux_lr_factor: float = 10.0,
                 channels_last: bool = False) -> None:
        if lmbda <= 0:
            raise ValueError("lmbda must be positive")
        codec = {**dict(codec), "lmbda": float(lmbda)}
        super().__init__(codec, lr, tuple(betas), weight_decay, warmup_steps, total_steps, grad_clip, channels_last)
        self.save_hyperparameters({"lmbda": float(lmbda), "aux_lr_factor": aux_lr_factor})

    def build_model(self, config: Mapping[str, Any]):
        from neuralcodec.eval.bmshj2018 import BMSHJ2018Baseline

        return BMSHJ2018Baseline.from_config(config)

    def rd_terms(self, x: Tensor) -> dict[str, Tensor]:
        """Per-image ``bpp``, ``mse`` and weighted loss ``[B]`` for images ``x [B, 3, H, W]``."""
        out = self.codec(x)
        mse = (out["x_hat"] - x).pow(2).flatten(1).mean(dim=1)
        return {"bpp": out["bpp"], "mse": mse, "loss": rd_loss(out["bpp"], mse, self.hparams.lmbda)}

    def training_losses(self, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        terms = self.rd_terms(batch)
        aux = self.codec.aux_loss()
        logs = {"rd_loss": terms["loss"].mean().detach(), "bpp": terms["bpp"].mean().detach(),
                "mse": terms["mse"].mean().detach(), "psnr": psnr(terms["mse"]).mean().detach(), "aux": aux.detach()}
        return terms["loss"].mean() + aux, logs

    def _aux_parameters(self) -> list[Tensor]:
        return self.codec.aux_parameters()

    def on_validation_epoch_start(self) -> None:
        self.codec.freeze_entropy_models()

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        out = self.codec(batch)
        mse = (out["x_hat"].clamp(0, 1) - batch).pow(2).flatten(1).mean(dim=1)
        n = batch.shape[0]
        self.log("val/bpp", out["bpp"].mean(), on_epoch=True, batch_size=n)
        self.log("val/psnr", psnr(mse).mean(), on_epoch=True, batch_size=n)
        self.log("val/loss", rd_loss(out["bpp"], mse, self.hparams.lmbda).mean(), on_epoch=True, batch_size=n)

    def on_train_end(self) -> None:
        self.codec.config["trained_steps"] = int(self.global_step)  # recorded in the export (benchmark table)
        self.codec.freeze_entropy_models()
