"""Conditional quantized Gaussian / Laplace / logistic entropy model (mean and scale per element).

Quantization is ``y_hat = round(y - mean) + mean``: the coded symbol ``round(y - mean)`` is
centred, so the mean never enters the coder (float noise in the decoder's mean moves ``y_hat``
by an ulp but never changes a symbol). The scale enters only through its *index* in a fixed
log-spaced :class:`~neuralcodec.entropy.families.ScaleGrid`; each index owns an integer table.

Training consistency: the training path evaluates the likelihood at the *snapped* scale (straight-
through to the raw scale), i.e. exactly the distribution the coder will use, so the estimated
rate matches the coded size up to the 24-bit table rounding and the ANS flush.

Determinism: pass ``indexes`` computed by an integer-exact network (see
:class:`~neuralcodec.entropy.hyperprior.Hyperprior`) for bit-exact decoding whatever the
decoder's thread count, batch size or device. :meth:`GaussianConditional.build_indexes` from float
scales is exact only for bit-identical scales.
"""

from __future__ import annotations

import numpy as np
import torch

from neuralcodec.entropy.base import EntropyModel
from neuralcodec.entropy.coder import MAX_SYMBOL, StackDecoder, StackEncoder
from neuralcodec.entropy.families import ScaleGrid, bin_likelihood, build_bank, check_family
from neuralcodec.entropy.ops import lower_bound, quantize_for_training


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


class GaussianConditional(EntropyModel):
    """``p(y | mean, scale)`` for tensors ``y``, ``scales``, ``means`` of one shape ``[B, ...]``."""

    _dynamic_buffers = ("cdf_freqs", "cdf_starts", "cdf_v_min", "scale_table")

    def __init__(
        self,
        family: str = "gaussian",
        *,
        scale_min: float = 0.11,
        scale_max: float = 256.0,
        num_scales: int = 64,
        tail_mass: float = 1e-9,
        likelihood_bound: float = 1e-9,
        training_quantization: str = "noise",
    ) -> None:
        super().__init__()
        self.family = check_family(family)
        self.grid = ScaleGrid(scale_min, scale_max, num_scales)
        self.tail_mass = float(tail_mass)
        self.likelihood_bound = float(likelihood_bound)
        self.training_quantization = training_quantization
        self.register_buffer("scale_table", torch.from_numpy(self.grid.values.copy()))
        self._register_bank("cdf")
        # The tables depend only on the configuration: build them now (a few ms).
        self.freeze()

    def _build_tables(self) -> None:
        self._register_bank("cdf", build_bank(self.family, self.grid, tail_mass=self.tail_mass))
        self._buffers["scale_table"] = torch.from_numpy(self.grid.values.copy())

    @property
    def bank(self):
        return self._bank("cdf")

    # -- parameters -> table indices ------------------------------------------------------------
    def build_indexes(self, scales: torch.Tensor) -> torch.Tensor:
        """int64 grid index of each scale (nearest in log space, clamped to the grid)."""
        idx = self.grid.index(_np(scales).astype(np.float64))
        return torch.from_numpy(idx).to(scales.device)

    def snap_scales(self, scales: torch.Tensor) -> torch.Tensor:
        """Grid scales in the forward pass, gradient to the raw ``scales`` (straight-through)."""
        snapped = self.scale_table.to(scales.dtype)[self.grid.index_torch(scales)]
        return scales + (snapped - scales).detach()

    # -- training / evaluation ------------------------------------------------------------------
    def forward(
        self,
        y: torch.Tensor,
        scales: torch.Tensor | None = None,
        means: torch.Tensor | None = None,
        *,
        indexes: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y_hat, likelihoods)``, both shaped like ``y``.

        Training: additive noise (or STE rounding) and the likelihood at the snapped scale.
        Evaluation: ``y_hat = round(y - mean) + mean``; a frozen model reports the exact
        probabilities of the integer tables (``indexes`` if given, else from ``scales``).
        """
        if scales is None and indexes is None:
            raise ValueError("need scales or indexes")
        mu = means if means is not None else torch.zeros_like(y)
        if self.training:
            v = quantize_for_training(y - mu, self.training_quantization)
            s = self.snap_scales(scales) if scales is not None else self.scale_table.to(y.dtype)[indexes]
            lik = lower_bound(bin_likelihood(self.family, v, s), self.likelihood_bound)
            return v + mu, lik
        sym = torch.round(y - mu)
        y_hat = sym + mu
        idx = indexes if indexes is not None else self.grid.index_torch(scales)
        if self.use_exact_likelihoods():
            return y_hat, self.likelihoods_from_symbols(sym, idx).to(y.dtype)
        s = self.scale_table.to(y.dtype)[idx]
        return y_hat, lower_bound(bin_likelihood(self.family, sym, s), self.likelihood_bound)

    def likelihoods_from_symbols(self, symbols: torch.Tensor, indexes: torch.Tensor) -> torch.Tensor:
        """Exact coding probability (escape cost included) of integer ``symbols`` under ``indexes``."""
        self.require_frozen()
        lik = self.bank.likelihoods(_np(symbols).astype(np.int64).reshape(-1), _np(indexes).reshape(-1))
        return torch.from_numpy(lik).reshape(symbols.shape).to(symbols.device)

    # -- coding ---------------------------------------------------------------------------------
    def symbols(self, y: torch.Tensor, means: torch.Tensor | None = None) -> torch.Tensor:
        """int64 ``round(y - means)`` (half to even, like ``torch.round`` in :meth:`forward`)."""
        return torch.from_numpy(self._symbols_np(y, means)).to(y.device)

    @staticmethod
    def _symbols_np(y: torch.Tensor, means: torch.Tensor | None) -> np.ndarray:
        # numpy: single-threaded element-wise work, same IEEE results as the torch ops in forward
        v = _np(y)
        if means is not None:
            v = v - _np(means).astype(v.dtype, copy=False)
        r = np.rint(v)
        if r.size and not (np.isfinite(r).all() and np.abs(r).max() <= MAX_SYMBOL):
            raise ValueError("cannot code non-finite values or values beyond 2**62")
        return r.astype(np.int64)

    def encode_into(self, enc: StackEncoder, symbols: torch.Tensor, indexes: torch.Tensor) -> None:
        """Add integer ``symbols`` (any shape) under ``indexes`` to an open stream."""
        enc.indexed(_np(symbols).reshape(-1), _np(indexes).reshape(-1), self.bank)

    def decode_from(self, dec: StackDecoder, indexes: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`encode_into`: int64 symbols shaped like ``indexes``."""
        out = dec.indexed(_np(indexes).reshape(-1), self.bank)
        return torch.from_numpy(out).reshape(indexes.shape).to(indexes.device)

    def compress(
        self, y: torch.Tensor, indexes: torch.Tensor, means: torch.Tensor | None = None
    ) -> list[bytes]:
        """One byte string per batch item for ``y [B, ...]`` (symbols ``round(y - means)``)."""
        self.require_frozen()
        if indexes.shape != y.shape:
            raise ValueError(f"indexes {tuple(indexes.shape)} must match y {tuple(y.shape)}")
        sym = self._symbols_np(y, means)
        idx = _np(indexes)
        strings = []
        for b in range(y.shape[0]):
            enc = StackEncoder()
            enc.indexed(sym[b].reshape(-1), idx[b].reshape(-1), self.bank)
            strings.append(enc.finish())
        return strings

    def decompress(
        self,
        strings: list[bytes],
        indexes: torch.Tensor,
        means: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Inverse of :meth:`compress`: ``y_hat = symbols + means`` shaped like ``indexes``."""
        self.require_frozen()
        if len(strings) != indexes.shape[0]:
            raise ValueError(f"{len(strings)} strings for a batch of {indexes.shape[0]}")
        idx = _np(indexes)
        out = np.empty(idx.shape, dtype=np.int64)
        for b, data in enumerate(strings):
            dec = StackDecoder(data)
            out[b] = dec.indexed(idx[b].reshape(-1), self.bank).reshape(idx.shape[1:])
            dec.finish()
        np_dtype = torch.empty((), dtype=dtype).numpy().dtype
        y_hat = out.astype(np_dtype)
        if means is not None:
            y_hat += _np(means).astype(np_dtype, copy=False)
        return torch.from_numpy(y_hat).to(indexes.device)
