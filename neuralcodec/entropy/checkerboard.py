"""Mean-scale hyperprior with a checkerboard spatial context (He et al. 2021, "Checkerboard context
model for efficient learned image compression"), optionally combined with a channel-group context
(Minnen & Singh 2020, "Channel-wise autoregressive entropy models"; He et al. 2022, ELIC).

The latent ``y [B, M, H, W]`` is split into *anchors* (positions with ``(i + j)`` even) and
*non-anchors*. Anchors are coded first with the hyperprior's mean and scale (from ``z`` alone);
non-anchors second, with their mean and log-scale corrected by two small convolutional context
networks that look at the already decoded anchors around them. With ``channel_groups`` > 1 each
of the two passes is further split into channel groups ``y[:, :c1], y[:, c1:c1+c2], ...`` coded one
after another: group ``g`` also sees the groups before it (their anchors in the first pass, all of
them in the second) through one more pair of small networks per group and pass. Decoding is
``2 x groups`` parallel passes, never a raster scan: the CPU cost stays that of the plain
hyperprior plus a few small convolutions.

Coding order (one ANS stream per image): anchors of group 1, ..., anchors of group G, then the
non-anchors of group 1, ..., group G.

Determinism follows the hyperprior's rule: the scale *index* of every element comes from integer
arithmetic. Every scale context is a :class:`~neuralcodec.entropy.intnet.FixedPointConvNet` on
integer *symbols* ``round(y - mean)`` (what the decoder reads from the stream), and its fixed-point
output is added to the hyper-synthesis' fixed-point log-scale before the boundary comparison. The
mean contexts are float and read ``y_hat`` (symbols plus means): means only shift ``y_hat`` outside
the coder, so float noise there never changes a decoded symbol.

Every context network ends in a zero-initialised layer, so a new model starts out as the model it
extends (a warm start from a hyperprior, or from a checkerboard model without channel groups,
begins at exactly that model's rate and files).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def channel_group_sizes(groups: int | Sequence[int], channels: int) -> tuple[int, ...]:
    """Group sizes from a count (equal groups, the last ones one channel larger if needed) or an
    explicit list summing to ``channels``."""
    if isinstance(groups, int):
        if not 1 <= groups <= channels:
            raise ValueError(f"channel_groups must lie in 1..{channels}, got {groups}")
        base, extra = divmod(channels, groups)
        return tuple(base + (i >= groups - extra) for i in range(groups))
    sizes = tuple(int(s) for s in groups)
    if not sizes or min(sizes) < 1 or sum(sizes) != channels:
        raise ValueError(f"channel_groups {list(sizes)} must be positive sizes summing to {channels}")
    return sizes


#: ``apply(net, x)``: a context network's float forward, or its integer-exact one on fixed point
_Apply = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def _float_apply(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net(x)


def _fixed_apply(net: FixedPointConvNet, x: torch.Tensor) -> torch.Tensor:
    return net.forward_fixed(net.to_fixed(x))


class CheckerboardHyperprior(Hyperprior):
    """:class:`Hyperprior` plus a two-pass checkerboard context (same constructor arguments, and
    ``context_hidden`` channels and ``context_kernel`` size for the context networks), optionally
    split into ``channel_groups`` (a count or a list of sizes) coded in sequence within each pass."""

    model_name = "checkerboard-hyperprior"

    def __init__(self, y_channels: int, z_channels: int, hidden_channels: int | None = None, *,
                 context_hidden: int | None = None, context_kernel: int = 5,
                 channel_groups: int | Sequence[int] = 1, **kwargs) -> None:
        super().__init__(y_channels, z_channels, hidden_channels, **kwargs)
        m = self.y_channels
        hc = int(context_hidden or m)
        k = int(context_kernel)
        if k < 3 or k % 2 == 0:
            raise ValueError(f"context_kernel must be odd and >= 3, got {k}")
        self.group_sizes = channel_group_sizes(channel_groups, m)
        self.group_starts = tuple(sum(self.group_sizes[:g]) for g in range(len(self.group_sizes)))
        if len(self.group_sizes) > 1:
            self.model_name = "channel-checkerboard-hyperprior"
        frac = self.h_s_scale.act_frac_bits
        self.ctx_mean = nn.Sequential(nn.Conv2d(m, hc, k, 1, k // 2), nn.ReLU(), nn.Conv2d(hc, m, 1))
        self.ctx_scale = FixedPointConvNet([ConvSpec("conv", m, hc, k, 1), ConvSpec("conv", hc, m, 1, 1)],
                                           act_frac_bits=frac)
        # channel context: one (mean, scale) pair per pass and group after the first, index
        # pass * (G - 1) + group - 1; input = the groups before it, output = this group's channels
        self.chan_mean = nn.ModuleList()
        self.chan_scale = nn.ModuleList()
        for _pass in range(2):
            for start, size in zip(self.group_starts[1:], self.group_sizes[1:], strict=True):
                self.chan_mean.append(nn.Sequential(nn.Conv2d(start, hc, k, 1, k // 2), nn.ReLU(),
                                                    nn.Conv2d(hc, size, 1)))
                self.chan_scale.append(FixedPointConvNet(
                    [ConvSpec("conv", start, hc, k, 1), ConvSpec("conv", hc, size, 1, 1)], act_frac_bits=frac))
        lasts = [self.ctx_mean[-1], self.ctx_scale.layers[-1]]
        lasts += [net[-1] for net in self.chan_mean] + [net.layers[-1] for net in self.chan_scale]
        for last in lasts:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    @torch.no_grad()
    def _build_tables(self) -> None:
        super()._build_tables()
        self.ctx_scale.freeze()
        for net in self.chan_scale:
            net.freeze()

    # -- coding order -------------------------------------------------------------------------------
    @property
    def num_groups(self) -> int:
        return len(self.group_sizes)

    def _group(self, g: int) -> slice:
        return slice(self.group_starts[g], self.group_starts[g] + self.group_sizes[g])

    def _chan(self, p: int, g: int) -> int:
        return p * (self.num_groups - 1) + g - 1

    def _walk(self, means_h: torch.Tensor, take: Callable[..., torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the coding order: ``take(p, g, means, known_sym, anchor_sym)`` returns the symbols of
        group ``g`` in pass ``p`` (0 = anchors, 1 = the rest; only that pass's positions are used)
        given its means, the symbols of the groups before it as the decoder knows them (``None``
        for the first group) and, in pass 1, all anchors' symbols. Returns ``(symbols, means)``,
        full float maps shaped like ``means_h``."""
        anchors = checkerboard(*means_h.shape[-2:], device=means_h.device)
        sym: list[torch.Tensor] = []
        hat: list[torch.Tensor] = []
        mean0: list[torch.Tensor] = []
        means: list[torch.Tensor] = []
        anchor_sym = None
        for p in (0, 1):
            if p == 1:
                anchor_sym = torch.cat(sym, 1)
                ctx_m = self.ctx_mean(torch.cat(hat, 1))
            for g in range(self.num_groups):
                m = means_h[:, self._group(g)]
                if p == 1:
                    m = m + ctx_m[:, self._group(g)]
                if g > 0:
                    m = m + self.chan_mean[self._chan(p, g)](torch.cat(hat[:g], 1))
                s = take(p, g, m, torch.cat(sym[:g], 1) if g else None, anchor_sym)
                if p == 0:
                    zero = torch.zeros((), dtype=s.dtype, device=s.device)
                    sym.append(torch.where(anchors, s, zero))
                    hat.append(torch.where(anchors, s + m, zero))
                    mean0.append(m)
                else:
                    sym[g] = torch.where(anchors, sym[g], s)
                    hat[g] = torch.where(anchors, hat[g], s + m)
                    means.append(torch.where(anchors, mean0[g], m))
        return torch.cat(sym, 1), torch.cat(means, 1)

    def _step_log_scale(self, p: int, g: int, base: torch.Tensor, ctx: torch.Tensor | None,
                        known_sym: torch.Tensor | None, apply: _Apply) -> torch.Tensor:
        """Log-scales (float, or fixed point with ``_fixed_apply``) of group ``g`` in pass ``p``."""
        out = base[:, self._group(g)]
        if p == 1:
            out = out + ctx[:, self._group(g)]
        if g > 0:
            out = out + apply(self.chan_scale[self._chan(p, g)], known_sym)
        return out

    def _log_scales(self, base: torch.Tensor, sym: torch.Tensor, apply: _Apply) -> torch.Tensor:
        """Every element's log-scale from the final symbol map ``sym`` (each element reads only the
        symbols coded before it)."""
        anchors = checkerboard(*sym.shape[-2:], device=sym.device)
        anchor_sym = torch.where(anchors, sym, torch.zeros((), dtype=sym.dtype, device=sym.device))
        ctx = apply(self.ctx_scale, anchor_sym)
        anchors = anchors.to(ctx.device)
        parts = []
        for g in range(self.num_groups):
            start = self.group_starts[g]
            first = self._step_log_scale(0, g, base, None, anchor_sym[:, :start], apply)
            second = self._step_log_scale(1, g, base, ctx, sym[:, :start], apply)
            parts.append(torch.where(anchors, first, second))
        return torch.cat(parts, 1)

    def _bucketize(self, fixed: torch.Tensor, device: torch.device) -> torch.Tensor:
        bounds = self.log_scale_boundaries.to("cpu", torch.float64)
        return torch.bucketize(fixed.contiguous(), bounds, right=True).to(device)

    def _exact_indexes(self, z_hat: torch.Tensor, sym: torch.Tensor | None) -> torch.Tensor:
        """int64 table indices from integer arithmetic only, given the symbol map ``sym`` (float;
        ``None``: the hyperprior's indices alone, i.e. those of the first group's anchors)."""
        self.require_frozen()
        fixed = _fixed_apply(self.h_s_scale, z_hat)
        if sym is not None:
            fixed = self._log_scales(fixed, sym.to("cpu"), _fixed_apply)
        return self._bucketize(fixed, z_hat.device)

    def _float_scales(self, z_hat: torch.Tensor, sym: torch.Tensor) -> torch.Tensor:
        log_s = self._log_scales(self.h_s_scale(z_hat), sym, _float_apply)
        return torch.exp(log_s.clamp(*self._log_range))

    # -- training / evaluation ----------------------------------------------------------------------
    def _entropy_parameters(self, y: torch.Tensor):
        """Float32 ``(z_hat, lik_z, means, sym)`` for ``y``; the contexts see rounded symbols
        (straight-through in training), as the decoder will."""
        z_hat, lik_z = self.factorized(self.h_a(y))

        def take(p, g, m, known, anchor_sym):
            return round_ste(y[:, self._group(g)] - m)

        sym, means = self._walk(self.h_s_mean(z_hat), take)
        return z_hat, lik_z, means, sym

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(y_hat, {"y": likelihoods_y, "z": likelihoods_z})``; rate = ``-sum(log2(lik))``."""
        self._check(y)
        with full_precision(y):
            y = y.float()
            z_hat, lik_z, means, sym = self._entropy_parameters(y)
            if self.use_exact_likelihoods():
                y_hat, lik_y = self.gaussian(y, means=means, indexes=self._exact_indexes(z_hat, sym))
            else:
                y_hat, lik_y = self.gaussian(y, self._float_scales(z_hat, sym), means)
        return y_hat, {"y": lik_y, "z": lik_z}

    def float_path(self, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """As :meth:`Hyperprior.float_path`, with the contexts."""
        with full_precision(y):
            y = y.float()
            z_hat, lik_z, means, sym = self._entropy_parameters(y)
            y_tilde, lik_y = self.gaussian(y, self._float_scales(z_hat, sym), means)
        return y_tilde, means, lik_y, lik_z

    # -- coding -------------------------------------------------------------------------------------
    def compress(self, y: torch.Tensor) -> tuple[list[list[bytes]], tuple[int, int]]:
        """``([y_strings, z_strings], z_shape)``; each y string holds the groups' anchors, then the rest."""
        self.require_frozen()
        self._check(y)
        z, z_strings, z_hat = self._code_side(y)

        def take(p, g, m, known, anchor_sym):
            return self.gaussian.symbols(y[:, self._group(g)], m).to(y.dtype)

        sym_float, means = self._walk(self.h_s_mean(z_hat), take)
        idx = self._exact_indexes(z_hat, sym_float)
        sym = self.gaussian.symbols(y, means)  # int64 (escapes beyond float32's integers stay exact)
        y_strings = []
        for b in range(y.shape[0]):
            enc = StackEncoder()
            for p in (0, 1):
                for g in range(self.num_groups):
                    gs = self._group(g)
                    self.gaussian.encode_into(enc, split_checkerboard(sym[b, gs])[p], split_checkerboard(idx[b, gs])[p])
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
        """``(y symbols int64, z_hat, means)``, decoded in the coding order of :meth:`_walk`."""
        self.require_frozen()
        y_strings, z_strings = strings
        if len(y_strings) != len(z_strings):
            raise ValueError("y and z strings must have one entry per batch item each")
        z_hat = self._decode_side(z_strings, z_shape)
        fixed_h = _fixed_apply(self.h_s_scale, z_hat)
        decoders = [StackDecoder(data) for data in y_strings]
        exact: dict[tuple[int, int], torch.Tensor] = {}  # int64 symbols per (pass, group)
        ctx: list[torch.Tensor] = []

        def take(p, g, m, known, anchor_sym):
            if p == 1 and not ctx:
                ctx.append(_fixed_apply(self.ctx_scale, anchor_sym))
            fixed = self._step_log_scale(p, g, fixed_h, ctx[0] if ctx else None, known, _fixed_apply)
            idx = self._bucketize(fixed, z_hat.device)
            part = torch.stack([self.gaussian.decode_from(dec, split_checkerboard(idx[b])[p])
                                for b, dec in enumerate(decoders)])
            zero = torch.zeros_like(part)
            exact[p, g] = merge_checkerboard(part, zero) if p == 0 else merge_checkerboard(zero, part)
            return exact[p, g].to(m.dtype)

        _, means = self._walk(self.h_s_mean(z_hat), take)
        for dec in decoders:
            dec.finish()
        y_sym = torch.cat([exact[0, g] + exact[1, g] for g in range(self.num_groups)], 1)
        return y_sym, z_hat, means


__all__ = ["CheckerboardHyperprior", "channel_group_sizes", "checkerboard", "merge_checkerboard",
           "split_checkerboard"]
