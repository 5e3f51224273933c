"""Refit the token prior of a trained audio codec on its own tokens; everything else stays frozen.

Why: the entropy model is the cheapest part of an audio codec to improve. Its tokens depend
only on the encoder and quantizer, so once those are trained, a larger prior can be fitted on
tokens written by ``codec tokenize`` (thousands of utterances per CPU-minute, no audio decoding,
no discriminators), and the codec is exported with the new prior: same tokens, same decoded
audio, fewer bits. The exported model has a new fingerprint (its tables changed), so files
written with the old prior are refused with a clear message rather than mis-decoded.

The loss is bits per coded token. Quantizer dropout is reproduced on the tokens: with
probability ``dropout_p`` an item keeps only its first ``k`` codebooks (``k`` uniform in
``1..Q-1``), the others marked ``-1``, which the prior treats exactly as the coder treats a
lower-bitrate stream (see :class:`~neuralcodec.entropy.TokenPrior`). Time padding in a batch is
marked ``-1`` as well and costs nothing.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from neuralcodec.errors import NeuralCodecError
from neuralcodec.train.module import CodecModule


class TokenPriorModule(CodecModule):
    """Trains ``codec.prior`` of the audio codec ``source`` (a shipped name or an exported path)."""

    def __init__(self, source: str, prior: Mapping[str, Any], name: str | None = None, lr: float = 2e-3,
                 betas: Sequence[float] = (0.9, 0.99), weight_decay: float = 0.0, warmup_steps: int = 200,
                 total_steps: int = 20_000, grad_clip: float = 1.0, dropout_p: float = 0.5) -> None:
        from neuralcodec.codecs.registry import load_codec

        base = load_codec(source)
        if base.config.get("codec") != "audio":
            raise NeuralCodecError(f"{source} is a {base.config.get('codec')!r} model; the token prior refit needs an audio codec")
        config = dict(base.config)
        config["prior"] = dict(prior)
        if name:
            config["name"] = name
        super().__init__(config, lr, tuple(betas), weight_decay, warmup_steps, total_steps, grad_clip)
        self.save_hyperparameters({"source": source, "prior": dict(prior), "dropout_p": dropout_p,
                                   "source_fingerprint": base.fingerprint().hex()})
        state = {k: v for k, v in base.state_dict().items() if not k.startswith("prior.")}
        missing, unexpected = self.codec.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("prior.") for k in missing):
            raise NeuralCodecError(f"cannot transfer {source} into the refit codec: missing {missing[:3]}, "
                                   f"unexpected {unexpected[:3]}")
        self.codec.requires_grad_(False)
        self.codec.prior.requires_grad_(True)
        self.dropout_p = float(dropout_p)

    @property
    def codebook_bits(self) -> Tensor:
        """Raw bits per token of each codebook (``log2`` of its size), ``[Q]``."""
        return torch.tensor([math.log2(k) for k in self.codec.prior.codebook_sizes])

    def _generator_parameters(self):
        return self.codec.prior.parameters()

    def _drop_codebooks(self, codes: Tensor) -> Tensor:
        """Mark the upper codebooks of random items absent (``-1``), as quantizer dropout does."""
        b, q, _ = codes.shape
        if q < 2 or self.dropout_p <= 0:
            return codes
        keep = torch.full((b,), q, device=codes.device)
        drop = torch.rand(b, device=codes.device) < self.dropout_p
        keep[drop] = torch.randint(1, q, (int(drop.sum()),), device=codes.device)
        absent = torch.arange(q, device=codes.device).view(1, q, 1) >= keep.view(b, 1, 1)
        return codes.masked_fill(absent, -1)

    def _bits(self, codes: Tensor) -> tuple[Tensor, Tensor]:
        """Bits ``[Q]`` and present-token counts ``[Q]`` per codebook of codes ``[B, Q, T]`` (-1 = absent)."""
        lik = self.codec.prior(codes)
        bits = -torch.log2(lik.clamp_min(1e-12))
        present = codes >= 0
        return (bits * present).sum(dim=(0, 2)), present.sum(dim=(0, 2))

    def training_losses(self, batch: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        codes = self._drop_codebooks(batch)
        bits, count = self._bits(codes)
        loss = bits.sum() / count.sum().clamp_min(1)
        return loss, {"bits_per_token": loss.detach()}

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        bits, count = self._bits(batch)
        per_codebook = bits / count.clamp_min(1)
        raw = self.codebook_bits.to(bits.device)
        logs = {f"val/bits_q{i + 1}": per_codebook[i] for i in range(len(per_codebook))}
        logs["val/bits_per_token"] = bits.sum() / count.sum().clamp_min(1)
        logs["val/saving_vs_nominal"] = 1.0 - bits.sum() / (raw * count).sum().clamp_min(1)
        self.log_dict(logs, on_epoch=True, batch_size=int(count.sum()))
