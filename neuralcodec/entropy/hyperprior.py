"""Mean-scale hyperprior (Ballé et al. 2018, Minnen et al. 2018) with an integer-exact scale path.

``y [B, M, H, W]`` (``H``, ``W`` multiples of 4) -> hyper-analysis -> ``z [B, N, H/4, W/4]``,
coded with a :class:`FactorizedPrior`; from ``z_hat`` two hyper-synthesis branches predict the
per-element mean and log-scale of ``y``, coded with a :class:`GaussianConditional`.

Determinism: the decoder must pick the same table for every element of ``y``. The scale branch
is a :class:`~neuralcodec.entropy.intnet.FixedPointConvNet`; at coding time it runs in exact
integer arithmetic on the decoded ``z`` symbols and its fixed-point log-scales are compared with
integer boundaries, so the scale *indices* are identical for any thread count, batch split or
machine. The mean branch stays float: means only shift ``y_hat = round(y - mean) + mean`` outside
the coder, so float noise there moves ``y_hat`` by an ulp but never changes a decoded symbol.

Training uses the float scale branch; a frozen model in eval mode reports the rate of the exact
coding path (integer scale indices, integer tables), i.e. what the file will contain.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from neuralcodec.entropy.base import EntropyModel
from neuralcodec.entropy.coder import StackDecoder
from neuralcodec.entropy.factorized import FactorizedPrior
from neuralcodec.entropy.gaussian import GaussianConditional
from neuralcodec.entropy.intnet import ConvSpec, FixedPointConvNet
from neuralcodec.precision import full_precision


def _conv(cin: int, cout: int, k: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, k // 2)


def _deconv(cin: int, cout: int, k: int, stride: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride, k // 2, output_padding=stride - 1)


class Hyperprior(EntropyModel):
    """Hyperprior entropy model for a latent ``y`` with ``y_channels`` channels."""

    #: name in the entropy-model id a codec writes to its files
    model_name = "mean-scale-hyperprior"

    def __init__(
        self,
        y_channels: int,
        z_channels: int,
        hidden_channels: int | None = None,
        *,
        family: str = "gaussian",
        scale_min: float = 0.11,
        scale_max: float = 256.0,
        num_scales: int = 64,
        act_frac_bits: int = 8,
        training_quantization: str = "noise",
    ) -> None:
        super().__init__()
        m, n = int(y_channels), int(z_channels)
        h = int(hidden_channels or z_channels)
        self.y_channels, self.z_channels = m, n
        self.h_a = nn.Sequential(
            _conv(m, h, 3, 1), nn.ReLU(), _conv(h, h, 5, 2), nn.ReLU(), _conv(h, n, 5, 2)
        )
        self.h_s_mean = nn.Sequential(
            _deconv(n, h, 5, 2), nn.ReLU(), _deconv(h, h, 5, 2), nn.ReLU(), _conv(h, m, 3, 1)
        )
        self.h_s_scale = FixedPointConvNet(
            [ConvSpec("deconv", n, h, 5, 2), ConvSpec("deconv", h, h, 5, 2), ConvSpec("conv", h, m, 3, 1)],
            act_frac_bits=act_frac_bits,
        )
        self.factorized = FactorizedPrior(n, training_quantization=training_quantization)
        self.gaussian = GaussianConditional(
            family,
            scale_min=scale_min,
            scale_max=scale_max,
            num_scales=num_scales,
            training_quantization=training_quantization,
        )
        grid = self.gaussian.grid
        self.register_buffer(
            "log_scale_boundaries", torch.from_numpy(grid.log_boundaries_fixed(act_frac_bits))
        )
        self._log_range = (math.log(grid.values[0]) - 1.0, math.log(grid.values[-1]) + 1.0)

    # -- pieces -------------------------------------------------------------------------------------
    def _check(self, y: torch.Tensor) -> None:
        if y.dim() != 4 or y.shape[1] != self.y_channels:
            raise ValueError(f"expected y [B, {self.y_channels}, H, W], got {tuple(y.shape)}")
        if y.shape[-1] % 4 or y.shape[-2] % 4:
            raise ValueError(f"y's spatial size {tuple(y.shape[-2:])} must be a multiple of 4")

    def scales(self, z_hat: torch.Tensor) -> torch.Tensor:
        """Float scales from the float scale branch (training path)."""
        log_s = self.h_s_scale(z_hat).clamp(*self._log_range)
        return torch.exp(log_s)

    def scale_indexes(self, z_hat: torch.Tensor) -> torch.Tensor:
        """int64 table indices ``[B, M, H, W]`` from the integer-exact scale branch (coding path)."""
        self.require_frozen()
        fixed = self.h_s_scale.forward_fixed(self.h_s_scale.to_fixed(z_hat))
        bounds = self.log_scale_boundaries.to("cpu", torch.float64)
        return torch.bucketize(fixed, bounds, right=True).to(z_hat.device)

    def aux_loss(self) -> torch.Tensor:
        """Quantile loss of the factorized prior on ``z`` (optimize with a separate optimizer)."""
        return self.factorized.aux_loss()

    @torch.no_grad()
    def _build_tables(self) -> None:
        self.factorized.freeze()
        self.gaussian.freeze()
        self.h_s_scale.freeze()

    def unfreeze(self) -> None:
        super().unfreeze()
        self.factorized.unfreeze()

    # -- training / evaluation ----------------------------------------------------------------------
    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(y_hat, {"y": likelihoods_y, "z": likelihoods_z})``; rate = ``-sum(log2(lik))``."""
        self._check(y)
        with full_precision(y):  # the side branch is small; its rates need float32 (see full_precision)
            y = y.float()
            z = self.h_a(y)
            z_hat, lik_z = self.factorized(z)
            means = self.h_s_mean(z_hat)
            if self.use_exact_likelihoods():
                idx = self.scale_indexes(z_hat)
                y_hat, lik_y = self.gaussian(y, means=means, indexes=idx)
            else:
                y_hat, lik_y = self.gaussian(y, self.scales(z_hat), means)
        return y_hat, {"y": lik_y, "z": lik_z}

    def float_path(self, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(y_tilde, means, likelihoods_y, likelihoods_z)`` of the float scale branch, in float32
        even under autocast; in train mode with the training proxies (noisy ``y_tilde``). For callers
        that quantize ``y`` themselves from ``means`` (straight-through decoders, latent refinement)."""
        with full_precision(y):
            y = y.float()
            z_hat, lik_z = self.factorized(self.h_a(y))
            means = self.h_s_mean(z_hat)
            y_tilde, lik_y = self.gaussian(y, self.scales(z_hat), means)
        return y_tilde, means, lik_y, lik_z

    # -- coding -------------------------------------------------------------------------------------
    def _code_side(self, y: torch.Tensor) -> tuple[torch.Tensor, list[bytes], torch.Tensor]:
        """``(z, z_strings, z_hat)``: the side latent of ``y``, its bytes and what the decoder rebuilds."""
        z = self.h_a(y)
        return z, self.factorized.compress(z), self.factorized.dequantize(self.factorized.symbols(z))

    def _decode_side(self, z_strings: list[bytes], z_shape: tuple[int, int]) -> torch.Tensor:
        """Inverse of :meth:`_code_side`: ``z_hat`` from its bytes."""
        return self.factorized.dequantize(self.factorized.decompress_symbols(z_strings, z_shape))

    def compress(self, y: torch.Tensor) -> tuple[list[list[bytes]], tuple[int, int]]:
        """``([y_strings, z_strings], z_shape)``; one byte string per batch item in each list."""
        self.require_frozen()
        self._check(y)
        z, z_strings, z_hat = self._code_side(y)
        idx = self.scale_indexes(z_hat)
        means = self.h_s_mean(z_hat)
        y_strings = self.gaussian.compress(y, idx, means)
        return [y_strings, z_strings], (int(z.shape[-2]), int(z.shape[-1]))

    def decompress(self, strings: list[list[bytes]], z_shape: tuple[int, int]) -> torch.Tensor:
        """Inverse of :meth:`compress`: ``y_hat [B, M, 4 * z_h, 4 * z_w]``."""
        y_sym, z_hat = self._decode(strings, z_shape)
        return y_sym.to(torch.float32) + self.h_s_mean(z_hat)

    def decompress_symbols(
        self, strings: list[list[bytes]], z_shape: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoded integer symbols ``(round(y - mean), round(z - median))`` (int64)."""
        y_sym, z_hat = self._decode(strings, z_shape)
        return y_sym, self.factorized.symbols(z_hat)

    def _decode(self, strings: list[list[bytes]], z_shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        self.require_frozen()
        y_strings, z_strings = strings
        if len(y_strings) != len(z_strings):
            raise ValueError("y and z strings must have one entry per batch item each")
        z_hat = self._decode_side(z_strings, z_shape)
        idx = self.scale_indexes(z_hat)
        y_sym = torch.stack([self._decode_y(data, idx[b]) for b, data in enumerate(y_strings)])
        return y_sym, z_hat

    def _decode_y(self, data: bytes, indexes: torch.Tensor) -> torch.Tensor:
        dec = StackDecoder(data)
        out = self.gaussian.decode_from(dec, indexes)
        dec.finish()
        return out
