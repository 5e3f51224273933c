"""FactorizedPrior: the non-parametric per-channel density of Ballé et al. 2018 (ICLR, appendix 6.1).

Each channel's cumulative distribution is ``c(x) = sigmoid(f_K(...f_1(x)))`` with
``f_k(x) = g_k(softplus(H_k) x + b_k)`` and ``g_k(x) = x + tanh(a_k) * tanh(x)`` (monotone by
construction). The likelihood of a quantized value is ``c(x + 1/2) - c(x - 1/2)``.

Three learned quantiles per channel (tail, median, tail) are fitted by :meth:`aux_loss`; at
:meth:`~neuralcodec.entropy.base.EntropyModel.freeze` the density between the tails is tabulated
as integers around the frozen median (symbols ``round(z - median)``), the tails become escape
entries. Tables and medians are buffers, so a loaded model codes identically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuralcodec.entropy.base import EntropyModel
from neuralcodec.entropy.coder import StackDecoder, StackEncoder
from neuralcodec.entropy.ops import lower_bound, quantize_for_training
from neuralcodec.entropy.tables import TableBank, freqs_from_pmf


class FactorizedPrior(EntropyModel):
    """Fully factorized learned prior for ``z [B, C, *spatial]`` (any number of spatial dims)."""

    _dynamic_buffers = ("cdf_freqs", "cdf_starts", "cdf_v_min", "medians")

    def __init__(
        self,
        channels: int,
        *,
        filters: Sequence[int] = (3, 3, 3, 3),
        init_scale: float = 10.0,
        tail_mass: float = 1e-9,
        likelihood_bound: float = 1e-9,
        training_quantization: str = "noise",
        max_support: int = 1 << 16,
    ) -> None:
        super().__init__()
        self.channels = int(channels)
        self.filters = tuple(int(f) for f in filters)
        self.tail_mass = float(tail_mass)
        self.likelihood_bound = float(likelihood_bound)
        self.training_quantization = training_quantization
        self.max_support = int(max_support)
        dims = (1, *self.filters, 1)
        scale = init_scale ** (1.0 / (len(self.filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(self.filters) + 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(self.filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        self.quantiles = nn.Parameter(torch.tensor([-init_scale, 0.0, init_scale]).repeat(channels, 1, 1))
        target = math.log(2.0 / tail_mass - 1.0)
        self.register_buffer("quantile_targets", torch.tensor([-target, 0.0, target]), persistent=False)
        self.register_buffer("medians", torch.zeros(channels))
        self._register_bank("cdf")

    # -- density ----------------------------------------------------------------------------------
    def _logits_cumulative(self, x: torch.Tensor, detach: bool = False) -> torch.Tensor:
        """Logit of ``c(x)`` for ``x [C, 1, N]`` (``detach``: no gradient to the density)."""
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases, strict=True)):
            m, b = (matrix.detach(), bias.detach()) if detach else (matrix, bias)
            x = torch.matmul(F.softplus(m.to(x.dtype)), x) + b.to(x.dtype)
            if i < len(self.factors):
                a = self.factors[i].detach() if detach else self.factors[i]
                x = x + torch.tanh(a.to(x.dtype)) * torch.tanh(x)
        return x

    def _likelihood(self, v: torch.Tensor) -> torch.Tensor:
        """``c(v + 1/2) - c(v - 1/2)`` for ``v [C, 1, N]``, evaluated on the numerically safe side."""
        lower = self._logits_cumulative(v - 0.5)
        upper = self._logits_cumulative(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        return (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()

    def aux_loss(self) -> torch.Tensor:
        """Loss that moves the quantiles to the tails (``tail_mass / 2``) and the median."""
        logits = self._logits_cumulative(self.quantiles, detach=True)
        return (logits - self.quantile_targets).abs().sum()

    def _current_medians(self) -> torch.Tensor:
        if self.use_exact_likelihoods():
            return self.medians
        return self.quantiles[:, 0, 1].detach()

    # -- training / evaluation --------------------------------------------------------------------
    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z_hat, likelihoods)`` shaped like ``z [B, C, *]``.

        Training: additive noise (or STE rounding). Evaluation: ``round(z - median) + median``; a
        frozen model then reports the exact probabilities of its integer tables.
        """
        self._check_shape(z)
        med = self._current_medians().to(z.dtype).view(1, -1, *([1] * (z.dim() - 2)))
        if self.training:
            z_hat = quantize_for_training(z - med, self.training_quantization) + med
        else:
            z_hat = torch.round(z - med) + med
        if self.use_exact_likelihoods():
            sym = torch.round(z - med).to(torch.int64)
            return z_hat, self.likelihoods_from_symbols(sym).to(z.dtype)
        v = z_hat.transpose(0, 1).reshape(self.channels, 1, -1)
        lik = lower_bound(self._likelihood(v), self.likelihood_bound)
        lik = lik.reshape(self.channels, z.shape[0], *z.shape[2:]).transpose(0, 1)
        return z_hat, lik

    def likelihoods_from_symbols(self, symbols: torch.Tensor) -> torch.Tensor:
        """Exact coding probability of integer ``symbols [B, C, *]`` (escape cost included)."""
        self.require_frozen()
        idx = self._channel_index(symbols.shape).reshape(-1)
        lik = self.bank.likelihoods(symbols.detach().cpu().numpy().reshape(-1), idx)
        return torch.from_numpy(lik).reshape(symbols.shape).to(symbols.device)

    # -- tables -------------------------------------------------------------------------------------
    @torch.no_grad()
    def _build_tables(self) -> None:
        q = self.quantiles.detach().to(torch.float64)
        med = q[:, 0, 1]
        half = self.max_support // 2
        minima = torch.ceil(med - q[:, 0, 0]).clamp(0, half).to(torch.int64)
        maxima = torch.ceil(q[:, 0, 2] - med).clamp(0, half).to(torch.int64)
        med32 = self.quantiles.detach()[:, 0, 1].to(torch.float32)
        med = med32.to(torch.float64)  # tables are centred on the median the coder will use
        length = int((minima + maxima).max()) + 1
        v = torch.arange(length, dtype=torch.float64).view(1, 1, -1) - minima.view(-1, 1, 1)
        x = v + med.view(-1, 1, 1)
        lower = self._logits_cumulative(x - 0.5)
        upper = self._logits_cumulative(x + 0.5)
        sign = -torch.sign(lower + upper)
        pmf = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()[:, 0, :]
        low_edge = (med - minima.to(torch.float64) - 0.5).view(-1, 1, 1)
        high_edge = (med + maxima.to(torch.float64) + 0.5).view(-1, 1, 1)
        tail_lo = torch.sigmoid(self._logits_cumulative(low_edge))[:, 0, 0]
        tail_hi = torch.sigmoid(-self._logits_cumulative(high_edge))[:, 0, 0]
        pmf, tail_lo, tail_hi = pmf.numpy(), tail_lo.numpy(), tail_hi.numpy()
        counts = (minima + maxima + 1).numpy()
        rows = [
            freqs_from_pmf(np.concatenate([[tail_lo[c]], pmf[c, : counts[c]], [tail_hi[c]]]))
            for c in range(self.channels)
        ]
        self._register_bank("cdf", TableBank.from_rows(rows, -minima.numpy()))
        self._buffers["medians"] = med32.clone()

    @property
    def bank(self) -> TableBank:
        return self._bank("cdf")

    # -- coding -------------------------------------------------------------------------------------
    def symbols(self, z: torch.Tensor) -> torch.Tensor:
        """int64 ``round(z - median)`` with the frozen medians."""
        self.require_frozen()
        self._check_shape(z)
        if not torch.isfinite(z).all():
            raise ValueError("cannot code non-finite values")
        med = self.medians.to(z.dtype).view(1, -1, *([1] * (z.dim() - 2)))
        return torch.round(z - med).to(torch.int64)

    def dequantize(self, symbols: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``symbols + median`` (the same code path in encoder and decoder)."""
        med = self.medians.to(dtype).view(1, -1, *([1] * (symbols.dim() - 2)))
        return symbols.to(dtype) + med

    def encode_into(self, enc: StackEncoder, symbols: torch.Tensor) -> None:
        """Add one item's symbols ``[C, *spatial]`` to an open stream."""
        idx = self._channel_index((1, *symbols.shape)).reshape(-1)
        enc.indexed(symbols.detach().cpu().numpy().reshape(-1), idx, self.bank)

    def decode_from(self, dec: StackDecoder, spatial: Sequence[int]) -> torch.Tensor:
        """Inverse of :meth:`encode_into`: int64 symbols ``[C, *spatial]``."""
        shape = (self.channels, *spatial)
        idx = self._channel_index((1, *shape)).reshape(-1)
        return torch.from_numpy(dec.indexed(idx, self.bank)).reshape(shape)

    def compress(self, z: torch.Tensor) -> list[bytes]:
        """One byte string per batch item of ``z [B, C, *spatial]``."""
        sym = self.symbols(z)
        out = []
        for b in range(z.shape[0]):
            enc = StackEncoder()
            self.encode_into(enc, sym[b])
            out.append(enc.finish())
        return out

    def decompress_symbols(self, strings: Sequence[bytes], spatial: Sequence[int]) -> torch.Tensor:
        """int64 symbols ``[B, C, *spatial]`` from :meth:`compress` output."""
        self.require_frozen()
        rows = []
        for data in strings:
            dec = StackDecoder(data)
            rows.append(self.decode_from(dec, spatial))
            dec.finish()
        return torch.stack(rows)

    def decompress(self, strings: Sequence[bytes], spatial: Sequence[int]) -> torch.Tensor:
        """``z_hat [B, C, *spatial]`` (float32) from :meth:`compress` output."""
        return self.dequantize(self.decompress_symbols(strings, spatial))

    # -- helpers ------------------------------------------------------------------------------------
    def _check_shape(self, z: torch.Tensor) -> None:
        if z.dim() < 2 or z.shape[1] != self.channels:
            raise ValueError(f"expected [B, {self.channels}, ...], got {tuple(z.shape)}")

    def _channel_index(self, shape: Sequence[int]) -> np.ndarray:
        b, c, *spatial = shape
        n = int(np.prod(spatial)) if spatial else 1
        return np.broadcast_to(np.arange(c, dtype=np.int64)[None, :, None], (b, c, n))
