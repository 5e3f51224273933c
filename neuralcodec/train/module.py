"""The rate-distortion LightningModule every codec trains with.

It owns a :class:`~neuralcodec.codecs.base.Codec`, its optimiser and LR schedule, stores the codec
config in every checkpoint (so ``load_from_checkpoint`` rebuilds the model from the file alone) and
logs quantizer metrics. Codec families plug in by overriding :meth:`training_losses` (image/video:
rate + lambda * distortion); the audio GAN module extends it with discriminators.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import lightning as L
import torch
from torch import Tensor

from neuralcodec.codecs.base import Codec
from neuralcodec.codecs.registry import build_codec


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.05) -> float:
    """LR multiplier: linear warm-up, then cosine decay to ``min_ratio`` at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class CodecModule(L.LightningModule):
    """Rate-distortion training of one codec (single optimiser, automatic optimisation)."""

    def __init__(self, codec: Mapping[str, Any], lr: float = 2e-4, betas: tuple[float, float] = (0.8, 0.99),
                 weight_decay: float = 0.0, warmup_steps: int = 500, total_steps: int = 100_000,
                 grad_clip: float = 1.0, channels_last: bool = False) -> None:
        super().__init__()
        codec_config = dict(codec)
        self.save_hyperparameters({"codec": codec_config, "lr": lr, "betas": tuple(betas), "weight_decay": weight_decay,
                                   "warmup_steps": warmup_steps, "total_steps": total_steps, "grad_clip": grad_clip,
                                   "channels_last": bool(channels_last)})
        self.codec: Codec = self.build_model(codec_config)

    # ----- memory format ----------------------------------------------------------------------
    def on_fit_start(self) -> None:
        """``channels_last``: 2-D convolution weights (of the codec and of any other network the module
        trains, e.g. discriminators) in NHWC order for training. With bf16 autocast on a CPU with AMX
        this makes an image-model step ~1.4x faster again; inputs need no change (a channels-last
        weight makes the convolution pick the NHWC kernel). Other tensors are left as they are."""
        if self.hparams.get("channels_last"):
            for network in self.children():
                network.to(memory_format=torch.channels_last)

    def on_fit_end(self) -> None:
        if self.hparams.get("channels_last"):
            for network in self.children():
                network.to(memory_format=torch.contiguous_format)

    def build_model(self, config: Mapping[str, Any]) -> Codec:
        """The model this module trains, from its config: a registered codec (a module that trains an
        outside architecture, e.g. a baseline, overrides this)."""
        return build_codec(config)

    def export_codec(self) -> Codec:
        """The codec a finished run exports: eval mode, entropy models frozen."""
        return self.codec.eval().freeze_entropy_models()

    # ----- hooks for codec families ---------------------------------------------------------
    def training_losses(self, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss and the terms to log; codecs with a plain R-D objective override this."""
        raise NotImplementedError(f"{type(self).__name__} must define training_losses()")

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        loss, logs = self.training_losses(batch)
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, prog_bar=False, on_step=True)
        self.log("train/loss", loss, prog_bar=True, on_step=True)
        return loss

    def _generator_parameters(self):
        return self.codec.parameters()

    def _optimizer(self, params) -> torch.optim.Optimizer:
        hp = self.hparams
        return torch.optim.AdamW(params, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)

    def _scheduler(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        hp = self.hparams
        lam = lambda step: warmup_cosine(step, hp.warmup_steps, hp.total_steps)  # noqa: E731
        return {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, lam), "interval": "step"}

    def _aux_parameters(self) -> list[Tensor]:
        """Parameters fitted only by an auxiliary loss (e.g. a factorized prior's quantiles): they get
        their own group (``aux_lr_factor`` x lr, no weight decay) and are left out of gradient clipping."""
        return []

    def _main_parameters(self) -> list[Tensor]:
        aux = {id(p) for p in self._aux_parameters()}
        return [p for p in self._generator_parameters() if id(p) not in aux and p.requires_grad]

    def configure_optimizers(self):
        hp = self.hparams
        aux = self._aux_parameters()
        if not aux:
            optimizer = self._optimizer(self._main_parameters())
        else:
            groups = [{"params": self._main_parameters()},
                      {"params": aux, "lr": hp.lr * hp.get("aux_lr_factor", 1.0), "weight_decay": 0.0}]
            optimizer = self._optimizer(groups)
        return {"optimizer": optimizer, "lr_scheduler": self._scheduler(optimizer)}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        """Clip the main gradient only (an auxiliary gradient must not shrink it)."""
        if self.hparams.grad_clip and self.hparams.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self._main_parameters(), self.hparams.grad_clip)

    def log_quantizer_metrics(self, metrics: Mapping[str, Tensor], prefix: str = "train") -> None:
        """Per-codebook usage / perplexity / dead codes from :class:`QuantizerOutput.metrics`."""
        self.log_dict({f"{prefix}/vq/{k}": v.float() for k, v in metrics.items()}, on_step=prefix == "train",
                      on_epoch=prefix != "train")
