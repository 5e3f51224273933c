"""The constriction layer: exact round trips, exact sizes, escapes, and corrupt input."""

from __future__ import annotations

import numpy as np
import pytest
from entropy_helpers import FLUSH_BYTES

from neuralcodec.entropy.coder import (
    MAX_SYMBOL,
    StackDecoder,
    StackEncoder,
    decode_categorical,
    decode_indexed,
    encode_categorical,
    encode_indexed,
)
from neuralcodec.entropy.tables import TableBank, freqs_from_pmf, information_bits
from neuralcodec.errors import BitstreamError


def _random_table(rng, k, alpha=0.5):
    return freqs_from_pmf(rng.dirichlet(np.full(k, alpha)))


def test_shared_table_round_trip_and_exact_size():
    rng = np.random.default_rng(0)
    freqs = _random_table(rng, 300)
    sym = rng.choice(300, size=200_000, p=freqs / freqs.sum())
    data = encode_categorical(sym, freqs)
    assert np.array_equal(decode_categorical(data, freqs, sym.size), sym)
    ideal = information_bits(freqs[sym]).sum() / 8
    assert ideal <= len(data) <= ideal + FLUSH_BYTES + 4
    assert len(data) <= ideal * 1.01 + FLUSH_BYTES


def test_per_symbol_tables_round_trip():
    rng = np.random.default_rng(1)
    n, k = 100_000, 6
    freqs = freqs_from_pmf(rng.dirichlet(np.ones(k), size=n))
    sym = np.array([rng.choice(k, p=f / f.sum()) for f in freqs[:2000]] * 50)
    data = encode_categorical(sym, freqs)
    assert np.array_equal(decode_categorical(data, freqs), sym)
    ideal = information_bits(freqs[np.arange(n), sym]).sum() / 8
    assert ideal <= len(data) <= ideal + FLUSH_BYTES + 4


def _bank(rng, n_tables=5):
    rows, v_min = [], []
    for _ in range(n_tables):
        k = int(rng.integers(1, 40))
        rows.append(freqs_from_pmf(np.concatenate([[1e-7], rng.dirichlet(np.ones(k)), [1e-7]])))
        v_min.append(int(rng.integers(-20, 20)))
    return TableBank.from_rows(rows, np.array(v_min))


def test_indexed_round_trip_with_escapes_and_extremes():
    rng = np.random.default_rng(2)
    bank = _bank(rng)
    n = 120_000
    idx = rng.integers(0, bank.num_tables, size=n)
    sym = bank.v_min[idx] + rng.integers(-2, 45, size=n)
    sym[:8] = [MAX_SYMBOL, -MAX_SYMBOL, 2**40, -(2**40), 0, 1, -1, 2**31]
    data = encode_indexed(sym, idx, bank)
    out = decode_indexed(data, idx, bank)
    assert out.dtype == np.int64 and np.array_equal(out, sym)
    ideal = bank.symbol_bits(sym, idx).sum() / 8
    assert ideal <= len(data) <= ideal * 1.01 + FLUSH_BYTES


def test_symbols_beyond_int62_are_refused():
    bank = _bank(np.random.default_rng(3), 1)
    with pytest.raises(ValueError):
        encode_indexed(np.array([MAX_SYMBOL + 1]), np.array([0]), bank)
    with pytest.raises(ValueError):
        encode_indexed(np.array([0]), np.array([1]), bank)  # no table 1


def test_operations_compose_in_decoding_order():
    rng = np.random.default_rng(4)
    bank = _bank(rng)
    shared = _random_table(rng, 10)
    rows = freqs_from_pmf(rng.dirichlet(np.ones(4), size=50))
    a = rng.integers(0, 10, size=1000)
    b_idx = rng.integers(0, bank.num_tables, size=500)
    b = bank.v_min[b_idx] + rng.integers(-3, 50, size=500)
    c = rng.integers(0, 4, size=50)
    enc = StackEncoder()
    enc.categorical(a, shared)
    enc.indexed(b, b_idx, bank)
    enc.categorical(c, rows)
    data = enc.finish()
    dec = StackDecoder(data)
    assert np.array_equal(dec.categorical(shared, a.size), a)
    assert np.array_equal(dec.indexed(b_idx, bank), b)
    assert np.array_equal(dec.categorical(rows), c)
    dec.finish()


def test_out_of_alphabet_symbol_is_refused():
    freqs = _random_table(np.random.default_rng(5), 4)
    enc = StackEncoder()
    for bad in ([0, 4], [-1, 0], [2**32 + 1]):  # the last would wrap to 1 as int32
        with pytest.raises(ValueError):
            enc.categorical(np.array(bad, dtype=np.int64), freqs)
    with pytest.raises(ValueError):
        enc.categorical(np.array([3, 0, 200], dtype=np.uint8), freqs)
    with pytest.raises(ValueError):
        enc.categorical(np.array([0, -2], dtype=np.int32), freqs_from_pmf(np.full((2, 4), 0.25)))
    enc.categorical(np.array([3, 0], dtype=np.uint8), freqs)
    assert np.array_equal(decode_categorical(enc.finish(), freqs, 2), [3, 0])


def test_corrupt_payloads_raise_bitstream_error():
    rng = np.random.default_rng(6)
    freqs = _random_table(rng, 50)
    sym = rng.choice(50, size=5000, p=freqs / freqs.sum())
    data = encode_categorical(sym, freqs)
    with pytest.raises(BitstreamError):
        decode_categorical(data[:-1], freqs, sym.size)  # not whole words
    with pytest.raises(BitstreamError):
        decode_categorical(data + b"\x07\x00\x00\x00", freqs, sym.size)  # leftover data
    with pytest.raises(BitstreamError):
        decode_categorical(data, freqs, sym.size - 10)  # decoded too little
    with pytest.raises(BitstreamError):
        StackDecoder(data[:-4] + b"\x00\x00\x00\x00")  # ANS data never ends in a zero word


def test_empty_streams():
    freqs = _random_table(np.random.default_rng(7), 3)
    data = encode_categorical(np.zeros(0, dtype=np.int64), freqs)
    assert data == b""
    assert decode_categorical(data, freqs, 0).size == 0
