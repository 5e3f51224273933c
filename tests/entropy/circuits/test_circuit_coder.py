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
