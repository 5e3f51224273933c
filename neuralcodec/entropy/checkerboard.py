"""Mean-scale hyperprior with a checkerboard spatial context (He et al. 2021, "Checkerboard context
model for efficient learned image compression").

The latent ``y [B, M, H, W]`` is split into *anchors* (positions with ``(i + j)`` even) and
*non-anchors*. Anchors are coded exactly as in :class:`~neuralcodec.entropy.hyperprior.Hyperprior`
(mean and scale from ``z`` alone). Non-anchors are coded second, with their mean and log-scale
corrected by two small convolutional context networks that look at the already decoded anchors
around them. Decoding is two parallel passes, not a raster scan: CPU cost stays that of the plain
hyperprior plus two small convolutions.

Determinism follows the hyperprior's rule: the scale *index* of every element comes from integer
arithmetic. The scale context is a :class:`~neuralcodec.entropy.intnet.FixedPointConvNet` on the
anchors' integer *symbols* ``round(y - mean)`` (what the decoder reads from the stream), and its
fixed-point output is added to the hyper-synthesis' fixed-point log-scale before the boundary
comparison. The mean context is float and reads the anchors' ``y_hat`` (symbols plus means): means
only shift ``y_hat`` outside the coder, so float noise there never changes a decoded symbol.

Both context networks end in a zero-initialised layer, so a new model starts out as the plain
hyperprior (a warm start from a hyperprior checkpoint begins at that model's rate).
"""

from __future__ import annotations

import torch
from torch import nn

from neuralcodec.entropy.coder import StackDecoder, StackEncoder
from neuralcodec.entropy.hyperprior import Hyperprior
from neuralcodec.entropy.intnet import ConvSpec, FixedPointConvNet
from neuralcodec.entropy.ops import round_ste
from neuralcodec.precision import full_precision


def checkerboard(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """bool ``[1, 1, height, width]``, True at the anchors (``(i + j)`` even, coded first)."""
    i = torch.arange(height, device=device)[:, None]
    j = torch.arange(width, device=device)[None, :]
    return ((i + j) % 2 == 0)[None, None]


def anchor_mask(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """:func:`checkerboard` as a float32 mask (1 at the anchors, 0 elsewhere)."""
    return checkerboard(height, width, device).to(torch.float32)


def split_checkerboard(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [..., H, W]`` (``W`` even) -> ``(anchors, non_anchors)``, each ``[..., H, W / 2]``."""
    if x.shape[-1] % 2:
        raise ValueError(f"width {x.shape[-1]} must be even for the checkerboard split")
    pairs = x.unflatten(-1, (x.shape[-1] // 2, 2))  # [..., H, W/2, 2]: (even column, odd column)
    anchors = torch.empty_like(pairs[..., 0])
    others = torch.empty_like(pairs[..., 0])
    anchors[..., 0::2, :] = pairs[..., 0::2, :, 0]
    anchors[..., 1::2, :] = pairs[..., 1::2, :, 1]
    others[..., 0::2, :] = pairs[..., 0::2, :, 1]
    others[..., 1::2, :] = pairs[..., 1::2, :, 0]
    return anchors, others


def merge_checkerboard(anchors: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split_checkerboard`: ``[..., H, W / 2]`` twice -> ``[..., H, W]``."""
    pairs = anchors.new_empty(*anchors.shape, 2)
    pairs[..., 0::2, :, 0] = anchors[..., 0::2, :]
    pairs[..., 1::2, :, 1] = anchors[..., 1::2, :]
    pairs[..., 0::2, :, 1] = others[..., 0::2, :]
    pairs[..., 1::2, :, 0] = others[..., 1::2, :]
    return pairs.flatten(-2)


class CheckerboardHyperprior(Hyperprior):
    """:class:`Hyperprior` plus a two-pass checkerboard context (same constructor arguments, and
    ``context_hidden`` channels and ``context_kernel`` size for the two context networks)."""

    model_name = "checkerboard-hyperprior"

    def __init__(self, y_channels: int, z_channels: int, hidden_channels: int | None = None, *,
                 context_hidden: int | None = None, context_kernel: int = 5, **kwargs) -> None:
        super().__init__(y_channels, z_channels, hidden_channels, **kwargs)
        m = self.y_channels
        hc = int(context_hidden or m)
        k = int(context_kernel)
        if k < 3 or k % 2 == 0:
            raise ValueError(f"context_kernel must be odd and >= 3, got {k}")
        self.ctx_mean = nn.Sequential(nn.Conv2d(m, hc, k, 1, k // 2), nn.ReLU(), nn.Conv2d(hc, m, 1))
        self.ctx_scale = FixedPointConvNet(
            [ConvSpec("conv", m, hc, k, 1), ConvSpec("conv", hc, m, 1, 1)],
            act_frac_bits=self.h_s_scale.act_frac_bits,
        )
        for last in (self.ctx_mean[-1], self.ctx_scale.layers[-1]):
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    @torch.no_grad()
    def _build_tables(self) -> None:
        super()._build_tables()
        self.ctx_scale.freeze()

    # -- parameters ---------------------------------------------------------------------------------
    def _context_means(self, means_h: torch.Tensor, anchor_sym: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Means of every element: the hyper means, corrected at the non-anchors from the anchors'
        ``y_hat`` (``anchor_sym`` is zero off the anchors)."""
        anchor_hat = (anchor_sym + means_h) * mask
        return means_h + self.ctx_mean(anchor_hat) * (1.0 - mask)

    def _float_scales(self, z_hat: torch.Tensor, anchor_sym: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        log_s = self.h_s_scale(z_hat) + self.ctx_scale(anchor_sym) * (1.0 - mask)
        return torch.exp(log_s.clamp(*self._log_range))

    def _exact_indexes(self, z_hat: torch.Tensor, anchor_sym: torch.Tensor | None) -> torch.Tensor:
        """int64 table indices from integer arithmetic only: hyper log-scale plus, at the non-anchors,
        the scale context of the anchors' symbols (``None``: the anchors' pass, hyper only)."""
        self.require_frozen()
        fixed = self.h_s_scale.forward_fixed(self.h_s_scale.to_fixed(z_hat))
        if anchor_sym is not None:
            ctx = self.ctx_scale.forward_fixed(self.ctx_scale.to_fixed(anchor_sym))
            mask = checkerboard(*fixed.shape[-2:]).to(torch.float64)
            fixed = fixed + ctx * (1.0 - mask)
        bounds = self.log_scale_boundaries.to("cpu", torch.float64)
        return torch.bucketize(fixed, bounds, right=True).to(z_hat.device)

    # -- training / evaluation ----------------------------------------------------------------------
    def _entropy_parameters(self, y: torch.Tensor):
        """Float32 ``(z_hat, lik_z, means, anchor_sym, mask)`` for ``y``; the context sees the anchors
        rounded (straight-through in training), as the decoder will."""
        z_hat, lik_z = self.factorized(self.h_a(y))
        means_h = self.h_s_mean(z_hat)
        mask = anchor_mask(*y.shape[-2:], device=y.device)
        anchor_sym = round_ste(y - means_h) * mask
        return z_hat, lik_z, self._context_means(means_h, anchor_sym, mask), anchor_sym, mask

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(y_hat, {"y": likelihoods_y, "z": likelihoods_z})``; rate = ``-sum(log2(lik))``."""
        self._check(y)
        with full_precision(y):
            y = y.float()
            z_hat, lik_z, means, anchor_sym, mask = self._entropy_parameters(y)
            if self.use_exact_likelihoods():
                y_hat, lik_y = self.gaussian(y, means=means, indexes=self._exact_indexes(z_hat, anchor_sym))
            else:
                y_hat, lik_y = self.gaussian(y, self._float_scales(z_hat, anchor_sym, mask), means)
        return y_hat, {"y": lik_y, "z": lik_z}

    def float_path(self, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """As :meth:`Hyperprior.float_path`, with the checkerboard context."""
        with full_precision(y):
            y = y.float()
            z_hat, lik_z, means, anchor_sym, mask = self._entropy_parameters(y)
            y_tilde, lik_y = self.gaussian(y, self._float_scales(z_hat, anchor_sym, mask), means)
        return y_tilde, means, lik_y, lik_z

    # -- coding -------------------------------------------------------------------------------------
    def compress(self, y: torch.Tensor) -> tuple[list[list[bytes]], tuple[int, int]]:
        """``([y_strings, z_strings], z_shape)``; each y string holds the anchors, then the rest."""
        self.require_frozen()
        self._check(y)
        z, z_strings, z_hat = self._code_side(y)
        means_h = self.h_s_mean(z_hat)
        mask = anchor_mask(*y.shape[-2:], device=y.device)
        anchor_sym = self.gaussian.symbols(y, means_h).to(y.dtype) * mask
        means = self._context_means(means_h, anchor_sym, mask)
        idx = self._exact_indexes(z_hat, anchor_sym)
        sym = self.gaussian.symbols(y, means)  # equals anchor_sym at the anchors (same means there)
        y_strings = []
        for b in range(y.shape[0]):
            sym_a, sym_n = split_checkerboard(sym[b])
            idx_a, idx_n = split_checkerboard(idx[b])
            enc = StackEncoder()
            self.gaussian.encode_into(enc, sym_a, idx_a)
            self.gaussian.encode_into(enc, sym_n, idx_n)
            y_strings.append(enc.finish())
        return [y_strings, z_strings], (int(z.shape[-2]), int(z.shape[-1]))

    def decompress(self, strings: list[list[bytes]], z_shape: tuple[int, int]) -> torch.Tensor:
        """Inverse of :meth:`compress`: ``y_hat [B, M, 4 * z_h, 4 * z_w]``."""
        y_sym, _, means = self._decode_all(strings, z_shape)
        return y_sym.to(torch.float32) + means

    def _decode(self, strings: list[list[bytes]], z_shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        y_sym, z_hat, _ = self._decode_all(strings, z_shape)
        return y_sym, z_hat

    def _decode_all(self, strings: list[list[bytes]], z_shape: tuple[int, int]):
        """``(y symbols int64, z_hat, means)``: anchors in a first pass, the rest from their context."""
        self.require_frozen()
        y_strings, z_strings = strings
        if len(y_strings) != len(z_strings):
            raise ValueError("y and z strings must have one entry per batch item each")
        z_hat = self._decode_side(z_strings, z_shape)
        means_h = self.h_s_mean(z_hat)
        idx_h = self._exact_indexes(z_hat, None)
        mask = anchor_mask(*idx_h.shape[-2:], device=z_hat.device)
        decoders = [StackDecoder(data) for data in y_strings]
        anchors = torch.stack([self.gaussian.decode_from(dec, split_checkerboard(idx_h[b])[0])
                               for b, dec in enumerate(decoders)])
        anchor_sym = merge_checkerboard(anchors, torch.zeros_like(anchors)).to(means_h.dtype)
        means = self._context_means(means_h, anchor_sym, mask)
        idx = self._exact_indexes(z_hat, anchor_sym)
        y_sym = []
        for b, dec in enumerate(decoders):
            others = self.gaussian.decode_from(dec, split_checkerboard(idx[b])[1])
            dec.finish()
            y_sym.append(merge_checkerboard(anchors[b], others))
        return torch.stack(y_sym), z_hat, means


__all__ = ["CheckerboardHyperprior", "anchor_mask", "checkerboard", "merge_checkerboard", "split_checkerboard"]
