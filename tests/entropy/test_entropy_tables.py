"""Integer frequency tables: exact sums, integer-only construction, the bank's symbol mapping."""

from __future__ import annotations

import numpy as np
import pytest

from neuralcodec.entropy.tables import (
    TOTAL,
    TableBank,
    bit_length,
    freqs_from_pmf,
    freqs_from_weights,
    information_bits,
)


def _reference_freqs(weights: list[int]) -> list[int]:
    """The documented rule, with Python big integers."""
    k, total = len(weights), sum(weights)
    freqs = [1 + w * (TOTAL - k) // total for w in weights]
    top = max(range(k), key=lambda i: (weights[i], -i))
    freqs[top] += TOTAL - sum(freqs)
    return freqs


def test_freqs_from_weights_matches_big_integer_reference():
    rng = np.random.default_rng(0)
    for k in (2, 3, 17, 1024, 5000):
        w = rng.integers(0, 1 << 37, size=(4, k))
        w[0, : k // 2] = 0  # zero weights still get frequency 1
        f = freqs_from_weights(w)
        assert f.dtype == np.int64
        assert np.all(f.sum(axis=1) == TOTAL) and f.min() >= 1
        for row_w, row_f in zip(w, f, strict=True):
            assert row_f.tolist() == _reference_freqs(row_w.tolist())


def test_freqs_from_weights_rejects_bad_input():
    with pytest.raises(ValueError):
        freqs_from_weights(np.array([1]))
    with pytest.raises(ValueError):
        freqs_from_weights(np.array([0, 0]))
    with pytest.raises(ValueError):
        freqs_from_weights(np.array([-1, 5]))
    with pytest.raises(TypeError):
        freqs_from_weights(np.array([0.5, 0.5]))


def test_freqs_from_pmf_is_close_and_deterministic():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(300) * 0.3, size=3)
    f1, f2 = freqs_from_pmf(p), freqs_from_pmf(p.copy())
    assert np.array_equal(f1, f2)
    assert np.all(f1.sum(axis=1) == TOTAL)
    q = f1 / TOTAL
    kl = np.sum(p * (np.log2(p) - np.log2(q)), axis=1)
    assert np.all(kl < 1e-4)


def test_bit_length_exact():
    vals = np.array([0, 1, 2, 3, 4, 7, 8, 255, 256, 2**53 + 1, 2**62 - 1, 2**62, 2**63 - 1], dtype=np.int64)
    assert bit_length(vals).tolist() == [int(v).bit_length() for v in vals]


def test_bank_entries_and_bits():
    rows = [freqs_from_pmf(np.array([1e-6, 0.2, 0.6, 0.2, 1e-6])), freqs_from_pmf(np.array([0.1, 0.8, 0.1]))]
    bank = TableBank.from_rows(rows, np.array([-1, 5]))
    assert bank.v_max.tolist() == [1, 5]
    sym = np.array([-1, 0, 1, -2, 9, 5, 4, 6, 100])
    idx = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1])
    entry, escaped, overflow = bank.entries(sym, idx)
    assert entry.tolist() == [1, 2, 3, 0, 4, 1, 0, 2, 2]
    assert escaped.tolist() == [False, False, False, True, True, False, True, True, True]
    assert overflow[escaped].tolist() == [0, 7, 0, 0, 94]
    bits = bank.symbol_bits(sym, idx)
    # -2 escapes low with overflow 0: table cost + 6 prefix bits + 0 mantissa bits.
    assert bits[3] == pytest.approx(information_bits(rows[0][0]) + 6)
    # 100 escapes high with overflow 94: u = 95 has 7 bits -> 6 mantissa bits.
    assert bits[8] == pytest.approx(information_bits(rows[1][2]) + 6 + 6)


def test_bank_validation_and_fingerprint():
    good = [freqs_from_pmf(np.array([0.1, 0.8, 0.1]))]
    bank = TableBank.from_rows(good, np.array([0]))
    other = TableBank.from_rows([freqs_from_pmf(np.array([0.2, 0.6, 0.2]))], np.array([0]))
    shifted = TableBank.from_rows(good, np.array([1]))
    assert bank.fingerprint() == TableBank.from_rows(good, np.array([0])).fingerprint()
    assert len({bank.fingerprint(), other.fingerprint(), shifted.fingerprint()}) == 3
    bad = good[0].copy()
    bad[0] += 1
    with pytest.raises(ValueError):
        TableBank.from_rows([bad], np.array([0]))
    with pytest.raises(ValueError):
        TableBank.from_rows([np.array([TOTAL // 2, TOTAL // 2])], np.array([0]))  # no room for escapes
