"""Exact conditional coding with an HCLT: one depth-first walk shared by encoder and decoder.

Variables are coded in the pre-order of the tree (:attr:`TreeLayout.order`). Every tree node
``v`` keeps two vectors over its hidden states while it is on the walk's stack:

* ``O_v(z)``: the probability of everything coded *outside* ``v``'s subtree, jointly with
  ``Z_v = z`` (computed once, when the walk enters ``v``, from the parent's vectors:
  ``O_v = (O_u * L_u) @ trans[v]``);
* ``L_v(z)``: the probability of everything coded *inside* ``v``'s subtree given ``Z_v = z``
  (the emission of ``x_v`` times the messages ``m_c = L_c @ trans[c]^T`` of finished children).

Since nothing below ``v`` is coded before ``v`` itself (pre-order), the conditional is
``p(x_v = . | coded so far) ∝ O_v @ emit[v]``: each variable costs two ``k x k`` vector-matrix
products and one ``k x K`` product, whatever ``D`` and whatever the tree depth. This is the tree
form of the paper's reuse of computation between coding steps. Unobserved variables (``mask``)
are marginalized: their input unit is 1 and nothing is coded for them.

Determinism by exact integer arithmetic: parameters are stored for coding as integers below
``2**PARAM_BITS`` and the state vectors are re-quantized to integers below ``2**STATE_BITS`` after
every step (rows are scaled by a power of two, then floored). All products and sums of the walk
are therefore integers below ``2**53``, which float64 represents exactly: the matrix products
give the same bits in any summation order, with or without FMA, for any batch size, thread
count or CPU (numpy's single-threaded ``einsum`` loop is used; a BLAS call would be as exact). Each conditional becomes an integer table through
:func:`neuralcodec.entropy.tables.freqs_from_pmf` and is coded with
:class:`~neuralcodec.entropy.coder.StackEncoder` (ANS, 24-bit precision). The quantization
perturbs the conditionals by about ``2**-20`` relative, far below what a 24-bit table resolves
for the probable symbols, and identically on both sides.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from neuralcodec.entropy.circuits.hclt import HCLT
from neuralcodec.entropy.circuits.structure import ENTER, TreeLayout
from neuralcodec.entropy.coder import StackDecoder, StackEncoder
from neuralcodec.entropy.tables import freqs_from_pmf, information_bits

#: Version of the integer walk and table construction; part of the codec's entropy model id.
CODER_VERSION = 1
#: Bits of the integer parameters and of the re-quantized state vectors; hidden sizes up to
#: ``2**(53 - PARAM_BITS - STATE_BITS)`` keep every matrix product exact in float64.
PARAM_BITS = 24
STATE_BITS = 22
MAX_HIDDEN = 1 << (53 - PARAM_BITS - STATE_BITS)

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


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a [n, k] @ b [k, m]`` for integer-valued float64 (exact whatever the summation order).

    ``np.einsum`` without ``optimize`` runs numpy's own single-threaded loop: for these small
    matrices it is faster than a multi-threaded BLAS call on a loaded machine.
    """
    return np.einsum("nk,km->nm", a, b)


def _requantize(a: np.ndarray) -> np.ndarray:
    """Scale each row of positive integers by a power of two so that its maximum lies in
    ``[2**(STATE_BITS-1), 2**STATE_BITS)``, floor, and lift zeros to 1 (no state ever becomes
    impossible, so no row can vanish): exact, order-free, integers in float64."""
    _, exponent = np.frexp(a.max(axis=1))
    return np.maximum(np.floor(np.ldexp(a, (STATE_BITS - exponent)[:, None])), 1.0)


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
        # float64 integers; trans[v][a, b] ~ 2**PARAM_BITS * p(Z_v = b | Z_parent = a)
        self.prior = _requantize(_integer_parameters(_row_normalize(f64(circuit.prior)))[None])[0]  # [k]
        self.trans = _integer_parameters(_row_normalize(f64(circuit.trans)))  # [D, k, k]
        self.emit = _integer_parameters(_row_normalize(f64(circuit.emit)))  # [G, k, K]
        self.emit_t = np.ascontiguousarray(self.emit.transpose(0, 2, 1))  # [G, K, k]
        self.emit_index = circuit.emit_index.numpy().copy()  # [D]
        self.ones = float(1 << (STATE_BITS - 1))  # the state value of a marginalized input unit

    # -- the shared walk --------------------------------------------------------------------------
    def walk(self, n: int, mask: np.ndarray | None, symbols: SymbolFn) -> None:
        """Visit the variables in coding order for ``n`` rows.

        For each variable ``v`` observed in some rows, calls ``symbols(v, rows, pmf)`` with the
        rows where it is observed and their conditionals ``pmf [len(rows), K]`` (unnormalized,
        positive integers held in float64); it must return the int64 values of ``v`` there.
        """
        k = self.hidden
        obs = np.ones((n, self.num_vars), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if obs.shape != (n, self.num_vars):
            raise ValueError(f"mask must be [{n}, {self.num_vars}]")
        parent, root = self.layout.parent, self.layout.root
        outside: dict[int, np.ndarray] = {}
        inside: dict[int, np.ndarray] = {}
        for kind, v in self.layout.events:
            if kind == ENTER:
                if v == root:
                    o = np.repeat(self.prior[None, :], n, axis=0)
                else:
                    u = int(parent[v])
                    o = _requantize(_matmul(_requantize(outside[u] * inside[u]), self.trans[v]))
                outside[v] = o
                g = int(self.emit_index[v])
                lam = np.full((n, k), self.ones)
                rows = np.flatnonzero(obs[:, v])
                if rows.size:
                    sub = o if rows.size == n else o[rows]
                    values = np.asarray(symbols(v, rows, _matmul(sub, self.emit[g])), dtype=np.int64)
                    lam[rows] = _requantize(self.emit_t[g][values])
                inside[v] = lam
            else:
                u = int(parent[v])
                message = _requantize(_matmul(inside.pop(v), self.trans[v].T))  # [n, k] over the parent's states
                inside[u] = _requantize(inside[u] * message)
                del outside[v]

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
        seen = x if mask is None else x[mask]
        if seen.size and (seen.min() < 0 or seen.max() >= self.num_categories):
            raise ValueError(f"symbol outside the alphabet [0, {self.num_categories})")
        return x, mask

    def encode_into(self, enc: StackEncoder, x: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Append the observed entries of ``x [N, D]`` to an open stream (in decoding order)."""
        x, mask = self._check_values(x, mask)

        def code(v: int, rows: np.ndarray, pmf: np.ndarray) -> np.ndarray:
            values = x[rows, v]
            enc.categorical(values, freqs_from_pmf(pmf))
            return values

        self.walk(x.shape[0], mask, code)

    def decode_from(self, dec: StackDecoder, n: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Inverse of :meth:`encode_into`: int64 ``[n, D]`` (unobserved entries are 0)."""
        out = np.zeros((n, self.num_vars), dtype=np.int64)

        def code(v: int, rows: np.ndarray, pmf: np.ndarray) -> np.ndarray:
            values = dec.categorical(freqs_from_pmf(pmf))
            out[rows, v] = values
            return values

        self.walk(n, mask, code)
        return out

    def encode(self, x: np.ndarray, mask: np.ndarray | None = None) -> bytes:
        """One self-contained stream for the observed entries of ``x [N, D]``."""
        enc = StackEncoder()
        self.encode_into(enc, x, mask)
        return enc.finish()

    def decode(self, data: bytes, n: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Decode a stream written by :meth:`encode` (``n`` rows, same ``mask``); checks it is consumed."""
        dec = StackDecoder(data)
        out = self.decode_from(dec, n, mask)
        dec.finish()
        return out

    # -- inspection -------------------------------------------------------------------------------
    def conditionals(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """The normalized float64 conditionals the coder uses: ``[N, D, K]`` (NaN where unobserved)."""
        x, mask = self._check_values(x, mask)
        out = np.full((x.shape[0], self.num_vars, self.num_categories), np.nan)

        def record(v: int, rows: np.ndarray, pmf: np.ndarray) -> np.ndarray:
            out[rows, v] = pmf / pmf.sum(axis=1, keepdims=True)
            return x[rows, v]

        self.walk(x.shape[0], mask, record)
        return out

    def code_bits(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Exact information content (bits) of each row under the integer tables: float64 ``[N]``.

        The coded size of a stream is this sum plus the ANS flush (at most 64 bits).
        """
        x, mask = self._check_values(x, mask)
        bits = np.zeros(x.shape[0])

        def measure(v: int, rows: np.ndarray, pmf: np.ndarray) -> np.ndarray:
            values = x[rows, v]
            freqs = freqs_from_pmf(pmf)
            bits[rows] += information_bits(freqs[np.arange(rows.size), values])
            return values

        self.walk(x.shape[0], mask, measure)
        return bits
