"""Spatiotemporal entropy model (STEM) of the inter-frame latent: hyperprior + previous latent +
checkerboard spatial context, with an integer-exact scale path.

It extends :class:`~neuralcodec.entropy.Hyperprior` (same hyper-analysis ``h_a``, factorized
prior on ``z``, Gaussian tables, fixed-point log-scale boundaries) and changes only what the
hyper-synthesis feeds: instead of predicting ``(mean, scale)`` from ``z`` alone, two heads combine

* the hyper features ``h_s_mean(z_hat)`` / ``h_s_scale(z_hat)`` (``[B, H, h, w]``),
* the previous P-frame's latent (``prev_y_hat`` float for the mean, its integer symbols
  ``prev_sym`` for the scale; zeros after an intra frame),
* the temporal context at latent resolution (``context [B, C, h, w]``, float; mean only),
* a checkerboard spatial context: elements with ``(i + j)`` even (*anchors*) are coded first
  without it; the others see the decoded anchors (``y_hat`` for the mean, symbols for the scale).
  Both halves decode in parallel, two network passes per frame.

Determinism (see :mod:`neuralcodec.entropy`): the scale head is a
:class:`~neuralcodec.entropy.intnet.FixedPointConvNet` whose integer inputs are only decoded
integers (``z`` symbols through the integer hyper-synthesis, previous and anchor symbols), so the
table *indices* are bit-exact on every machine; everything float (temporal context, previous
``y_hat``, anchor ``y_hat``) enters the mean only, which moves reconstructions but never symbols.

Shapes: ``y [B, M, h, w]`` with ``h``, ``w`` multiples of 4; ``z [B, N, h/4, w/4]``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from neuralcodec.entropy import Hyperprior, StackDecoder, StackEncoder
from neuralcodec.entropy.checkerboard import checkerboard
from neuralcodec.entropy.intnet import ConvSpec, FixedPointConvNet
from neuralcodec.entropy.ops import round_ste


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, 1, k // 2)


def _deconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 5, 2, 2, output_padding=1)


class SpatioTemporalPrior(Hyperprior):
    """STEM for ``y_channels``-channel latents with a ``context_channels`` temporal context."""

    def __init__(self, y_channels: int, z_channels: int, hidden_channels: int | None = None,
                 context_channels: int = 0, *, act_frac_bits: int = 8, **kwargs) -> None:
        super().__init__(y_channels, z_channels, hidden_channels, act_frac_bits=act_frac_bits, **kwargs)
        m, n = self.y_channels, self.z_channels
        h = int(hidden_channels or z_channels)
        self.context_channels = int(context_channels)
        # hyper-synthesis now yields features (hidden channels), fused by the heads below
        self.h_s_mean = nn.Sequential(_deconv(n, h), nn.ReLU(), _deconv(h, h), nn.ReLU(), _conv(h, h))
        self.h_s_scale = FixedPointConvNet(
            [ConvSpec("deconv", n, h, 5, 2), ConvSpec("deconv", h, h, 5, 2), ConvSpec("conv", h, h, 3, 1)],
            act_frac_bits=act_frac_bits)
        # inputs: hyper features | previous latent | anchor half (zeros in the anchor pass)
        self.mean_head = nn.Sequential(_conv(h + self.context_channels + 2 * m, h), nn.ReLU(), _conv(h, h),
                                       nn.ReLU(), _conv(h, m))
        self.scale_head = FixedPointConvNet(
            [ConvSpec("conv", h + 2 * m, h, 3, 1), ConvSpec("conv", h, h, 1, 1), ConvSpec("conv", h, m, 3, 1)],
            act_frac_bits=act_frac_bits)

    @torch.no_grad()
    def _build_tables(self) -> None:
        super()._build_tables()
        self.scale_head.freeze()

    # -- the two heads -------------------------------------------------------------------------
    def _mean(self, feat_m: Tensor, context: Tensor, prev_y_hat: Tensor, anchors: Tensor) -> Tensor:
        return self.mean_head(torch.cat([feat_m, context, prev_y_hat, anchors], dim=1))

    def _log_scale(self, feat_s: Tensor, prev_sym: Tensor, anchors: Tensor) -> Tensor:
        """Float log-scales (training path)."""
        return self.scale_head(torch.cat([feat_s, prev_sym, anchors], dim=1)).clamp(*self._log_range)

    def _indexes(self, feat_s_fixed: Tensor, prev_sym: Tensor, anchor_sym: Tensor) -> Tensor:
        """int64 table indices from the integer-exact scale head (CPU; coding path)."""
        head = self.scale_head
        x = torch.cat([feat_s_fixed, head.to_fixed(prev_sym.cpu()), head.to_fixed(anchor_sym.cpu())], dim=1)
        fixed = head.forward_fixed(x)
        return torch.bucketize(fixed, self.log_scale_boundaries.to("cpu", torch.float64), right=True)

    def _hyper_fixed(self, z_hat: Tensor) -> Tensor:
        return self.h_s_scale.forward_fixed(self.h_s_scale.to_fixed(z_hat))

    def _check_inputs(self, y: Tensor, context: Tensor, prev_y_hat: Tensor, prev_sym: Tensor) -> None:
        self._check(y)
        b, _, hh, ww = y.shape
        if context.shape != (b, self.context_channels, hh, ww):
            raise ValueError(f"context {tuple(context.shape)} must be [B, {self.context_channels}, {hh}, {ww}]")
        if prev_y_hat.shape != y.shape or prev_sym.shape != y.shape:
            raise ValueError("previous latent and symbols must be shaped like y")

    # -- training / evaluation -------------------------------------------------------------------
    def forward(self, y: Tensor, context: Tensor, prev_y_hat: Tensor, prev_sym: Tensor
                ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:  # type: ignore[override]
        """``(y_hat, sym, {"y": lik_y, "z": lik_z})`` for ``y [B, M, h, w]``.

        ``sym`` is the coded residual ``y_hat - mean`` (integers in eval, noisy/STE in training),
        passed to the next frame as ``prev_sym``. Eval mode of a frozen model runs exactly the
        coding path (integer indices, exact table probabilities).
        """
        self._check_inputs(y, context, prev_y_hat, prev_sym)
        if not self.training:
            return self._forward_exact(y, context, prev_y_hat, prev_sym)
        z = self.h_a(y)
        z_hat, lik_z = self.factorized(z)
        feat_m, feat_s = self.h_s_mean(z_hat), self.h_s_scale(z_hat)
        mask = checkerboard(y.shape[-2], y.shape[-1], y.device).to(y.dtype)
        zeros = torch.zeros_like(y)
        mean_a = self._mean(feat_m, context, prev_y_hat, zeros)
        scale_a = torch.exp(self._log_scale(feat_s, prev_sym, zeros))
        _, lik_a = self.gaussian(y, scale_a, mean_a)
        res_a = round_ste(y - mean_a)  # what the decoder will see of the anchors
        y_hat_a = (res_a + mean_a) * mask
        mean_n = self._mean(feat_m, context, prev_y_hat, y_hat_a)
        scale_n = torch.exp(self._log_scale(feat_s, prev_sym, res_a * mask))
        _, lik_n = self.gaussian(y, scale_n, mean_n)
        mean = mean_a * mask + mean_n * (1 - mask)
        res = round_ste(y - mean)
        lik_y = lik_a * mask + lik_n * (1 - mask)
        return res + mean, res, {"y": lik_y, "z": lik_z}

    def _symbols(self, y: Tensor, mean: Tensor) -> Tensor:
        sym = torch.round(y - mean)
        if not bool(torch.isfinite(sym).all()) or float(sym.abs().max()) > 2.0**40:
            raise ValueError("cannot code non-finite or huge latent values")
        return sym

    def _forward_exact(self, y: Tensor, context: Tensor, prev_y_hat: Tensor, prev_sym: Tensor
                       ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        self.require_frozen()
        z_sym = self.factorized.symbols(self.h_a(y))
        z_hat = self.factorized.dequantize(z_sym, y.dtype)
        lik_z = self.factorized.likelihoods_from_symbols(z_sym).to(y.dtype)
        steps = self._passes(z_hat, context, prev_y_hat, prev_sym, lambda mean, sel: self._symbols(y, mean))
        y_hat, sym, idx = steps
        lik_y = self.gaussian.likelihoods_from_symbols(sym, idx).to(y.dtype)
        return y_hat, sym, {"y": lik_y, "z": lik_z}

    def _passes(self, z_hat: Tensor, context: Tensor, prev_y_hat: Tensor, prev_sym: Tensor, get_symbols
                ) -> tuple[Tensor, Tensor, Tensor]:
        """The two checkerboard passes shared by eval forward, encoder and decoder.

        ``get_symbols(mean, (indexes, half_mask, is_anchor_pass))`` returns float symbols
        ``[B, M, h, w]`` (only the ``half_mask`` positions are used): the encoder rounds
        ``y - mean`` and codes that half, the decoder decodes it.
        Returns ``(y_hat, symbols, indexes)`` over the whole latent.
        """
        feat_m = self.h_s_mean(z_hat)
        feat_s = self._hyper_fixed(z_hat)
        b, _, hh, ww = prev_y_hat.shape
        mask = checkerboard(hh, ww, prev_y_hat.device).expand(b, self.y_channels, hh, ww)
        fmask = mask.to(prev_y_hat.dtype)
        zeros = torch.zeros_like(prev_y_hat)
        mean_a = self._mean(feat_m, context, prev_y_hat, zeros)
        idx_a = self._indexes(feat_s, prev_sym, zeros).to(prev_y_hat.device)
        sym_a = get_symbols(mean_a, (idx_a, mask, True)) * fmask
        y_hat_a = (sym_a + mean_a) * fmask
        mean_n = self._mean(feat_m, context, prev_y_hat, y_hat_a)
        idx_n = self._indexes(feat_s, prev_sym, sym_a).to(prev_y_hat.device)
        sym_n = get_symbols(mean_n, (idx_n, ~mask, False)) * (1 - fmask)
        sym = sym_a + sym_n
        mean = torch.where(mask, mean_a, mean_n)
        idx = torch.where(mask, idx_a, idx_n)
        return sym + mean, sym, idx

    # -- coding ------------------------------------------------------------------------------------
    def scale_indexes(self, z_hat: Tensor) -> Tensor:
        raise NotImplementedError("STEM indices need the temporal and spatial context: use compress_frame")

    def compress(self, y: Tensor):  # type: ignore[override]
        raise NotImplementedError("STEM codes one frame at a time with its context: use compress_frame")

    def decompress(self, strings, z_shape):  # type: ignore[override]
        raise NotImplementedError("STEM decodes one frame at a time with its context: use decompress_frame")

    def compress_frame(self, y: Tensor, context: Tensor, prev_y_hat: Tensor, prev_sym: Tensor
                       ) -> tuple[bytes, Tensor, Tensor]:
        """One stream ``z | anchors | non-anchors`` for one item ``y [1, M, h, w]``;
        returns ``(bytes, y_hat, sym)`` (identical to eval :meth:`forward`)."""
        self.require_frozen()
        self._check_inputs(y, context, prev_y_hat, prev_sym)
        if y.shape[0] != 1:
            raise ValueError("compress_frame codes one item at a time")
        z_sym = self.factorized.symbols(self.h_a(y))
        z_hat = self.factorized.dequantize(z_sym, y.dtype)
        enc = StackEncoder()
        self.factorized.encode_into(enc, z_sym[0])

        def symbols(mean: Tensor, half) -> Tensor:
            idx, sel, _ = half
            sym = self._symbols(y, mean)
            self.gaussian.encode_into(enc, sym[sel].to(torch.int64), idx[sel])
            return sym

        y_hat, sym, _ = self._passes(z_hat, context, prev_y_hat, prev_sym, symbols)
        return enc.finish(), y_hat, sym

    def decompress_frame(self, data: bytes, latent_size: tuple[int, int], context: Tensor, prev_y_hat: Tensor,
                         prev_sym: Tensor) -> tuple[Tensor, Tensor]:
        """Inverse of :meth:`compress_frame`: ``(y_hat, sym)`` for a ``latent_size`` latent."""
        self.require_frozen()
        hh, ww = latent_size
        dec = StackDecoder(data)
        z_sym = self.factorized.decode_from(dec, (hh // 4, ww // 4))[None].to(prev_y_hat.device)
        z_hat = self.factorized.dequantize(z_sym, prev_y_hat.dtype)

        def symbols(mean: Tensor, half) -> Tensor:
            idx, sel, _ = half
            out = torch.zeros_like(mean)
            out[sel] = self.gaussian.decode_from(dec, idx[sel]).to(mean.dtype)
            return out

        y_hat, sym, _ = self._passes(z_hat, context, prev_y_hat, prev_sym, symbols)
        dec.finish()
        return y_hat, sym


__all__ = ["SpatioTemporalPrior"]
