"""TokenPrior: entropy model for quantizer codes ``[B, Q, T]`` (Q codebooks, T frames).

Two contexts:

* ``"static"`` - one learned categorical distribution per codebook (frozen to one integer table
  per codebook; symbols of a codebook are coded i.i.d.).
* ``"causal"`` - a small autoregressive model of ``p(c[q, t] | c[:, t-lags:t], c[:q, t])``: frames
  before ``t`` and lower codebooks of the same frame. Architecture (``H`` = ``hidden``)::

      h1 = relu(sum_{l, q'} A[l, q'][c[q', t-l]] + sum_{q' < q} B[q'][c[q', t]] + bias1[q])
      h2 = relu(W2 h1 + b2)
      logits[q] = W3[q] h2 + b3[q]

  The first layer is a sum of embedding rows (a linear layer on one-hot codes), so the coding
  path is table look-ups plus two small matrix products.

Exactness: at :meth:`freeze` every weight becomes a fixed-point integer and the softmax becomes an
integer look-up table ``round(2**37 * exp(-d / 2**logit_frac_bits))`` over the distance ``d`` to the
largest logit; integer weights are turned into frequency tables by
:func:`~neuralcodec.entropy.tables.freqs_from_weights`. The coding path thus computes only with
integers (held in float64 below ``2**53`` for fast exact matrix products), so encoder and decoder
obtain identical tables on any machine, thread count or batch size.

Streaming: ``compress``/``decompress`` accept ``context`` - the codes ``[B, Q, L]`` of frames that
precede the chunk (e.g. the tail of the previous chunk); without it a chunk is coded
independently (frames before the chunk are "start" tokens).

Lower bitrates: codes ``[B, q, T]`` of the first ``q <= Q`` codebooks can be coded on their own
(``decompress(..., num_codebooks=q)``); absent codebooks look like "start" tokens to the context
model, so training with random ``q`` (quantizer dropout) keeps every prefix well modelled.

Cost of the causal model per symbol: two small matrix products (``H x H`` and ``H x K_q``) and an
integer softmax; decoding is sequential over ``(frame, codebook)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuralcodec.entropy import detmath
from neuralcodec.entropy.base import EntropyModel
from neuralcodec.entropy.coder import StackDecoder, StackEncoder, encode_reduced_reverse, reduced_from_freqs
from neuralcodec.entropy.intnet import ACT_BITS, quantize_bias, quantize_weight, weight_shift
from neuralcodec.entropy.intnet import WEIGHT_BITS as INT_WEIGHT_BITS
from neuralcodec.entropy.tables import TOTAL, WEIGHT_BITS, _freqs_from_valid_weights, freqs_from_pmf
from neuralcodec.precision import full_precision

CONTEXTS = ("static", "causal")
_LUT_TOP_BITS = WEIGHT_BITS - 1  # largest softmax weight 2**37 (< 2**WEIGHT_BITS)


class TokenPrior(EntropyModel):
    """Learned prior over integer codes ``[B, Q, T]`` with ``codebook_sizes[q]`` symbols in codebook ``q``."""

    _dynamic_buffers = ("static_freqs",)

    def __init__(
        self,
        codebook_sizes: Sequence[int],
        context: str = "static",
        *,
        hidden: int = 64,
        lags: int = 2,
        act_frac_bits: int = 10,
        logit_frac_bits: int = 10,
    ) -> None:
        super().__init__()
        if context not in CONTEXTS:
            raise ValueError(f"context must be one of {CONTEXTS}, got {context!r}")
        self.codebook_sizes = [int(k) for k in codebook_sizes]
        if not self.codebook_sizes or min(self.codebook_sizes) < 2:
            raise ValueError("need at least one codebook with >= 2 entries")
        self.context = context
        self.num_codebooks = len(self.codebook_sizes)
        sizes = torch.tensor(self.codebook_sizes)
        self._offsets = [0, *torch.cumsum(sizes, 0).tolist()]  # rows of codebook q: [off[q], off[q+1])
        total = self._offsets[-1]
        if context == "static":
            self.logits = nn.Parameter(torch.zeros(total))
            self.register_buffer("static_freqs", torch.zeros(total, dtype=torch.int32))
            return
        q, h = self.num_codebooks, int(hidden)
        self.hidden, self.lags = h, int(lags)
        self.act_frac_bits, self.logit_frac_bits = int(act_frac_bits), int(logit_frac_bits)
        if self.lags < 1:
            raise ValueError("causal context needs lags >= 1")
        if h * 2.0**INT_WEIGHT_BITS * 2.0**ACT_BITS >= 2.0**52:
            raise ValueError("hidden size too large for exact integer products")
        # previous-frame rows: codebook q uses [off[q] + q, off[q+1] + q], the last one is "start"
        self._prev_offsets = [o + i for i, o in enumerate(self._offsets)]
        n_terms = self.lags * q + q
        self.prev_embed = nn.Parameter(torch.randn(self.lags, total + q, h) / math.sqrt(n_terms))
        self.cur_embed = nn.Parameter(torch.randn(total, h) / math.sqrt(n_terms))
        self.bias1 = nn.Parameter(torch.zeros(q, h))
        self.layer2 = nn.Linear(h, h)
        self.head_weight = nn.Parameter(torch.randn(total, h) * (0.1 / math.sqrt(h)))
        self.head_bias = nn.Parameter(torch.zeros(total))
        self.register_buffer("int_prev", torch.zeros(self.lags, total + q, h, dtype=torch.int64))
        self.register_buffer("int_cur", torch.zeros(total, h, dtype=torch.int64))
        self.register_buffer("int_bias1", torch.zeros(q, h, dtype=torch.int64))
        self.register_buffer("int_w2", torch.zeros(h, h, dtype=torch.int32))
        self.register_buffer("int_b2", torch.zeros(h, dtype=torch.int64))
        self.register_buffer("int_head", torch.zeros(total, h, dtype=torch.int32))
        self.register_buffer("int_head_bias", torch.zeros(total, dtype=torch.int64))
        self.register_buffer("int_shifts", torch.zeros(2, dtype=torch.int64))
        lut_len = int(math.ceil((_LUT_TOP_BITS + 1) * math.log(2) * 2**self.logit_frac_bits)) + 1
        self.register_buffer("softmax_lut", torch.zeros(lut_len, dtype=torch.int64))

    # -- validation ---------------------------------------------------------------------------------
    def _check_codes(self, codes: torch.Tensor, what: str = "codes") -> torch.Tensor:
        """Validate ``[B, q, T]`` codes of the first ``q <= Q`` codebooks; returns int64."""
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.num_codebooks:
            raise ValueError(f"{what} must be [B, q, T], 1 <= q <= {self.num_codebooks}; got {tuple(codes.shape)}")
        if codes.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise TypeError(f"{what} must be an integer tensor, got {codes.dtype}")
        sizes = self.codebook_sizes[: codes.shape[1]]
        if codes.numel():
            c = np.ascontiguousarray(codes.detach().cpu().numpy())
            hi = int(c.view(f"u{c.itemsize}").max())  # one pass: negative values become huge
            if hi >= max(sizes):
                raise ValueError(f"{what} outside [0, codebook_size)")
            if hi >= min(sizes) and min(sizes) < max(sizes) and np.any(c.max(axis=(0, 2)) >= np.array(sizes)):
                raise ValueError(f"{what} outside [0, codebook_size)")
        return codes.to(torch.int64)

    def _context(self, context: torch.Tensor | None, batch: int, q: int) -> torch.Tensor:
        """The last ``lags`` frames of ``context`` for the first ``q`` codebooks (``[B, q, <=lags]``)."""
        if context is None or self.context == "static":
            return torch.zeros(batch, q, 0, dtype=torch.int64)
        ctx = self._check_codes(context, "context").cpu()
        if ctx.shape[0] != batch or ctx.shape[1] < q:
            raise ValueError(f"context {tuple(ctx.shape)} does not cover {q} codebooks of a batch of {batch}")
        return ctx[:, :q, -self.lags :]

    # -- training / evaluation ----------------------------------------------------------------------
    def forward(self, codes: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Likelihoods ``[B, Q, T]`` of ``codes [B, Q, T]``; training rate ``-log2(lik).sum()``.

        A frozen model in eval mode returns the coder's exact probabilities. Always float32, also
        inside a mixed-precision (autocast) region.
        """
        with full_precision(codes):
            absent = codes < 0 if codes.numel() else None
            if absent is not None and absent.any():
                return self._forward_with_absent(codes, absent, context)
            codes = self._check_codes(codes)
            if self.use_exact_likelihoods():
                return self._exact_likelihoods(codes, context).to(codes.device)
            return self._float_likelihoods(codes, codes, context)

    def _float_likelihoods(self, codes: torch.Tensor, prev_codes: torch.Tensor,
                           context: torch.Tensor | None) -> torch.Tensor:
        """Training-network likelihoods of ``codes``; ``prev_codes`` feeds the previous-frame context."""
        if self.context == "static":
            out = []
            for q in range(codes.shape[1]):
                logp = F.log_softmax(self.logits[self._offsets[q] : self._offsets[q + 1]], dim=0)
                out.append(logp[codes[:, q]])
            return torch.exp(torch.stack(out, dim=1))
        ctx = self._context(context, codes.shape[0], codes.shape[1]).to(codes.device)
        h2 = self._hidden_float(codes, ctx, prev_codes)
        out = []
        for q in range(codes.shape[1]):
            lo, hi = self._offsets[q], self._offsets[q + 1]
            logits = h2[:, q] @ self.head_weight[lo:hi].t() + self.head_bias[lo:hi]
            logp = F.log_softmax(logits, dim=-1)
            out.append(logp.gather(-1, codes[:, q, :, None])[..., 0])
        return torch.exp(torch.stack(out, dim=1))

    def _forward_with_absent(self, codes: torch.Tensor, absent: torch.Tensor,
                             context: torch.Tensor | None) -> torch.Tensor:
        """Training with quantizer dropout: ``-1`` marks a codebook absent at that position.

        An item coded with its first ``k`` codebooks is seen exactly as the coder sees it at that
        bitrate: absent codebooks are "start" tokens in the previous-frame context, and their own
        likelihood is 1 (they cost nothing). Only the higher codebooks of a frame may be absent.
        """
        if self.use_exact_likelihoods():
            raise ValueError("absent (-1) codes are a training-time notion; code the first q codebooks instead")
        present = self._check_codes(torch.where(absent, torch.zeros_like(codes), codes))
        sizes = torch.tensor(self.codebook_sizes[: codes.shape[1]], device=codes.device).view(1, -1, 1)
        prev_codes = torch.where(absent, sizes.expand_as(codes), present)
        lik = self._float_likelihoods(present, prev_codes, context)
        return torch.where(absent, torch.ones_like(lik), lik)

    def _prev_rows(self, codes: torch.Tensor, ctx: torch.Tensor, lag: int) -> torch.Tensor:
        """Rows of ``prev_embed[lag-1]`` for every position, ``[B, Q, T]``.

        Frames before the data and codebooks beyond the ``q`` coded ones use the "start" rows.
        """
        b, q, t = codes.shape
        sizes = torch.tensor(self.codebook_sizes, device=codes.device).view(1, -1, 1)
        full = torch.cat([ctx, codes], dim=2)
        n_ctx = ctx.shape[2]
        if q < self.num_codebooks:
            full = torch.cat([full, sizes[:, q:].expand(b, -1, n_ctx + t)], dim=1)
        src = torch.arange(t, device=codes.device) + n_ctx - lag
        valid = (src >= 0).view(1, 1, -1)
        prev = full[:, :, src.clamp(min=0)]
        starts = torch.tensor(self._prev_offsets[:-1], device=codes.device).view(1, -1, 1)
        return starts + torch.where(valid, prev, sizes)

    def _cur_rows(self, codes: torch.Tensor) -> torch.Tensor:
        offsets = torch.tensor(self._offsets[: codes.shape[1]], device=codes.device)
        return codes + offsets.view(1, -1, 1)

    def _hidden_float(self, codes: torch.Tensor, ctx: torch.Tensor, prev_codes: torch.Tensor | None = None
                      ) -> torch.Tensor:
        """``h2 [B, Q, T, H]`` of the float (training) network (``prev_codes``: context view of ``codes``)."""
        lags = range(1, self.lags + 1)
        prev_src = codes if prev_codes is None else prev_codes
        prev = sum(self.prev_embed[lag - 1][self._prev_rows(prev_src, ctx, lag)].sum(1) for lag in lags)
        cur = self.cur_embed[self._cur_rows(codes)]  # [B, Q, T, H]
        below = torch.cumsum(cur, dim=1) - cur  # contributions of lower codebooks
        h1 = F.relu(prev[:, None] + below + self.bias1[None, : codes.shape[1], None, :])
        return F.relu(self.layer2(h1))

    # -- freezing -----------------------------------------------------------------------------------
    @torch.no_grad()
    def _build_tables(self) -> None:
        if self.context == "static":
            rows = []
            for q in range(self.num_codebooks):
                p = torch.softmax(self.logits[self._offsets[q] : self._offsets[q + 1]].double(), 0)
                rows.append(freqs_from_pmf(p.numpy()))
            self._buffers["static_freqs"] = torch.from_numpy(np.concatenate(rows).astype(np.int32))
            return
        fa, lim = self.act_frac_bits, 2.0**20
        emb = lambda t: torch.round(t.double() * 2.0**fa).clamp(-lim, lim).to(torch.int64)  # noqa: E731
        self.int_prev.copy_(emb(self.prev_embed))
        self.int_cur.copy_(emb(self.cur_embed))
        self.int_bias1.copy_(emb(self.bias1))
        s2 = weight_shift(self.layer2.weight)
        self.int_w2.copy_(quantize_weight(self.layer2.weight, s2))
        self.int_b2.copy_(quantize_bias(self.layer2.bias, s2 + fa, self.hidden))
        s3 = weight_shift(self.head_weight)
        self.int_head.copy_(quantize_weight(self.head_weight, s3))
        self.int_head_bias.copy_(quantize_bias(self.head_bias, s3 + fa, self.head_bias.numel()))
        self.int_shifts.copy_(torch.tensor([s2, s3]))
        d = np.arange(self.softmax_lut.numel(), dtype=np.float64) * 2.0**-self.logit_frac_bits
        lut = np.floor(detmath.exp(-d) * 2.0**_LUT_TOP_BITS + 0.5).astype(np.int64)
        lut[-1] = 0
        self.softmax_lut.copy_(torch.from_numpy(lut))

    # -- integer (coding) path ----------------------------------------------------------------------
    def _int_params(self) -> dict:
        """numpy copies of the integer buffers (float64 holding integers, for exact BLAS products)."""
        key = tuple((b.data_ptr(), b._version) for b in self.buffers())
        cache = self.__dict__.setdefault("_int_cache", {})
        if cache.get("key") != key:
            f = lambda t: t.detach().cpu().numpy().astype(np.float64)  # noqa: E731
            s2, s3 = (int(v) for v in self.int_shifts)
            (offset2, scale2), (offset3, scale3) = (
                self._rounding(s2), self._rounding(s3 + self.act_frac_bits - self.logit_frac_bits))
            cache.clear()
            cache.update(
                key=key,
                prev=f(self.int_prev),
                cur=f(self.int_cur),
                bias1=f(self.int_bias1),
                w2t=np.ascontiguousarray(f(self.int_w2).T),
                # biases with the rounding offset of their layer's shift added (integers below 2**53: exact)
                b2=f(self.int_b2) + offset2,
                heads=[np.ascontiguousarray(f(self.int_head[lo:hi]).T) for lo, hi in self._ranges()],
                head_b=[f(self.int_head_bias[lo:hi]) + offset3 for lo, hi in self._ranges()],
                scale2=scale2,
                scale3=scale3,
                lut=self.softmax_lut.cpu().numpy(),
            )
        return cache

    def _ranges(self) -> list[tuple[int, int]]:
        return [(self._offsets[q], self._offsets[q + 1]) for q in range(self.num_codebooks)]

    @staticmethod
    def _rounding(s: int) -> tuple[float, float]:
        """``(offset, scale)`` with ``floor((acc + offset) * scale) == floor((acc + 2**(s-1)) / 2**s)``
        for ``s > 0`` and the identity for ``s <= 0``; the offset is folded into the layer's bias."""
        return (2.0 ** (s - 1), 2.0**-s) if s > 0 else (0.0, 1.0)

    def _int_freqs(self, p: dict, h1: np.ndarray, q: int) -> np.ndarray:
        """Integer frequency tables ``[..., K_q]`` from pre-activations ``h1 [..., H]`` of codebook ``q``.

        All values are integers held in float64 below 2**53, so every operation is exact and the
        order of the additions (bias and rounding offset are pre-summed) does not matter. Written
        with in-place ufuncs: the causal decoder calls it once per symbol.
        """
        lim = 2.0**ACT_BITS
        h1 = np.maximum(h1, 0.0)
        np.minimum(h1, lim, out=h1)
        h2 = np.matmul(h1, p["w2t"])
        h2 += p["b2"]
        h2 *= p["scale2"]
        np.floor(h2, out=h2)
        np.maximum(h2, 0.0, out=h2)
        np.minimum(h2, lim, out=h2)
        logits = np.matmul(h2, p["heads"][q])
        logits += p["head_b"][q]
        logits *= p["scale3"]
        np.floor(logits, out=logits)
        dist = np.subtract(logits.max(axis=-1, keepdims=True), logits, out=logits)
        lut = p["lut"]
        np.minimum(dist, lut.size - 1, out=dist)
        # The largest weight is lut[0] = 2**37, so the bounds of freqs_from_weights hold.
        return _freqs_from_valid_weights(lut[dist.astype(np.intp)])

    def _int_tables(self, codes: torch.Tensor, ctx: torch.Tensor) -> list[np.ndarray]:
        """Teacher-forced integer tables: per codebook ``q`` an int64 array ``[B, T, K_q]``."""
        self.require_frozen()
        p = self._int_params()
        lags = range(1, self.lags + 1)
        prev = sum(p["prev"][lag - 1][self._prev_rows(codes, ctx, lag).numpy()].sum(1) for lag in lags)
        cur = p["cur"][self._cur_rows(codes).numpy()]  # [B, Q, T, H]
        below = np.cumsum(cur, axis=1) - cur
        return [self._int_freqs(p, prev + below[:, q] + p["bias1"][q], q) for q in range(codes.shape[1])]

    def _static_table(self, q: int) -> np.ndarray:
        return self.static_freqs[self._offsets[q] : self._offsets[q + 1]].numpy().astype(np.int64)

    def _exact_likelihoods(self, codes: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        codes = codes.cpu()
        if self.context == "static":
            freqs = [self._static_table(q)[codes[:, q].numpy()] for q in range(codes.shape[1])]
        else:
            tables = self._int_tables(codes, self._context(context, codes.shape[0], codes.shape[1]))
            freqs = [
                np.take_along_axis(tab, codes[:, q, :, None].numpy(), axis=-1)[..., 0]
                for q, tab in enumerate(tables)
            ]
        return torch.from_numpy(np.stack(freqs, axis=1) / TOTAL)

    def bits(self, codes: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Exact ideal code length (bits) of each batch item under the frozen tables, ``[B]``."""
        self.require_frozen()
        lik = self._exact_likelihoods(self._check_codes(codes), context)
        return -torch.log2(lik).sum(dim=(1, 2))

    # -- coding -------------------------------------------------------------------------------------
    def compress(self, codes: torch.Tensor, context: torch.Tensor | None = None) -> list[bytes]:
        """One byte string per batch item of ``codes [B, Q, T]`` (``context``: preceding frames)."""
        self.require_frozen()
        codes = self._check_codes(codes).cpu()
        b, q_count, t = codes.shape
        strings = []
        if self.context == "static":
            tables = [self._static_table(q) for q in range(q_count)]
            c32 = codes.numpy().astype(np.int32)  # range checked above
            for i in range(b):
                enc = StackEncoder()
                for q in range(q_count):
                    enc.categorical(c32[i, q], tables[q], validate=False)
                strings.append(enc.finish())
            return strings
        tables = self._int_tables(codes, self._context(context, b, q_count))
        uniform = len(set(self.codebook_sizes[:q_count])) == 1
        for i in range(b):
            enc = StackEncoder()
            if uniform:  # decoding order (t, q): one op with a table per symbol
                rows = np.stack([tab[i] for tab in tables], axis=1).reshape(t * q_count, -1)
                enc.categorical(codes[i].t().reshape(-1).numpy(), rows)
            else:  # tables of different sizes alternate: one push per symbol, last decoded first
                reduced = [reduced_from_freqs(tab[i]) for tab in tables]  # [T, K_q] each
                symbols = codes[i].numpy().astype(np.int32)  # range checked above

                def push(coder, reduced=reduced, symbols=symbols) -> None:
                    for step in range(t - 1, -1, -1):
                        for q in range(q_count - 1, -1, -1):
                            encode_reduced_reverse(coder, symbols[q, step : step + 1], reduced[q][step : step + 1])

                enc.deferred(push)
            strings.append(enc.finish())
        return strings

    def decompress(
        self,
        strings: Sequence[bytes],
        num_frames: int,
        context: torch.Tensor | None = None,
        num_codebooks: int | None = None,
    ) -> torch.Tensor:
        """Inverse of :meth:`compress`: codes ``[B, q, num_frames]`` (int64).

        ``num_codebooks`` (default all ``Q``) must equal the ``q`` of the compressed codes.
        """
        self.require_frozen()
        q_count = self.num_codebooks if num_codebooks is None else int(num_codebooks)
        if not 1 <= q_count <= self.num_codebooks:
            raise ValueError(f"num_codebooks must lie in [1, {self.num_codebooks}]")
        b, t = len(strings), int(num_frames)
        if t < 0:
            raise ValueError("num_frames must be >= 0")
        decoders = [StackDecoder(s) for s in strings]
        out = np.zeros((b, q_count, t), dtype=np.int64)
        if self.context == "static":
            for q in range(q_count):
                table = self._static_table(q)
                for i, dec in enumerate(decoders):
                    out[i, q] = dec.categorical(table, t)
        else:
            self._decode_causal(decoders, out, self._context(context, b, q_count))
        for dec in decoders:
            dec.finish()
        return torch.from_numpy(out)

    def _decode_causal(self, decoders: list[StackDecoder], out: np.ndarray, ctx: torch.Tensor) -> None:
        p = self._int_params()
        b, q_count, t = out.shape
        sizes = np.array(self.codebook_sizes)
        # decoded frames are written here; codebooks beyond q_count stay "start" tokens
        history = np.concatenate([ctx.numpy(), out], axis=2)
        n_ctx = ctx.shape[2]
        missing = np.broadcast_to(sizes[q_count:, None], (self.num_codebooks - q_count, n_ctx + t))
        history = np.concatenate([history, np.broadcast_to(missing, (b, *missing.shape))], axis=1)
        prev_starts = np.array(self._prev_offsets[:-1])
        cur_starts = np.array(self._offsets[:-1])
        qs = np.arange(q_count)
        for step in range(t):
            pos = n_ctx + step
            base = np.zeros((b, self.hidden))
            for lag in range(1, self.lags + 1):
                src = pos - lag
                frame = history[:, :, src] if src >= 0 else np.broadcast_to(sizes, (b, self.num_codebooks))
                base = base + p["prev"][lag - 1][prev_starts + frame].sum(1)
            below = np.zeros((b, self.hidden))
            for q in qs:
                freqs = self._int_freqs(p, base + below + p["bias1"][q], q)  # [B, K_q]
                for i, dec in enumerate(decoders):
                    history[i, q, pos] = dec.categorical(freqs[i : i + 1], validate=False)[0]
                below = below + p["cur"][cur_starts[q] + history[:, q, pos]]
        out[:] = history[:, :q_count, n_ctx:]
