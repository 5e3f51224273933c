"""Integer frequency tables: the only form in which probabilities reach the coder.

Every table is a row of positive integers that sums to exactly ``2**PRECISION``. The coder
(:mod:`neuralcodec.entropy.coder`) hands such rows to constriction in a form it reproduces bit for
bit, so the probability of a symbol is exactly ``freq / 2**PRECISION`` on every machine.

:class:`TableBank` stores many tables of different lengths for symbols in contiguous integer
ranges, each with two *escape* entries for values below / above the range; escaped values are
coded exactly with an exp-Golomb code (see :mod:`neuralcodec.entropy.coder`), so every int64
symbol can be coded whatever the table's support.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field

import numpy as np

#: Bits of probability resolution (constriction's default ANS coder: 32-bit words, 24-bit precision).
PRECISION = 24
#: ``2**PRECISION``: every frequency table sums to this.
TOTAL = 1 << PRECISION
#: Version of the table construction. Bump whenever the integers produced for the same model
#: change, so that streams made with other tables are refused instead of mis-decoded.
TABLE_VERSION = 1
#: Integer weights fed to :func:`freqs_from_weights` stay below ``2**WEIGHT_BITS`` so that
#: ``weight * (TOTAL - K)`` fits in int64.
WEIGHT_BITS = 38
#: Cost in bits of the exp-Golomb prefix of an escaped value (its bit length, uniform over 64).
ESCAPE_PREFIX_BITS = 6


def freqs_from_weights(weights: np.ndarray) -> np.ndarray:
    """Integer-exact conversion of non-negative int64 weights ``[..., K]`` to frequency tables.

    ``freq = 1 + floor(w * (TOTAL - K) / sum(w))``; the few units left over by the floors (fewer
    than ``K``) go to the first largest weight of each row. Only integer operations, so the
    result is identical on every machine. Returns int64 ``[..., K]`` with rows summing to
    :data:`TOTAL`.
    """
    w = np.asarray(weights)
    if w.dtype.kind not in "iu":
        raise TypeError("weights must be integers")
    w = w.astype(np.int64, copy=False)
    k = w.shape[-1]
    if k < 2 or k > TOTAL // 4:
        raise ValueError(f"alphabet size {k} outside [2, {TOTAL // 4}]")
    if w.size and (w.min() < 0 or w.max() >= (1 << WEIGHT_BITS)):
        raise ValueError(f"weights must lie in [0, 2**{WEIGHT_BITS})")
    if np.any(w.sum(axis=-1) <= 0):
        raise ValueError("every table needs a positive total weight")
    return _freqs_from_valid_weights(w)


def _freqs_from_valid_weights(w: np.ndarray) -> np.ndarray:
    """:func:`freqs_from_weights` without input checks (for callers that guarantee the bounds)."""
    k = w.shape[-1]
    rows = w.reshape(-1, k)
    total = rows.sum(axis=1, keepdims=True)
    freqs = rows * (TOTAL - k)
    freqs //= total
    freqs += 1
    deficit = TOTAL - freqs.sum(axis=1)
    freqs[np.arange(rows.shape[0]), rows.argmax(axis=1)] += deficit
    return freqs.reshape(w.shape)


def freqs_from_pmf(pmf: np.ndarray) -> np.ndarray:
    """Frequency tables ``[..., K]`` from non-negative float probabilities ``[..., K]``.

    The floats are turned into integer weights relative to each row's maximum (one rounding,
    deterministic for identical inputs), then :func:`freqs_from_weights` takes over.
    """
    p = np.asarray(pmf, dtype=np.float64)
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probabilities must be finite and non-negative")
    peak = p.max(axis=-1, keepdims=True)
    if np.any(peak <= 0):
        raise ValueError("every table needs a positive probability")
    weights = np.floor(p / peak * float(1 << (WEIGHT_BITS - 1))).astype(np.int64)
    return freqs_from_weights(weights)


def reduced_tables(pmf: np.ndarray, totals: np.ndarray | None = None, *, overwrite: bool = False) -> np.ndarray:
    """Frequency tables of ``pmf [N, K]`` (finite, non-negative float64 rows with positive sums)
    in *reduced* form ``freq - 1``: float64 integers ``>= 0`` whose rows sum to ``TOTAL - K``.

    ``freq - 1 = floor(pmf * ((TOTAL - K) / total))`` per row (the *shares*), and the units left
    over by the floors go to the first largest share of the row. ``total`` is the row sum;
    callers that know it exactly (integer-valued rows) may pass ``totals [N]`` to skip the
    summation. ``overwrite=True`` builds the tables in ``pmf``'s memory (a float64 array the
    caller gives up). The leftover is never negative: with the row sum rounded at most
    ``K * 2**-53`` relative below its exact value, every computed share exceeds its exact value
    by at most a relative ``(K + 2) * 2**-53``, so the floors (integers) sum to at most ``TOTAL - K``.

    A cheaper alternative to :func:`freqs_from_pmf` (four passes over the table and no int64
    division) with a different rounding, so it is a separate function and coders that use it
    carry their own version. Each step is one IEEE-754 basic operation (correctly rounded) or an
    exact sum of integers, so identical inputs give identical tables on every machine. The
    reduced form is what the coder hands to constriction
    (:meth:`~neuralcodec.entropy.coder.StackEncoder.categorical_reduced`).
    """
    p = np.asarray(pmf, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"pmf must be [N, K], got shape {p.shape}")
    k = p.shape[1]
    if k < 2 or k > TOTAL // 4:
        raise ValueError(f"alphabet size {k} outside [2, {TOTAL // 4}]")
    budget = float(TOTAL - k)
    s = p.sum(axis=1) if totals is None else np.asarray(totals, dtype=np.float64)
    out = p if overwrite or p is not pmf else p.copy()
    out *= (budget / s)[:, None]
    np.floor(out, out=out)
    leftover = budget - out @ _ones(k)  # integers summing below 2**24: exact in any order
    out[np.arange(p.shape[0]), out.argmax(axis=1)] += leftover
    return out


@functools.lru_cache(maxsize=16)
def _ones(k: int) -> np.ndarray:
    ones = np.ones(k)
    ones.setflags(write=False)
    return ones


def freqs_from_reduced(reduced: np.ndarray) -> np.ndarray:
    """int64 frequency tables from :func:`reduced_tables` output (``freq = reduced + 1``)."""
    return np.asarray(reduced).astype(np.int64) + 1


def information_bits(freqs: np.ndarray) -> np.ndarray:
    """``-log2(freq / TOTAL)``: the exact ideal code length of a symbol coded with ``freq``."""
    return PRECISION - np.log2(np.asarray(freqs, dtype=np.float64))


def bit_length(values: np.ndarray) -> np.ndarray:
    """Integer ``bit_length`` of non-negative int64 values (exact, no float logarithm)."""
    v = np.asarray(values, dtype=np.int64)
    n = np.zeros(v.shape, dtype=np.int64)
    for shift in (32, 16, 8, 4, 2, 1):
        big = (v >> shift) > 0
        n += np.where(big, shift, 0)
        v = np.where(big, v >> shift, v)
    return n + (v > 0)


@dataclass(frozen=True, eq=False)
class TableBank:
    """``N`` frequency tables over contiguous symbol ranges, each with low/high escape entries.

    Table ``i`` occupies ``freqs[starts[i]:starts[i + 1]]`` and is laid out as
    ``[escape_low, v_min[i], v_min[i] + 1, ..., v_max[i], escape_high]``. Immutable: its
    constriction models are built once and cached.
    """

    freqs: np.ndarray  # int64 [sum of table lengths]
    starts: np.ndarray  # int64 [N + 1]
    v_min: np.ndarray  # int64 [N]
    _models: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("freqs", "starts", "v_min"):
            arr = np.ascontiguousarray(np.asarray(getattr(self, name), dtype=np.int64))
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        lengths = np.diff(self.starts)
        if self.starts.ndim != 1 or self.starts[0] != 0 or self.starts[-1] != self.freqs.size:
            raise ValueError("starts must run from 0 to len(freqs)")
        if lengths.size != self.v_min.size or np.any(lengths < 3):
            raise ValueError("each table needs at least one regular entry and two escapes")
        if self.freqs.size and self.freqs.min() < 1:
            raise ValueError("frequencies must be >= 1")
        sums = np.add.reduceat(self.freqs, self.starts[:-1]) if lengths.size else np.zeros(0)
        if np.any(sums != TOTAL):
            raise ValueError(f"every table must sum to 2**{PRECISION}")

    @classmethod
    def from_rows(cls, rows: list[np.ndarray], v_min: np.ndarray) -> TableBank:
        """Bank from per-table frequency rows (each already summing to :data:`TOTAL`)."""
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        freqs = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
        return cls(freqs=freqs, starts=starts, v_min=np.asarray(v_min, dtype=np.int64))

    # -- shape -----------------------------------------------------------------------------
    @property
    def num_tables(self) -> int:
        return int(self.v_min.size)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    @property
    def v_max(self) -> np.ndarray:
        return self.v_min + self.lengths - 3

    def table(self, i: int) -> np.ndarray:
        return self.freqs[self.starts[i] : self.starts[i + 1]]

    # -- symbol mapping ----------------------------------------------------------------------
    def entries(self, symbols: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Map int64 symbols to table entries: ``(entry, escaped_mask, overflow)``.

        ``overflow`` (>= 0) is how far an escaped symbol lies beyond the table's range and is
        only meaningful where ``escaped_mask`` is set.
        """
        lo = self.v_min[index]
        hi = lo + self.lengths[index] - 3
        below = symbols < lo
        above = symbols > hi
        entry = np.clip(symbols - lo + 1, 0, hi - lo + 2)
        overflow = np.where(below, lo - 1 - symbols, symbols - hi - 1)
        return entry, below | above, overflow

    def symbol_bits(self, symbols: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Exact code length in bits of each symbol (escape cost included), float64 like ``symbols``."""
        symbols = np.asarray(symbols, dtype=np.int64)
        index = np.asarray(index, dtype=np.int64)
        entry, escaped, overflow = self.entries(symbols, index)
        bits = information_bits(self.freqs[self.starts[index] + entry])
        if np.any(escaped):
            extra = ESCAPE_PREFIX_BITS + bit_length(overflow[escaped] + 1) - 1
            bits[escaped] += extra
        return bits

    def likelihoods(self, symbols: np.ndarray, index: np.ndarray) -> np.ndarray:
        """``2 ** -symbol_bits``: the probability the coder actually spends on each symbol."""
        return np.exp2(-self.symbol_bits(symbols, index))

    # -- identity ----------------------------------------------------------------------------
    def fingerprint(self) -> bytes:
        """SHA-256 over the version, the precision and every integer of the bank."""
        h = hashlib.sha256(f"TableBank/v{TABLE_VERSION}/p{PRECISION}".encode())
        for arr in (self.starts, self.v_min, self.freqs):
            h.update(arr.astype("<i8").tobytes())
        return h.digest()

    def model(self, i: int):
        """Cached constriction model reproducing table ``i`` exactly (see :mod:`.coder`)."""
        m = self._models.get(i)
        if m is None:
            from neuralcodec.entropy.coder import categorical_model

            m = categorical_model(self.table(i))
            self._models[i] = m
        return m
