"""A typed, vectorized layer over constriction's ANS coder for integer frequency tables.

Exactness: constriction turns float probabilities ``p`` of an ``K``-symbol table into
fixed-point widths ``floor(cumsum(p) * (2**24 - K) / sum(p)) + index``. Handing it
``p = freq - 1`` for an integer table with ``sum(freq) == 2**24`` makes the scale exactly 1 and
every partial sum an integer below ``2**24`` (exact in float32 and float64), so the coder uses
*exactly* ``freq / 2**24``. All probabilities therefore come from integers; the floats in between
are only a transport format.

ANS is a stack. :class:`StackEncoder` records operations in *decoding* order and runs them in
reverse in :meth:`StackEncoder.finish`, so encoder and decoder code are written in the same order:

>>> enc = StackEncoder(); enc.indexed(symbols, index, bank); data = enc.finish()
>>> dec = StackDecoder(data); out = dec.indexed(index, bank); dec.finish()

Per-stream overhead: the final ANS state, at most 8 bytes (plus rounding to 32-bit words).
"""

from __future__ import annotations

from collections.abc import Callable

import constriction
import numpy as np

from neuralcodec.entropy.tables import ESCAPE_PREFIX_BITS, TOTAL, TableBank, bit_length
from neuralcodec.errors import BitstreamError

_model = constriction.stream.model
_AnsCoder = constriction.stream.stack.AnsCoder

#: Largest magnitude of a symbol the coder accepts (escape arithmetic stays inside int64).
MAX_SYMBOL = (1 << 62) - 1


def reduced_from_freqs(freqs: np.ndarray) -> np.ndarray:
    """The float array that makes constriction reproduce integer ``freqs`` exactly (see module doc):
    the reduced form ``freq - 1`` (as :func:`~neuralcodec.entropy.tables.reduced_tables` builds it),
    in float32, what :func:`encode_reduced_reverse` and :meth:`StackDecoder.categorical_reduced` take."""
    return (np.asarray(freqs, dtype=np.int64) - 1).astype(np.float32)


def categorical_model(freqs: np.ndarray):
    """A concrete constriction model using exactly ``freqs / 2**24`` (int ``[K]`` summing to TOTAL)."""
    f = np.asarray(freqs, dtype=np.int64)
    if f.ndim != 1 or f.size < 2 or f.min() < 1 or int(f.sum()) != TOTAL:
        raise ValueError("a frequency table must be a 1-D row of ints >= 1 summing to 2**24")
    return _model.Categorical(reduced_from_freqs(f), perfect=False)


_FAMILY = _model.Categorical(perfect=False)
_PREFIX_TABLE = np.full(1 << ESCAPE_PREFIX_BITS, TOTAL >> ESCAPE_PREFIX_BITS, dtype=np.int64)
_BIT_TABLE = np.full(2, TOTAL >> 1, dtype=np.int64)
_PREFIX_MODEL = categorical_model(_PREFIX_TABLE)
_BIT_MODEL = categorical_model(_BIT_TABLE)


def _as_symbols(symbols: np.ndarray) -> np.ndarray:
    s = np.asarray(symbols)
    if s.dtype.kind not in "iu":
        raise TypeError(f"symbols must be integers, got {s.dtype}")
    return s.reshape(-1)


class _Grouping:
    """Symbols sorted by table index: the permutation, and the runs of each table (ascending)."""

    def __init__(self, index: np.ndarray, num_tables: int) -> None:
        idx = np.asarray(index).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= num_tables):
            raise ValueError(f"table index outside [0, {num_tables})")
        small = idx.astype(np.int16 if num_tables <= 32767 else np.int64, copy=False)
        self.order = np.argsort(small, kind="stable")  # radix sort for int16 keys
        counts = np.bincount(idx, minlength=num_tables) if idx.size else np.zeros(num_tables, np.int64)
        present = np.flatnonzero(counts)
        stops = np.cumsum(counts)[present]
        self.groups = list(zip(present.tolist(), (stops - counts[present]).tolist(), stops.tolist(), strict=True))


class StackEncoder:
    """Collects coding operations in decoding order; :meth:`finish` codes them and returns bytes."""

    def __init__(self) -> None:
        self._ops: list[Callable[[object], None]] = []

    # -- operations ---------------------------------------------------------------------------
    def categorical(self, symbols: np.ndarray, freqs: np.ndarray, *, validate: bool = True) -> None:
        """Symbols in ``[0, K)`` under one shared table ``freqs [K]`` or one table per symbol ``[N, K]``.

        Symbols outside ``[0, K)`` raise ``ValueError`` (``validate=False``: the caller has checked
        them; constriction still refuses symbols outside the table when the int32 cast is exact).
        """
        s = _as_symbols(symbols)
        f = np.asarray(freqs, dtype=np.int64)
        # One pass checks 0 <= s < K: viewed as unsigned, negative values become huge.
        if validate and s.size and f.ndim in (1, 2) and int(s.view(f"u{s.itemsize}").max()) >= f.shape[-1]:
            raise ValueError("categorical symbols must lie in [0, K)")
        if f.ndim == 1:
            model = categorical_model(f)
            s32 = s.astype(np.int32, copy=False)
            self._ops.append(lambda coder: _encode(coder, s32, model))
        elif f.ndim == 2:
            if f.shape[0] != s.size:
                raise ValueError(f"{s.size} symbols but {f.shape[0]} tables")
            _check_rows(f)
            s32 = s.astype(np.int32, copy=False)
            probs = reduced_from_freqs(f)
            self._ops.append(lambda coder: _encode(coder, s32, _FAMILY, probs))
        else:
            raise ValueError("freqs must be [K] or [N, K]")

    def categorical_reduced(self, symbols: np.ndarray, reduced: np.ndarray) -> None:
        """Symbols in ``[0, K)``, one table per symbol in reduced form ``freq - 1`` ``[N, K]`` (see
        :func:`~neuralcodec.entropy.tables.reduced_tables`: integer rows summing to ``TOTAL - K``).

        The tables are not checked (their builder guarantees the form) and are read at
        :meth:`finish` (do not modify them before); symbols are checked now.
        """
        s = _as_symbols(symbols)
        r = np.asarray(reduced)
        if r.ndim != 2 or r.shape[0] != s.size:
            raise ValueError(f"{s.size} symbols need reduced tables [{s.size}, K], got shape {r.shape}")
        if s.size and int(s.view(f"u{s.itemsize}").max()) >= r.shape[1]:
            raise ValueError("categorical symbols must lie in [0, K)")
        s32 = s.astype(np.int32, copy=False)
        self._ops.append(lambda coder: _encode(coder, s32, _FAMILY, r))

    def deferred(self, operation: Callable[[object], None]) -> None:
        """Record ``operation(ans_coder)``, run at :meth:`finish` in stack order: it must push its
        symbols with :func:`encode_reduced_reverse` (or constriction's ``encode_reverse``) in
        *reverse* decoding order. Lets a caller build its tables lazily, block by block."""
        self._ops.append(operation)

    def indexed(self, symbols: np.ndarray, index: np.ndarray, bank: TableBank) -> None:
        """Int64 symbols, each under table ``index[i]`` of ``bank`` (escapes for out-of-range values)."""
        s = _as_symbols(symbols)
        idx = np.asarray(index).reshape(-1)
        if idx.size != s.size:
            raise ValueError(f"{s.size} symbols but {idx.size} table indices")
        lo_all, hi_all = (int(s.min()), int(s.max())) if s.size else (0, 0)
        if lo_all < -MAX_SYMBOL or hi_all > MAX_SYMBOL:
            raise ValueError("symbol magnitude exceeds 2**62 - 1")
        # int32 arithmetic when every value fits (the common case): half the memory traffic.
        narrow = -(2**30) < lo_all and hi_all < 2**30
        s = s.astype(np.int32 if narrow else np.int64, copy=False)
        grouping = _Grouping(idx, bank.num_tables)
        sorted_symbols = s[grouping.order]
        v_min, v_max = bank.v_min, bank.v_max
        overflows = []
        # Decoding order: grouped entries (ascending table), escape prefixes, escape bits.
        for table, start, stop in grouping.groups:
            chunk = sorted_symbols[start:stop]
            lo, hi = int(v_min[table]), int(v_max[table])
            if (lo_all < lo or hi_all > hi) and (chunk.min() < lo or chunk.max() > hi):
                wide = chunk.astype(np.int64)
                below, above = wide < lo, wide > hi
                entry = np.where(below, 0, np.where(above, hi - lo + 2, wide - (lo - 1)))
                escaped = below | above
                if escaped.any():
                    overflows.append(np.where(below, lo - 1 - wide, wide - hi - 1)[escaped])
                entry = entry.astype(np.int32)
            else:
                entry = (chunk - np.int32(lo - 1)).astype(np.int32, copy=False)
            model = bank.model(table)
            self._ops.append(lambda coder, c=entry, m=model: _encode(coder, c, m))
        if overflows:
            self._escapes(np.concatenate(overflows))

    def _escapes(self, overflow: np.ndarray) -> None:
        u = overflow.astype(np.int64) + 1
        nbits = bit_length(u) - 1
        bits = _bits_of(u, nbits)
        prefix = nbits.astype(np.int32)
        self._ops.append(lambda coder: _encode(coder, prefix, _PREFIX_MODEL))
        if bits.size:
            self._ops.append(lambda coder: _encode(coder, bits, _BIT_MODEL))

    # -- result -------------------------------------------------------------------------------
    def finish(self) -> bytes:
        """Run the recorded operations (last first) and return the compressed bytes."""
        coder = _AnsCoder()
        for op in reversed(self._ops):
            op(coder)
        self._ops = []
        return coder.get_compressed().astype("<u4").tobytes()


class StackDecoder:
    """Mirror of :class:`StackEncoder`: call the same operations in the same order."""

    def __init__(self, data: bytes) -> None:
        if len(data) % 4:
            raise BitstreamError(f"entropy-coded payload of {len(data)} bytes is not a whole number of 32-bit words")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        try:
            self._coder = _AnsCoder(words)
        except ValueError as exc:
            raise BitstreamError(f"invalid entropy-coded payload: {exc}") from None

    def categorical(self, freqs: np.ndarray, count: int | None = None, *, validate: bool = True) -> np.ndarray:
        """Decode ``count`` symbols under ``freqs [K]``, or one symbol per row of ``freqs [N, K]``.

        Returns int32 symbols in ``[0, K)`` (constriction's native output, no copy).
        ``validate=False`` skips the table checks for callers that build tables themselves.
        """
        f = np.asarray(freqs, dtype=np.int64)
        if f.ndim == 2 and not validate:
            return self._decode(_FAMILY, reduced_from_freqs(f))
        if f.ndim == 1:
            if count is None:
                raise ValueError("count is required with a shared table")
            return self._decode(categorical_model(f), int(count))
        if f.ndim == 2:
            _check_rows(f)
            return self._decode(_FAMILY, reduced_from_freqs(f))
        raise ValueError("freqs must be [K] or [N, K]")

    def categorical_reduced(self, reduced: np.ndarray) -> np.ndarray:
        """Decode one symbol per row of reduced tables ``[N, K]`` (``freq - 1``, unchecked): int32."""
        return self._decode(_FAMILY, reduced)

    def indexed(self, index: np.ndarray, bank: TableBank) -> np.ndarray:
        """Decode one int64 symbol per entry of ``index`` (flattened; same shape returned flat)."""
        idx = np.asarray(index).reshape(-1).astype(np.int64, copy=False)
        grouping = _Grouping(idx, bank.num_tables)
        values = np.empty(idx.size, dtype=np.int64)
        v_min, lengths = bank.v_min, bank.lengths
        escapes = []  # (start, stop, low mask, high mask, lo, hi) of groups with escapes
        for table, start, stop in grouping.groups:
            entry = self._decode(bank.model(table), stop - start)
            lo, top = int(v_min[table]), int(lengths[table]) - 1
            values[start:stop] = entry
            values[start:stop] += lo - 1
            if entry.min() == 0 or entry.max() == top:
                escapes.append((start, stop, entry == 0, entry == top, lo, lo + top - 2))
        if escapes:
            count = sum(int(low.sum() + high.sum()) for _, _, low, high, _, _ in escapes)
            ovf = self._escapes(count)
            pos = 0
            for start, stop, low, high, lo, hi in escapes:
                esc = low | high
                n = int(esc.sum())
                part = values[start:stop]
                part[esc] = np.where(low[esc], lo - 1 - ovf[pos : pos + n], hi + 1 + ovf[pos : pos + n])
                pos += n
        out = np.empty(idx.size, dtype=np.int64)
        out[grouping.order] = values
        return out

    def _escapes(self, count: int) -> np.ndarray:
        nbits = self._decode(_PREFIX_MODEL, count).astype(np.int64)
        if nbits.size and nbits.max() > 62:
            raise BitstreamError("corrupt escape code in entropy-coded payload")
        total = int(nbits.sum())
        bits = self._decode(_BIT_MODEL, total).astype(np.int64) if total else np.zeros(0, np.int64)
        return _value_of(bits, nbits) - 1

    def finish(self) -> None:
        """Check that the whole payload was consumed (else: corrupt data or a different model)."""
        if not self._coder.is_empty():
            raise BitstreamError("entropy-coded payload has leftover data: corrupt stream or mismatched model")

    def _decode(self, model, arg) -> np.ndarray:
        try:
            return self._coder.decode(model, arg)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise BitstreamError(f"entropy decoding failed: {exc}") from None


def _encode(coder, symbols: np.ndarray, model, *params) -> None:
    try:
        coder.encode_reverse(symbols, model, *params)
    except KeyError:
        raise ValueError("symbol outside the alphabet of its frequency table") from None


def encode_reduced_reverse(coder, symbols: np.ndarray, reduced: np.ndarray) -> None:
    """Push int32 ``symbols [N]`` with reduced tables ``[N, K]`` onto a constriction ``AnsCoder``
    so that they decode in the given order (for :meth:`StackEncoder.deferred` operations)."""
    _encode(coder, symbols, _FAMILY, reduced)


def _check_rows(freqs: np.ndarray) -> None:
    if freqs.shape[1] < 2 or (freqs.size and freqs.min() < 1) or np.any(freqs.sum(axis=1) != TOTAL):
        raise ValueError("each frequency row must hold ints >= 1 summing to 2**24")


def _bits_of(u: np.ndarray, nbits: np.ndarray) -> np.ndarray:
    """The ``nbits[i]`` low bits of each ``u[i]`` (LSB first), concatenated, as int32 0/1."""
    if u.size == 0 or nbits.max() == 0:
        return np.zeros(0, dtype=np.int32)
    width = int(nbits.max())
    pos = np.arange(width, dtype=np.int64)
    mat = (u[:, None] >> pos[None, :]) & 1
    mask = pos[None, :] < nbits[:, None]
    return mat[mask].astype(np.int32)


def _value_of(bits: np.ndarray, nbits: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_bits_of` with the implicit leading one: ``2**n + sum(bit_j << j)``."""
    out = np.left_shift(np.ones_like(nbits), nbits)
    if bits.size:
        width = int(nbits.max())
        pos = np.arange(width, dtype=np.int64)
        mask = pos[None, :] < nbits[:, None]
        mat = np.zeros(mask.shape, dtype=np.int64)
        mat[mask] = bits
        out = out + (mat << pos[None, :]).sum(axis=1)
    return out


def encode_categorical(symbols: np.ndarray, freqs: np.ndarray) -> bytes:
    """One-shot :meth:`StackEncoder.categorical`."""
    enc = StackEncoder()
    enc.categorical(symbols, freqs)
    return enc.finish()


def decode_categorical(data: bytes, freqs: np.ndarray, count: int | None = None) -> np.ndarray:
    """One-shot :meth:`StackDecoder.categorical` (checks that the payload is fully consumed)."""
    dec = StackDecoder(data)
    out = dec.categorical(freqs, count)
    dec.finish()
    return out


def encode_indexed(symbols: np.ndarray, index: np.ndarray, bank: TableBank) -> bytes:
    """One-shot :meth:`StackEncoder.indexed`."""
    enc = StackEncoder()
    enc.indexed(symbols, index, bank)
    return enc.finish()


def decode_indexed(data: bytes, index: np.ndarray, bank: TableBank) -> np.ndarray:
    """One-shot :meth:`StackDecoder.indexed` (checks that the payload is fully consumed)."""
    dec = StackDecoder(data)
    out = dec.indexed(index, bank)
    dec.finish()
    return out
