"""Reduced frequency tables (``freq - 1``): a per-row reference, invariants, and exact coding."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuralcodec.entropy.coder import StackDecoder, StackEncoder, encode_categorical
from neuralcodec.entropy.tables import TOTAL, freqs_from_reduced, reduced_tables


def _reference_row(p: list[float], total: float | None = None) -> list[float]:
    """One row with Python floats (IEEE doubles), element by element, as documented."""
    k = len(p)
    budget = float(TOTAL - k)
    if total is None:
        total = float(np.sum(np.array(p)))  # the same summation as numpy's row sum
    scale = budget / total
    shares = [float(math.floor(v * scale)) for v in p]
    top = max(range(k), key=lambda j: (shares[j], -j))  # first largest share
    shares[top] += budget - sum(shares)  # integers below 2**24: exact
    return shares


def _pmfs(rng: np.random.Generator) -> list[np.ndarray]:
    shapes = [(2, 1.0, 7), (17, 0.3, 40), (256, 0.05, 30), (16, 5.0, 9)]
    out = [rng.dirichlet(np.full(k, a), size=n) for k, a, n in shapes]
    wide = rng.random((20, 64)) * np.exp2(rng.integers(-60, 60, (20, 1)))  # any scale
    wide[:, ::7] = 0.0  # impossible symbols get frequency 1
    out.append(wide)
    ints = np.floor(rng.random((25, 40)) * 2.0**45) + 1  # integer-valued, exact sums
    out.append(ints)
    return out


def test_matches_per_row_reference():
    rng = np.random.default_rng(0)
    for pmf in _pmfs(rng):
        tables = reduced_tables(pmf)
        for i, row in enumerate(pmf):
            assert tables[i].tolist() == _reference_row(row.tolist(), float(pmf.sum(axis=1)[i]))
        freqs = freqs_from_reduced(tables)
        assert freqs.dtype == np.int64 and freqs.min() >= 1
        assert np.all(freqs.sum(axis=1) == TOTAL)
        assert np.all(tables == np.floor(tables))


def test_exact_totals_and_overwrite():
    rng = np.random.default_rng(1)
    ints = np.floor(rng.random((30, 256)) * 2.0**44) + 1
    totals = ints @ np.ones(256)  # exact integer sums
    expected = reduced_tables(ints)
    assert np.array_equal(reduced_tables(ints, totals), expected)
    work = ints.copy()
    out = reduced_tables(work, totals, overwrite=True)
    assert out is work and np.array_equal(out, expected)
    narrow = ints.astype(np.float32)
    assert np.array_equal(reduced_tables(narrow), reduced_tables(narrow.astype(np.float64)))
    # the leftover goes to the first largest share
    flat = reduced_tables(np.ones((1, 5)))
    assert flat[0, 0] == flat[0, 1:].max() + (TOTAL - 5) % 5


def test_peaked_rows_keep_every_symbol_codable():
    pmf = np.full((3, 300), 1e-300)
    pmf[[0, 1, 2], [0, 150, 299]] = 1.0
    tables = reduced_tables(pmf)
    freqs = freqs_from_reduced(tables)
    assert freqs.min() == 1 and np.all(freqs.sum(axis=1) == TOTAL)


def test_reduced_coding_is_the_integer_table_coding():
    rng = np.random.default_rng(2)
    pmf = rng.dirichlet(np.full(33, 0.4), size=500)
    tables = reduced_tables(pmf)
    symbols = np.array([rng.choice(33, p=p) for p in pmf])
    enc = StackEncoder()
    enc.categorical_reduced(symbols, tables)
    data = enc.finish()
    assert data == encode_categorical(symbols, freqs_from_reduced(tables))  # exactly freq / 2**24
    dec = StackDecoder(data)
    assert np.array_equal(dec.categorical_reduced(tables), symbols)
    dec.finish()


def test_deferred_operations_run_in_stack_order():
    from neuralcodec.entropy.coder import encode_reduced_reverse

    rng = np.random.default_rng(3)
    tables = reduced_tables(rng.dirichlet(np.ones(5), size=12))
    first, second = rng.integers(0, 5, 12), rng.integers(0, 5, 12)
    enc = StackEncoder()
    enc.deferred(lambda coder: encode_reduced_reverse(coder, first.astype(np.int32), tables))
    enc.categorical_reduced(second, tables)
    dec = StackDecoder(enc.finish())
    assert np.array_equal(dec.categorical_reduced(tables), first)
    assert np.array_equal(dec.categorical_reduced(tables), second)
    dec.finish()


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        reduced_tables(np.ones(4))
    with pytest.raises(ValueError):
        reduced_tables(np.ones((2, 1)))
    tables = reduced_tables(np.ones((2, 4)))
    enc = StackEncoder()
    with pytest.raises(ValueError):
        enc.categorical_reduced(np.array([0, 4]), tables)
    with pytest.raises(ValueError):
        enc.categorical_reduced(np.array([0, 1, 2]), tables)
