"""The coding walk: brute-force conditionals, exact round trips, rate vs NLL, determinism."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from circuit_helpers import all_configs, brute_joint, random_circuit
from neuralcodec.entropy.circuits import CircuitCoder
from neuralcodec.entropy.coder import StackDecoder, StackEncoder
from neuralcodec.errors import BitstreamError

REPO = Path(__file__).resolve().parents[3]


def _brute_conditionals(joint: np.ndarray, x: np.ndarray, order: np.ndarray, observed: np.ndarray) -> dict:
    """p(x_v = . | values of the observed variables coded before v), by summing the joint."""
    d = joint.ndim
    out = {}
    known: list[int] = []
    for v in order.tolist():
        if not observed[v]:
            continue
        table = joint
        for a in range(d - 1, -1, -1):  # keep v; fix known; sum the rest
            if a == v:
                continue
            table = np.take(table, x[a], axis=a) if a in known else table.sum(axis=a)
        out[v] = table / table.sum()
        known.append(v)
    return out


@pytest.mark.parametrize("tie", [False, True])
def test_conditionals_match_brute_force_conditioning(tie):
    c = random_circuit(d=5, kk=3, k=2, seed=21, tie=tie)
    joint = brute_joint(c)
    coder = CircuitCoder(c)
    rng = np.random.default_rng(0)
    x = all_configs(5, 3).numpy()[rng.choice(243, 12, replace=False)]
    masks = [np.ones(5, bool), rng.random(5) < 0.6, np.array([False, True, False, True, True])]
    for observed in masks:
        mask = np.broadcast_to(observed, x.shape).copy()
        cond = coder.conditionals(x, mask)
        for i in range(x.shape[0]):
            ref = _brute_conditionals(joint, x[i], coder.layout.order, observed)
            for v in range(5):
                if observed[v]:
                    assert np.allclose(cond[i, v], ref[v], rtol=1e-5, atol=1e-6)  # ~2**-21 of the row
                else:
                    assert np.all(np.isnan(cond[i, v]))


def test_round_trip_with_masks_is_exact():
    c = random_circuit(d=12, kk=7, k=4, seed=4)
    coder = CircuitCoder(c)
    rng = np.random.default_rng(1)
    x = c.sample(300, generator=torch.Generator().manual_seed(2)).numpy()
    mask = rng.random(x.shape) < 0.8
    mask[:5] = False  # rows with nothing observed
    data = coder.encode(x, mask)
    y = coder.decode(data, x.shape[0], mask)
    assert np.array_equal(y[mask], x[mask]) and np.all(y[~mask] == 0)
    full = coder.decode(coder.encode(x), x.shape[0])
    assert np.array_equal(full, x)


def test_coded_bits_within_one_percent_of_nll():
    c = random_circuit(d=16, kk=8, k=4, seed=9, sticky=0.7)
    coder = CircuitCoder(c)
    x = c.sample(2000, generator=torch.Generator().manual_seed(3))
    nll_bits = float(-c.log_prob(x, dtype=torch.float64).sum()) / np.log(2)
    data = coder.encode(x.numpy())
    actual = len(data) * 8
    assert abs(actual - nll_bits) / nll_bits < 0.01
    # the integer tables' information content is within 0.1 % of the NLL, the rest is the ANS flush
    table_bits = float(coder.code_bits(x.numpy()).sum())
    assert abs(table_bits - nll_bits) / nll_bits < 1e-3
    assert 0 <= actual - table_bits <= 64 + 32


def test_conditionals_do_not_depend_on_the_batch():
    c = random_circuit(d=10, kk=6, k=5, seed=5)
    coder = CircuitCoder(c)
    x = c.sample(64, generator=torch.Generator().manual_seed(0)).numpy()
    mask = np.random.default_rng(0).random(x.shape) < 0.7
    whole = coder.conditionals(x, mask)
    for i in (0, 17, 63):
        alone = coder.conditionals(x[i : i + 1], mask[i : i + 1])
        assert np.array_equal(alone[0], whole[i], equal_nan=True)  # bit-identical
    # streams of single rows decode inside a bigger stream layout too
    enc = StackEncoder()
    coder.encode_into(enc, x[:10], mask[:10])
    coder.encode_into(enc, x[10:], mask[10:])
    dec = StackDecoder(enc.finish())
    first = coder.decode_from(dec, 10, mask[:10])
    second = coder.decode_from(dec, 54, mask[10:])
    dec.finish()
    assert np.array_equal(np.concatenate([first, second])[mask], x[mask])


def test_decode_in_another_process_with_other_thread_count(tmp_path):
    c = random_circuit(d=20, kk=16, k=6, seed=8, sticky=0.5)
    x = c.sample(200, generator=torch.Generator().manual_seed(1)).numpy()
    torch.save(c.state_dict(), tmp_path / "circuit.pt")
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "stream.bin").write_bytes(CircuitCoder(c).encode(x))
    script = textwrap.dedent(f"""
        import numpy as np, torch
        torch.set_num_threads(1)
        from neuralcodec.entropy.circuits import HCLT, CircuitCoder
        state = torch.load(r"{tmp_path / 'circuit.pt'}")
        c = HCLT(20, 16, 6)
        c.load_state_dict(state)
        y = CircuitCoder(c).decode(open(r"{tmp_path / 'stream.bin'}", "rb").read(), 200)
        assert np.array_equal(y, np.load(r"{tmp_path / 'x.npy'}")), "mismatch"
        print("decoded-ok")
    """)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr
    assert "decoded-ok" in proc.stdout


def test_errors_are_reported():
    c = random_circuit(d=6, kk=4, k=3, seed=1)
    coder = CircuitCoder(c)
    x = c.sample(20, generator=torch.Generator().manual_seed(0)).numpy()
    with pytest.raises(ValueError):
        coder.encode(np.full((2, 6), 4))
    with pytest.raises(TypeError):
        coder.encode(x.astype(np.float64))
    data = coder.encode(x)
    with pytest.raises(BitstreamError):
        coder.decode(data[:-1], 20)
    with pytest.raises(BitstreamError):
        coder.decode(data + b"\x01\x00\x00\x00", 20)  # leftover words
    # a stream decoded with fewer rows than it holds leaves data behind
    with pytest.raises(BitstreamError):
        coder.decode(coder.encode(np.concatenate([x, x])), 20)


def test_frozen_coder_ignores_later_parameter_changes():
    c = random_circuit(d=6, kk=4, k=3, seed=1)
    coder = CircuitCoder(c)
    x = c.sample(50, generator=torch.Generator().manual_seed(0)).numpy()
    data = coder.encode(x)
    c.emit.mul_(torch.rand_like(c.emit))
    assert np.array_equal(coder.decode(data, 50), x)


# -- the level-by-level encoder, the step-by-step decoder and a row-by-row reference ------------
@pytest.mark.parametrize("kk,tie,masked", [(6, False, False), (6, True, True), (40, True, True), (50, False, True),
                                           (50, True, False)])
def test_encoder_and_decoder_tables_match_the_row_by_row_reference(kk, tie, masked, monkeypatch):
    import neuralcodec.entropy.circuits.coder as coder_module
    from circuit_helpers import reference_entries

    c = random_circuit(d=9, kk=kk, k=4, seed=kk + tie, tie=tie, sticky=0.3)
    coder = CircuitCoder(c)
    assert coder.split == (kk > 32)
    x = c.sample(23, generator=torch.Generator().manual_seed(kk)).numpy()
    mask = np.random.default_rng(kk).random(x.shape) < 0.7 if masked else None
    ref_tables, ref_symbols, ref_rows = reference_entries(coder, x, mask)
    for entries in (1 << 18, 3 * kk):  # one block, or a few variables per block
        monkeypatch.setattr(coder_module, "BLOCK_ENTRIES", entries)
        parts = list(coder._coded_blocks(*coder._check_values(x, mask)))
        assert len(parts) >= (1 if entries > 1000 else 3)
        assert np.array_equal(np.concatenate([p[0] for p in parts]), ref_tables)  # bit-identical
        assert np.array_equal(np.concatenate([p[1] for p in parts]), ref_symbols)
        assert np.array_equal(np.concatenate([p[2] for p in parts]), ref_rows)
    data = coder.encode(x, mask)
    recorded = []
    real = coder_module.reduced_tables

    def spy(pmf, totals=None, overwrite=False):
        out = real(pmf, totals, overwrite=overwrite)
        recorded.append(out.copy())
        return out

    monkeypatch.setattr(coder_module, "reduced_tables", spy)
    y = coder.decode(data, x.shape[0], mask)
    assert np.array_equal(np.concatenate(recorded), ref_tables)
    assert np.array_equal(y, x if mask is None else np.where(mask, x, 0))
    bits = coder.code_bits(x, mask)
    assert 0 <= len(data) * 8 - bits.sum() <= 64 + 32


def test_offset_conditionals_both_ways():
    c = random_circuit(d=3, kk=200, k=5, seed=3, tie=True)
    coder = CircuitCoder(c)
    assert coder.width == 16
    rng = np.random.default_rng(0)
    for m in (7, 512, 513, 2000):
        o_t = np.floor(rng.random((m, 5)) * 2**22) + 1
        group = rng.integers(0, 13, m)
        full = np.zeros((m, 13 * 16))
        full[:, :200] = o_t @ coder.emit[0]
        expected = np.take_along_axis(full.reshape(m, 13, 16), group[:, None, None], axis=1)[:, 0]
        assert np.array_equal(coder._offset_pmf(o_t, 0, group), expected)


def test_split_alphabet_rate_and_round_trip():
    c = random_circuit(d=10, kk=50, k=4, seed=12, sticky=0.6)
    coder = CircuitCoder(c)
    x = c.sample(1500, generator=torch.Generator().manual_seed(5))
    nll_bits = float(-c.log_prob(x, dtype=torch.float64).sum()) / np.log(2)
    table_bits = float(coder.code_bits(x.numpy()).sum())
    assert abs(table_bits - nll_bits) / nll_bits < 1e-3
    data = coder.encode(x.numpy())
    assert 0 <= len(data) * 8 - table_bits <= 64 + 32
    assert np.array_equal(coder.decode(data, 1500), x.numpy())


def test_chunked_streams_are_the_single_streams():
    c = random_circuit(d=12, kk=40, k=3, seed=6, tie=True)
    coder = CircuitCoder(c)
    x = c.sample(70, generator=torch.Generator().manual_seed(6)).numpy()
    mask = np.random.default_rng(6).random(x.shape) < 0.8
    mask[3] = False
    streams = coder.encode_chunks(x, mask, 16)
    assert streams == [coder.encode(x[s : s + 16], mask[s : s + 16]) for s in range(0, 70, 16)]
    y = coder.decode_chunks(streams, 70, mask, 16)
    assert np.array_equal(y, np.where(mask, x, 0))
    with pytest.raises(ValueError):
        coder.decode_chunks(streams[:-1], 70, mask, 16)
    with pytest.raises(BitstreamError):
        coder.decode_chunks([streams[1]] + streams[1:], 70, mask, 16)
    assert coder.decode(coder.encode(x[:0]), 0).shape == (0, 12)


def test_single_variable_and_corrupt_offsets():
    c = random_circuit(d=1, kk=50, k=3, seed=2)
    coder = CircuitCoder(c)
    x = np.array([[0], [49], [17]])
    assert np.array_equal(coder.decode(coder.encode(x), 3), x)
    # a stream that names an offset in the padding of the last group (values 50..55) is refused
    tables, symbols, _ = next(coder._coded_blocks(np.array([[49]]), None))
    assert symbols.tolist() == [6, 1]
    enc = StackEncoder()
    enc.categorical_reduced(np.array([6]), tables[:1])
    enc.categorical_reduced(np.array([5]), tables[1:])
    with pytest.raises(BitstreamError):
        coder.decode(enc.finish(), 1)


def test_threads_code_independently():
    from concurrent.futures import ThreadPoolExecutor

    c = random_circuit(d=16, kk=40, k=4, seed=7, tie=True)
    coder = CircuitCoder(c)
    xs = [c.sample(40 + 10 * i, generator=torch.Generator().manual_seed(i)).numpy() for i in range(6)]
    expected = [coder.encode(x) for x in xs]
    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(coder.encode, xs * 3)) == expected * 3
        decoded = list(pool.map(lambda i: coder.decode(expected[i], xs[i].shape[0]), range(6)))
    assert all(np.array_equal(a, b) for a, b in zip(decoded, xs))


def test_outside_states_match_the_walk():
    c = random_circuit(d=11, kk=5, k=3, seed=13)
    coder = CircuitCoder(c)
    x = c.sample(9, generator=torch.Generator().manual_seed(1)).numpy()
    states = coder.outside_states(x)
    seen = {}

    def record(v, rows, pmf):
        seen[v] = pmf
        return x[rows, v]

    coder.walk(9, None, record)
    for v in range(11):
        assert np.array_equal(seen[v], states[v].T @ coder.emit[coder.emit_index[v]])
