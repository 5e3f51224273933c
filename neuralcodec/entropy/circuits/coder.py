"""Exact conditional coding with an HCLT: one schedule, computed in bulk by the encoder and step
by step by the decoder, with bit-identical integer arithmetic.

Variables are coded in the pre-order of the tree (:attr:`TreeLayout.order`). In the depth-first
walk every tree node ``v`` has two vectors over its hidden states:

* ``O_v(z)``: the probability of everything coded *outside* ``v``'s subtree, jointly with
  ``Z_v = z``, taken when the walk enters ``v``: ``O_v = (O_u * L_u) @ trans[v]`` with ``u`` the
  parent and ``L_u`` as it is at that moment;
* ``L_v(z)``: the probability of everything coded *inside* ``v``'s subtree given ``Z_v = z``:
  the emission of ``x_v``, then multiplied by the message ``m_c = L_c @ trans[c]^T`` of each
  child ``c`` as the walk leaves it (children in ascending index order).

Since nothing below ``v`` is coded before ``v`` itself (pre-order), the conditional is
``p(x_v = . | coded so far) ∝ O_v @ emit[v]``: each variable costs two ``k x k`` vector-matrix
products and one ``k x K`` product, whatever ``D`` and whatever the tree depth. This is the tree
form of the paper's reuse of computation between coding steps. Unobserved variables (``mask``)
are marginalized: their input unit is 1 and nothing is coded for them.

Two evaluations of the same schedule:

* the **decoder** (:meth:`CircuitCoder.walk`) follows the walk variable by variable, since each
  value is needed before the next conditional;
* the **encoder** knows every value, so it computes all messages bottom-up and all ``O_v``
  top-down, one tree level at a time (a few batched matrix products per level), then all
  conditionals and tables in large blocks, and pushes them onto the ANS stack in one call per
  block. ``L_u`` "as it is when the walk enters child ``c_j``" is the parent's emission times
  the messages of its children ``c_1 .. c_{j-1}``, a prefix product kept per child.

Large alphabets (``K > 32``, e.g. 256 grey levels) are coded as two symbols, the group
``x // B`` and the offset ``x % B`` with ``B = 16`` for ``K = 256`` (:func:`split_width`): the
group marginals are one ``k x B`` product with summed emission columns (a circuit gives
marginals directly), the offsets another ``k x B`` product with the row's group block, so the
tables and ANS steps handle ``2 B`` entries instead of ``K``. The encoder still needs no
``k x K`` product at all.

Determinism by exact integer arithmetic: parameters are stored for coding as integers in
``[1, 2**PARAM_BITS]`` and the state vectors are re-quantized to integers in
``[1, 2**STATE_BITS]`` after every product (each batch row scaled by a power of two, then
rounded up). All products and sums, the conditionals' row sums included, are therefore integers
below ``2**53``, which float64 represents exactly: matrix products give the same bits in any
summation order (BLAS or not, with or without FMA, any batch size, thread count or CPU), so the
bulk encoder and the step-by-step decoder agree bit for bit. Each conditional becomes an
integer table through :func:`neuralcodec.entropy.tables.reduced_tables` (IEEE-754 basic
operations on exact inputs) and is coded with constriction's ANS at 24-bit precision. The
quantization perturbs the conditionals by about ``2**-20`` relative, far below what a 24-bit
table resolves for the probable symbols, and identically on both sides.

State vectors are stored hidden-major (``[k, n]`` for ``n`` rows) so that the per-row maximum of
the re-quantization is a reduction over the outer axis.
"""

from __future__ import annotations

import threading
from typing import Callable, Sequence

import numpy as np

from neuralcodec.entropy.circuits.hclt import HCLT
from neuralcodec.entropy.circuits.structure import ENTER, TreeLayout
from neuralcodec.entropy.coder import StackDecoder, StackEncoder, encode_reduced_reverse
from neuralcodec.entropy.tables import freqs_from_reduced, information_bits, reduced_tables
from neuralcodec.errors import BitstreamError

#: Version of the integer schedule and table construction; part of the codec's entropy model id.
#: v1: one ``freqs_from_pmf`` table per value, floor-and-lift re-quantization. v2: tables from
#: :func:`~neuralcodec.entropy.tables.reduced_tables`, rounding-up re-quantization, alphabets
#: above :data:`SPLIT_ABOVE` coded as group + offset.
CODER_VERSION = 2
#: Bits of the integer parameters and of the re-quantized state vectors (states lie in
#: ``[1, 2**STATE_BITS]``, parameters in ``[1, 2**PARAM_BITS]``, emission rows sum to at most
#: ``2**PARAM_BITS + K``). Up to ``MAX_HIDDEN`` hidden states keep every product exact in float64,
#: the row sums of the conditionals included: ``k * 2**STATE_BITS * (2**PARAM_BITS + K) < 2**53``.
PARAM_BITS = 24
STATE_BITS = 22
MAX_HIDDEN = 1 << (52 - PARAM_BITS - STATE_BITS)
#: Entries of the conditional tables the encoder builds at once (memory bound: 8 bytes each).
BLOCK_ENTRIES = 1 << 18
#: Alphabets larger than this are coded as two symbols, group then offset (see :func:`split_width`).
SPLIT_ABOVE = 32


def split_width(num_categories: int) -> int:
    """Table width ``B`` of the coder for ``K`` categories: ``K`` itself up to :data:`SPLIT_ABOVE`,
    else the power of two ``2**ceil(log2(K) / 2)``; a value ``x`` is then coded as its group
    ``x // B`` and its offset ``x % B``, each with a ``B``-entry table (``K = 256``: two 16-entry
    tables instead of one of 256, since a circuit gives the group marginals directly)."""
    if num_categories <= SPLIT_ABOVE:
        return num_categories
    return 1 << (((num_categories - 1).bit_length() + 1) // 2)


SymbolFn = Callable[[int, np.ndarray, np.ndarray], np.ndarray]


def _row_normalize(a: np.ndarray) -> np.ndarray:
    """``a / a.sum(-1)`` with the sum taken sequentially (fixed order, machine-independent)."""
    s = a[..., 0].copy()
    for j in range(1, a.shape[-1]):
        s += a[..., j]
    return a / s[..., None]


def _integer_parameters(p: np.ndarray) -> np.ndarray:
    """Normalized probabilities -> integers in ``[1, 2**PARAM_BITS]`` held in float64."""
    return np.maximum(np.rint(np.ldexp(p, PARAM_BITS)), 1.0)


def _requantize(a: np.ndarray) -> np.ndarray:
    """Scale each batch row of positive integers (the hidden axis is ``-2``: ``a [..., k, n]``) by
    a power of two so that its maximum lies in ``[2**(STATE_BITS-1), 2**STATE_BITS)``, then round
    up: integers in ``[1, 2**STATE_BITS]`` (no state ever becomes impossible, so no row can
    vanish). Exact and order-free; works in place and returns ``a``."""
    _, exponent = np.frexp(a.max(axis=-2, keepdims=True))
    np.ldexp(a, STATE_BITS - exponent, out=a)
    np.ceil(a, out=a)
    return a


_SCRATCH = threading.local()


def _scratch(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float64 array of ``shape`` in a per-thread buffer ``name`` that is kept between calls
    (and grows to the largest request). The encoder's state arrays are tens of MB: fresh memory
    of that size costs page faults that take about as long as the arithmetic on it."""
    size = int(np.prod(shape))
    buf = getattr(_SCRATCH, name, None)
    if buf is None or buf.size < size:
        buf = np.empty(size)
        setattr(_SCRATCH, name, buf)
    return buf[:size].reshape(shape)


class CircuitCoder:
    """Frozen integer form of an :class:`HCLT` that codes integer arrays ``[N, D]``.

    Building it is the explicit freeze step: later changes to the circuit do not affect it.
    """

    def __init__(self, circuit: HCLT) -> None:
        self.layout: TreeLayout = circuit.layout
        self.num_vars, self.num_categories, self.hidden = circuit.num_vars, circuit.num_categories, circuit.hidden
        if self.hidden > MAX_HIDDEN:
            raise ValueError(f"exact coding supports at most {MAX_HIDDEN} hidden states, got {self.hidden}")
        f64 = lambda t: t.detach().cpu().numpy().astype(np.float64)  # noqa: E731  (exact widening)
        k = self.hidden
        # float64 integers; trans[v][a, b] ~ 2**PARAM_BITS * p(Z_v = b | Z_parent = a)
        self.prior = _requantize(_integer_parameters(_row_normalize(f64(circuit.prior)))[:, None])[:, 0]  # [k]
        self.trans = _integer_parameters(_row_normalize(f64(circuit.trans)))  # [D, k, k]
        self.trans_t = np.ascontiguousarray(self.trans.transpose(0, 2, 1))  # [D, k (child), k (parent)]
        self.emit = _integer_parameters(_row_normalize(f64(circuit.emit)))  # [G, k, K]
        self.emit_sum = self.emit.sum(axis=2)  # [G, k]: exact integer row sums
        # input units of observed variables: the re-quantized emission column of each value
        self.emit_q = _requantize(self.emit.copy())  # [G, k, K]
        self.emit_index = circuit.emit_index.numpy().copy()  # [D]
        self.ones = float(1 << (STATE_BITS - 1))  # the state value of a marginalized input unit
        kk = self.num_categories
        self.width = split_width(kk)
        self.split = self.width < kk
        if self.split:  # group marginals [G, k, B] (zero-padded) and per-group emissions [G, groups, k, B]
            groups = -(-kk // self.width)
            padded = np.zeros(self.emit.shape[:2] + (groups * self.width,))
            padded[..., :kk] = self.emit
            blocks = padded.reshape(self.emit.shape[:2] + (groups, self.width))
            self.emit_group = np.zeros(self.emit.shape[:2] + (self.width,))
            self.emit_group[..., :groups] = blocks.sum(axis=3)  # exact integer sums
            self.emit_block = np.ascontiguousarray(blocks.transpose(0, 2, 1, 3))  # [G, groups, k, B]
            self.emit_block_t = np.ascontiguousarray(blocks.transpose(0, 2, 3, 1))  # [G, groups, B, k]
        self._schedule()
        # Leaves' messages depend only on their value: tabulated, [k (parent), K] and [k] (unobserved).
        self.leaf_message: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for v in np.flatnonzero(self._is_leaf).tolist():
            if v == self.layout.root:
                continue
            g = int(self.emit_index[v])
            msg = _requantize(self.trans[v] @ self.emit_q[g])
            unobserved = _requantize(self.trans[v] @ np.full((k, 1), self.ones))[:, 0]
            self.leaf_message[v] = (msg, unobserved)

    def _schedule(self) -> None:
        """Precomputed bookkeeping of the walk and of the level-by-level evaluation."""
        layout = self.layout
        parent = layout.parent
        kids = layout.children
        self._is_leaf = np.array([not c for c in kids], dtype=bool)
        # decoder: (kind, node, parent, emission group, leaf); leaves fold their message at ENTER
        self._steps = [(kind, v, int(parent[v]), int(self.emit_index[v]), bool(self._is_leaf[v]))
                       for kind, v in layout.events if kind == ENTER or not self._is_leaf[v]]
        rank = np.zeros(self.num_vars, dtype=np.int64)
        for c in kids:
            rank[c] = np.arange(len(c))
        # encoder: per depth >= 1, the nodes, their parents, and the groups of equal sibling rank
        self._levels = []
        for h, nodes in enumerate(layout.levels):
            if h == 0:
                continue
            groups = [(np.flatnonzero(rank[nodes] == j), parent[nodes[rank[nodes] == j]])
                      for j in range(int(rank[nodes].max()) + 1)]
            self._levels.append((nodes, parent[nodes], groups))

    # -- the step-by-step walk (decoder) -------------------------------------------------------
    def _walk(self, n: int, obs_t: np.ndarray | None, code) -> None:
        """Visit the variables in coding order for ``n`` rows; ``code(v, g, rows, o)`` gets the
        observed rows of ``v`` (``None``: all rows), the emission group ``g`` of ``v`` and the
        outside vectors ``o [k, rows]`` there, and returns the values of ``v`` in those rows."""
        k = self.hidden
        outside: dict[int, np.ndarray] = {}
        inside: dict[int, np.ndarray] = {}
        for kind, v, u, g, leaf in self._steps:
            if kind == ENTER:
                if u < 0:
                    o = np.repeat(self.prior[:, None], n, axis=1)
                else:
                    o = _requantize(self.trans_t[v] @ _requantize(outside[u] * inside[u]))
                if not leaf:
                    outside[v] = o
                rows = None
                if obs_t is not None and not obs_t[v].all():
                    rows = np.flatnonzero(obs_t[v])
                if rows is None:
                    values = code(v, g, None, o)
                    if leaf and u >= 0:
                        msg = self.leaf_message[v][0][:, values]
                    else:
                        lam = self.emit_q[g][:, values]
                else:
                    if leaf and u >= 0:
                        msg = np.repeat(self.leaf_message[v][1][:, None], n, axis=1)
                    else:
                        lam = np.full((k, n), self.ones)
                    if rows.size:
                        values = code(v, g, rows, o[:, rows])
                        if leaf and u >= 0:
                            msg[:, rows] = self.leaf_message[v][0][:, values]
                        else:
                            lam[:, rows] = self.emit_q[g][:, values]
                if leaf:
                    if u >= 0:
                        inside[u] = _requantize(inside[u] * msg)
                else:
                    inside[v] = lam
            else:  # leaving a finished inner node: fold its message into the parent
                message = _requantize(self.trans[v] @ inside.pop(v))
                inside[u] = _requantize(inside[u] * message)
                del outside[v]

    def walk(self, n: int, mask: np.ndarray | None, symbols: SymbolFn) -> None:
        """The decoder's step-by-step walk over ``n`` rows.

        For each variable ``v`` observed in some rows, calls ``symbols(v, rows, pmf)`` with those
        rows and their conditionals ``pmf [len(rows), K]`` (unnormalized, positive integers held
        in float64); it must return the int64 values of ``v`` there.
        """
        obs_t = self._mask_t(n, mask)
        everything = np.arange(n)
        self._walk(n, obs_t, lambda v, g, rows, o: symbols(v, everything if rows is None else rows, o.T @ self.emit[g]))

    def _offset_pmf(self, o_t: np.ndarray, g: int, group: np.ndarray) -> np.ndarray:
        """Unnormalized offset conditionals ``[m, B]`` of rows ``o_t [m, k]`` within their groups
        ``group [m]`` (emission group ``g``). Few rows: each row's group block is gathered and
        multiplied in one batched product; many rows: rows sorted by group, one product per group
        (faster beyond a few hundred rows). Exact either way."""
        if group.size <= 512:
            return np.matmul(self.emit_block_t[g][group], o_t[:, :, None])[..., 0]
        blocks = self.emit_block[g]  # [groups, k, B]
        order = np.argsort(group, kind="stable")
        counts = np.bincount(group, minlength=blocks.shape[0])
        ends = np.cumsum(counts).tolist()
        ranked = o_t[order]
        out = np.empty((group.size, self.width))
        for j in np.flatnonzero(counts).tolist():
            lo, hi = ends[j] - int(counts[j]), ends[j]
            out[order[lo:hi]] = ranked[lo:hi] @ blocks[j]
        return out

    def _mask_t(self, n: int, mask: np.ndarray | None) -> np.ndarray | None:
        if mask is None:
            return None
        obs = np.asarray(mask, dtype=bool)
        if obs.shape != (n, self.num_vars):
            raise ValueError(f"mask must be [{n}, {self.num_vars}]")
        return None if obs.all() else np.ascontiguousarray(obs.T)

    # -- the level-by-level evaluation (encoder) ---------------------------------------------
    def outside_states(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """``O_v`` of every node for values ``x [n, D]`` (``mask``: observed entries): float64
        integers ``[D, k, n]``, bit-identical to the vectors the step-by-step walk computes."""
        x, mask = self._check_values(x, mask)
        return self._outside_states(x, mask).copy()

    def _outside_states(self, x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """:meth:`outside_states` for checked values, in this thread's scratch memory (valid until
        the next call in the same thread)."""
        n, d, k = x.shape[0], self.num_vars, self.hidden
        inside = _scratch("inside", (d, k, n))
        x_t = np.ascontiguousarray(x.T)
        for v, g in enumerate(self.emit_index.tolist()):
            np.take(self.emit_q[g], x_t[v], axis=1, out=inside[v])
        if mask is not None:
            hidden = ~np.asarray(mask, dtype=bool).T  # [D, n]
            inside.transpose(0, 2, 1)[hidden] = self.ones
        before = _scratch("before", (d, k, n))  # before[c]: the parent's L when the walk enters c
        for nodes, _, groups in reversed(self._levels):
            messages = _requantize(np.matmul(self.trans[nodes], inside[nodes]))
            for sel, par in groups:
                before[nodes[sel]] = inside[par]
                inside[par] = _requantize(inside[par] * messages[sel])
        out = inside  # the inside vectors are no longer needed
        out[self.layout.root] = self.prior[:, None]
        for nodes, par, _ in self._levels:
            out[nodes] = _requantize(np.matmul(self.trans_t[nodes], _requantize(out[par] * before[nodes])))
        return out

    def _var_blocks(self, x: np.ndarray, mask: np.ndarray | None, per_entry: int, reverse: bool = False):
        """Blocks of consecutive variables in coding order (about :data:`BLOCK_ENTRIES` /
        ``per_entry`` (variable, row) entries each): yields ``(block [b], o_t [b, n, k], totals
        [b, n], values [b, n], observed [b, n] or None)`` with the exact conditional row sums."""
        n = x.shape[0]
        if n == 0:
            return
        states = self._outside_states(x, mask)
        order = self.layout.order
        step = max(1, BLOCK_ENTRIES // (n * per_entry))
        starts = list(range(0, order.size, step))
        obs_t = None if mask is None else mask.T
        for s in reversed(starts) if reverse else starts:
            block = order[s : s + step]
            o_t = states[block].transpose(0, 2, 1)
            totals = np.matmul(o_t, self.emit_sum[self.emit_index[block]][:, :, None])[..., 0]
            yield block, o_t, totals, x.T[block], None if obs_t is None else obs_t[block]

    def _emissions(self, table: np.ndarray, block: np.ndarray) -> np.ndarray:
        """``table [G, k, m]`` for the variables of ``block``: ``[k, m]`` if tied, else ``[b, k, m]``."""
        return table[0] if table.shape[0] == 1 else table[self.emit_index[block]]

    def _coded_blocks(self, x: np.ndarray, mask: np.ndarray | None, reverse: bool = False):
        """What the encoder codes, in blocks: yields ``(tables [m, W], symbols [m], rows [m])``,
        reduced tables and symbols in decoding order (variable by variable; with split alphabets
        the groups of a variable's rows, then their offsets; rows ascending)."""
        n, width = x.shape[0], self.width
        per_entry = 2 * width if self.split else width
        rows_all = np.arange(n)
        for block, o_t, totals, values, sel in self._var_blocks(x, mask, per_entry, reverse):
            b = block.size
            if not self.split:
                pmf = np.matmul(o_t, self._emissions(self.emit, block))  # [b, n, K]
                symbols = values
            else:
                group, offset = np.divmod(values, width)
                first = np.matmul(o_t, self._emissions(self.emit_group, block))  # [b, n, B]
                if self.emit.shape[0] == 1:
                    second = self._offset_pmf(o_t.reshape(b * n, -1), 0, group.reshape(-1)).reshape(b, n, width)
                else:
                    g = self.emit_index[block]
                    second = np.stack([self._offset_pmf(o_t[i], int(g[i]), group[i]) for i in range(b)])
                group_sums = np.take_along_axis(first, group[..., None], axis=2)[..., 0]
                pmf = np.stack([first, second], axis=1).reshape(2 * b, n, width)
                totals = np.stack([totals, group_sums], axis=1).reshape(2 * b, n)
                symbols = np.stack([group, offset], axis=1).reshape(2 * b, n)
                if sel is not None:
                    sel = np.repeat(sel, 2, axis=0)
            rows = np.broadcast_to(rows_all, symbols.shape)
            if sel is None:
                pmf, totals = pmf.reshape(-1, width), totals.reshape(-1)
                symbols, rows = symbols.reshape(-1), rows.reshape(-1)
            else:
                pmf, totals, symbols, rows = pmf[sel], totals[sel], symbols[sel], rows[sel]
            yield reduced_tables(pmf, totals, overwrite=True), symbols.astype(np.int32), rows

    # -- coding -------------------------------------------------------------------------------------
    def _check_values(self, x: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.num_vars:
            raise ValueError(f"expected symbols [N, {self.num_vars}], got shape {x.shape}")
        if x.dtype.kind not in "iu":
            raise TypeError(f"symbols must be integers, got {x.dtype}")
        x = x.astype(np.int64)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != x.shape:
                raise ValueError("mask must have the shape of the symbols")
            if mask.all():
                mask = None
            else:
                x = np.where(mask, x, 0)  # unobserved entries may hold anything
        if x.size and (x.min() < 0 or x.max() >= self.num_categories):
            raise ValueError(f"symbol outside the alphabet [0, {self.num_categories})")
        return x, mask

    def _encode_reverse(self, coder, x: np.ndarray, mask: np.ndarray | None) -> None:
        for tables, symbols, _ in self._coded_blocks(x, mask, reverse=True):
            encode_reduced_reverse(coder, symbols, tables)

    def encode_into(self, enc: StackEncoder, x: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Append the observed entries of ``x [N, D]`` to an open stream (in decoding order).

        Values are checked now; the tables are built block by block when ``enc`` finishes."""
        x, mask = self._check_values(x, mask)
        enc.deferred(lambda coder: self._encode_reverse(coder, x, mask))

    def decode_from(self, dec: StackDecoder, n: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Inverse of :meth:`encode_into`: int64 ``[n, D]`` (unobserved entries are 0)."""
        return self.decode_streams([dec], n, mask, max(n, 1))

    def encode(self, x: np.ndarray, mask: np.ndarray | None = None) -> bytes:
        """One self-contained stream for the observed entries of ``x [N, D]``."""
        enc = StackEncoder()
        self.encode_into(enc, x, mask)
        return enc.finish()

    def decode(self, data: bytes, n: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Decode a stream written by :meth:`encode` (``n`` rows, same ``mask``); checks it is consumed."""
        return self.decode_chunks([data], n, mask, max(n, 1))

    def encode_chunks(self, x: np.ndarray, mask: np.ndarray | None, rows_per_stream: int) -> list[bytes]:
        """One stream per ``rows_per_stream`` consecutive rows of ``x [N, D]`` (each what
        :meth:`encode` gives for those rows)."""
        if rows_per_stream < 1:
            raise ValueError("rows_per_stream must be >= 1")
        x, mask = self._check_values(x, mask)
        out = []
        for s in range(0, max(x.shape[0], 1), rows_per_stream):
            enc = StackEncoder()
            part = None if mask is None else mask[s : s + rows_per_stream]
            enc.deferred(lambda coder, a=x[s : s + rows_per_stream], m=part: self._encode_reverse(coder, a, m))
            out.append(enc.finish())
        return out

    def decode_chunks(self, payloads: Sequence[bytes], n: int, mask: np.ndarray | None,
                      rows_per_stream: int) -> np.ndarray:
        """Inverse of :meth:`encode_chunks`: one walk over all ``n`` rows decodes every stream
        (fewer Python steps per row than stream by stream); checks each stream is consumed."""
        decoders = [StackDecoder(bytes(p)) for p in payloads]
        out = self.decode_streams(decoders, n, mask, rows_per_stream)
        for dec in decoders:
            dec.finish()
        return out

    def decode_streams(self, decoders: Sequence[StackDecoder], n: int, mask: np.ndarray | None,
                       rows_per_stream: int) -> np.ndarray:
        """Decode rows ``[i * rows_per_stream, (i + 1) * rows_per_stream)`` from ``decoders[i]``
        in one walk: int64 ``[n, D]`` (unobserved entries are 0)."""
        if rows_per_stream < 1:
            raise ValueError("rows_per_stream must be >= 1")
        if len(decoders) != max(1, -(-n // rows_per_stream)):
            raise ValueError(f"{n} rows in streams of {rows_per_stream} need {-(-n // rows_per_stream)} "
                             f"decoders, got {len(decoders)}")
        out = np.zeros((self.num_vars, n), dtype=np.int64)
        if n == 0:
            return out.T
        bounds = np.arange(0, n + rows_per_stream, rows_per_stream).clip(max=n)
        width, kk = self.width, self.num_categories

        def decode(rows: np.ndarray | None, tables: np.ndarray) -> np.ndarray:
            if len(decoders) == 1:
                return decoders[0].categorical_reduced(tables)
            cuts = bounds if rows is None else np.searchsorted(rows, bounds)
            return np.concatenate([dec.categorical_reduced(tables[a:b]) for dec, a, b
                                   in zip(decoders, cuts[:-1].tolist(), cuts[1:].tolist()) if b > a])

        def code(v: int, g: int, rows: np.ndarray | None, o: np.ndarray) -> np.ndarray:
            o_t = o.T
            totals = o_t @ self.emit_sum[g]
            if not self.split:
                values = decode(rows, reduced_tables(o_t @ self.emit[g], totals, overwrite=True))
            else:
                first = o_t @ self.emit_group[g]
                group = decode(rows, reduced_tables(first, totals))
                second = self._offset_pmf(o_t, g, group)
                offset = decode(rows, reduced_tables(second, first[np.arange(group.size), group], overwrite=True))
                values = group * width + offset
                if kk % width and values.max() >= kk:
                    raise BitstreamError("corrupt entropy-coded payload: symbol outside the alphabet")
            if rows is None:
                out[v] = values
            else:
                out[v, rows] = values
            return values

        self._walk(n, self._mask_t(n, mask), code)
        return out.T

    # -- inspection -------------------------------------------------------------------------------
    def conditionals(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """The normalized float64 conditionals of the circuit that the coder quantizes:
        ``[N, D, K]`` (NaN where unobserved)."""
        x, mask = self._check_values(x, mask)
        n, kk = x.shape[0], self.num_categories
        out = np.full((n, self.num_vars, kk), np.nan)
        for block, o_t, totals, _, sel in self._var_blocks(x, mask, kk):
            pmf = np.matmul(o_t, self._emissions(self.emit, block)) / totals[..., None]  # [b, n, K]
            if sel is None:
                out[:, block] = pmf.transpose(1, 0, 2)
            else:
                var, rows = np.nonzero(sel)
                out[rows, block[var]] = pmf[var, rows]
        return out

    def code_bits(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Exact information content (bits) of each row under the integer tables: float64 ``[N]``.

        The coded size of a stream is this sum plus the ANS flush (at most 64 bits).
        """
        x, mask = self._check_values(x, mask)
        bits = np.zeros(x.shape[0])
        for tables, symbols, rows in self._coded_blocks(x, mask):
            np.add.at(bits, rows, information_bits(freqs_from_reduced(tables[np.arange(symbols.size), symbols])))
        return bits
