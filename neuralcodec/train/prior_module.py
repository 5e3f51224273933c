"""Refit the token prior of a trained audio codec on its own tokens, or fit it a circuit prior;
everything else stays frozen.

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

:class:`CircuitPriorModule` fits the codec's optional second entropy model instead, a probabilistic
circuit over windows of the token grid (``codec.circuit_prior``,
:class:`~neuralcodec.entropy.circuits.token_grid.CircuitTokenPriorModule`), by mini-batch EM on the
same token batches: no gradients, the EM step is the "optimizer" and its step size the learning
rate. The rest of the codec, the token prior included, is exported exactly as loaded, so the
model fingerprint and every file the source model wrote stay valid; ``codec encode
--entropy-model circuit`` then codes with the circuit.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from neuralcodec.errors import NeuralCodecError
from neuralcodec.train.module import CodecModule


def _audio_source(source: str, what: str):
    """The trained audio codec ``source`` (shipped name or exported path) whose entropy model is refit."""
    from neuralcodec.codecs.registry import load_codec

    base = load_codec(source)
    if base.config.get("codec") != "audio":
        raise NeuralCodecError(f"{source} is a {base.config.get('codec')!r} model; {what} needs an audio codec")
    return base


def _transfer(base, codec, source: str, refit: str) -> None:
    """Copy every tensor of ``base`` except those of submodule ``refit`` into ``codec``."""
    prefix = refit + "."
    state = {k: v for k, v in base.state_dict().items() if not k.startswith(prefix)}
    missing, unexpected = codec.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(prefix) for k in missing):
        raise NeuralCodecError(f"cannot transfer {source} into the refit codec: missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]}")
    codec.requires_grad_(False)


class TokenPriorModule(CodecModule):
    """Trains ``codec.prior`` of the audio codec ``source`` (a shipped name or an exported path)."""

    def __init__(self, source: str, prior: Mapping[str, Any], name: str | None = None, lr: float = 2e-3,
                 betas: Sequence[float] = (0.9, 0.99), weight_decay: float = 0.0, warmup_steps: int = 200,
                 total_steps: int = 20_000, grad_clip: float = 1.0, dropout_p: float = 0.5) -> None:
        base = _audio_source(source, "the token prior refit")
        config = dict(base.config)
        config["prior"] = dict(prior)
        if name:
            config["name"] = name
        super().__init__(config, lr, tuple(betas), weight_decay, warmup_steps, total_steps, grad_clip)
        self.save_hyperparameters({"source": source, "prior": dict(prior), "dropout_p": dropout_p,
                                   "source_fingerprint": base.fingerprint().hex()})
        _transfer(base, self.codec, source, "prior")
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


class MiniBatchEM(torch.optim.Optimizer):
    """Mini-batch EM on an HCLT, as a torch optimizer (so Lightning counts its steps, checkpoints
    and schedules it like any other): ``step(closure)`` takes the batch's expected counts from
    ``closure()`` (:meth:`HCLT.em_statistics`) and moves the parameters toward their normalized
    estimate by the step size ``lr`` (:func:`~neuralcodec.entropy.circuits.em.em_update`)."""

    def __init__(self, circuit, fit, lr: float) -> None:
        super().__init__([circuit.prior, circuit.trans, circuit.emit], {"lr": float(lr)})
        self.circuit, self.fit = circuit, fit

    @torch.no_grad()
    def step(self, closure):  # type: ignore[override]
        from neuralcodec.entropy.circuits.em import em_update

        stats = closure()
        em_update(self.circuit, stats, self.param_groups[0]["lr"], self.fit)
        return stats


class CircuitPriorModule(CodecModule):
    """Fits ``codec.circuit_prior`` of the audio codec ``source`` on its tokens by mini-batch EM.

    ``circuit``: kwargs of :class:`~neuralcodec.entropy.circuits.token_grid.CircuitTokenPriorModule`
    (``window``, ``hidden``, ``emissions``). The first training step is preceded by structure
    learning: the Chow-Liu tree of ``mi_samples`` complete windows drawn from the training batches,
    and the ``init`` start of :func:`~neuralcodec.entropy.circuits.em.initialize`. Then each batch
    ``[B, Q, T]`` is cut into windows of ``W`` frames (partial ones marginalized) for one EM step,
    with the step size going linearly from ``step_start`` to ``step_end`` over ``total_steps``.
    Logged: ``train/bits_per_token`` (before the step), ``val/bits_per_token`` and ``val/bits_q1``
    (the first codebook alone, under the circuit's exact marginal); the step size as the learning
    rate (``lr-MiniBatchEM``).
    """

    def __init__(self, source: str, circuit: Mapping[str, Any], name: str | None = None, total_steps: int = 1000,
                 step_start: float = 0.5, step_end: float = 0.05, pseudocount: float = 0.01,
                 mi_samples: int = 20_000, init: str = "marginal", init_noise: float = 0.2, seed: int = 0) -> None:
        from neuralcodec.entropy.circuits.em import FitConfig

        base = _audio_source(source, "the circuit prior fit")
        config = dict(base.config)
        config["circuit_prior"] = dict(circuit)
        if name:
            config["name"] = name
        super().__init__(config, step_start, (0.9, 0.99), 0.0, 0, total_steps, 0.0)
        self.save_hyperparameters({"source": source, "circuit": dict(circuit), "step_start": step_start,
                                   "step_end": step_end, "pseudocount": pseudocount, "mi_samples": mi_samples,
                                   "init": init, "init_noise": init_noise, "seed": seed,
                                   "source_fingerprint": base.fingerprint().hex()})
        _transfer(base, self.codec, source, "circuit_prior")
        self.automatic_optimization = False
        self.fit_config = FitConfig(hidden=self.circuit.hidden, step_start=step_start, step_end=step_end,
                                    pseudocount=pseudocount, mi_samples=mi_samples, init=init,
                                    init_noise=init_noise, seed=seed)

    @property
    def circuit(self):
        return self.codec.circuit_prior.circuit

    def export_codec(self):
        """The codec as loaded plus the fitted circuit: the token prior is *not* frozen again (its
        tables were built from the full-precision weights; rebuilding them from the stored ones
        could change them, and with them the fingerprint); the circuit needs no freeze step."""
        return self.codec.eval()

    def configure_optimizers(self):
        fit, total = self.fit_config, max(int(self.hparams.total_steps), 2)
        optimizer = MiniBatchEM(self.circuit, fit, fit.step_start)
        eta = lambda step: (fit.step_start + (fit.step_end - fit.step_start) * min(step, total - 1) / (total - 1)
                            ) / fit.step_start  # noqa: E731
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, eta), "interval": "step"}}

    def _windows(self, codes: Tensor) -> tuple[Tensor, Tensor]:
        from neuralcodec.entropy.circuits.token_grid import batch_rows

        return batch_rows(codes.cpu(), self.codec.circuit_prior.window)

    def _training_batches(self):
        datamodule = getattr(self.trainer, "datamodule", None)
        return datamodule.train_dataloader() if datamodule is not None else self.trainer.train_dataloader

    @torch.no_grad()
    def initialize_structure(self, batches) -> int:
        """Chow-Liu tree + initial parameters from complete windows of ``batches``; returns how many."""
        from neuralcodec.entropy.circuits.em import initialize
        from neuralcodec.entropy.circuits.structure import chow_liu_parent

        fit, found, total = self.fit_config, [], 0
        for batch in batches:
            rows, mask = self._windows(batch)
            found.append(rows[mask.all(dim=1)])
            total += found[-1].shape[0]
            if total >= fit.mi_samples:
                break
        x = torch.cat(found)[: fit.mi_samples]
        if x.shape[0] < 2:
            raise NeuralCodecError(f"no complete {self.codec.circuit_prior.window}-frame windows in the training data")
        gen = torch.Generator().manual_seed(fit.seed)
        self.circuit.set_structure(chow_liu_parent(x, self.circuit.num_categories, bins=fit.mi_bins,
                                                   max_samples=fit.mi_samples))
        initialize(self.circuit, x, fit.init_noise, gen, fit.init)
        return int(x.shape[0])

    def on_train_start(self) -> None:
        if self.trainer.global_step == 0:  # not when resuming: the checkpoint holds the structure
            self.initialize_structure(self._training_batches())

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        rows, mask = self._windows(batch)
        optimizer, scheduler = self.optimizers(), self.lr_schedulers()
        stats = optimizer.step(closure=lambda: self.circuit.em_statistics(rows, mask))
        scheduler.step()
        bits = -stats.log_likelihood / math.log(2.0) / mask.sum().clamp_min(1)
        self.log("train/bits_per_token", bits, prog_bar=True, on_step=True)

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        prior = self.codec.circuit_prior
        count = int((batch >= 0).sum())
        first = batch.clone()
        first[:, 1:] = -1
        self.log_dict({"val/bits_per_token": prior.bits_per_token(batch).float(),
                       "val/bits_q1": prior.bits_per_token(first).float()}, on_epoch=True, batch_size=max(count, 1))
