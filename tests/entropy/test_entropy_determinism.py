"""Decoding in another process, with another thread count and batch split, gives the same symbols.

The encoder runs here (2 threads, whole batch); a fresh interpreter loads the saved models and
decodes every item on its own with 1 thread. Floating-point differences in the networks must not
change a single decoded symbol.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import torch
from entropy_helpers import K, latents, markov_codes

REPO = Path(__file__).resolve().parents[2]

DECODER = r"""
import pickle, sys
import torch
torch.set_num_threads(1)
from neuralcodec.entropy import Hyperprior, TokenPrior

with open(sys.argv[1], "rb") as f:
    job = pickle.load(f)
hp = Hyperprior(16, 8, 16, training_quantization="ste")
hp.load_state_dict(job["hp_state"])
hp.eval()
for b in range(len(job["y_strings"])):
    y_sym, z_sym = hp.decompress_symbols([[job["y_strings"][b]], [job["z_strings"][b]]], job["z_shape"])
    assert torch.equal(y_sym, job["y_sym"][b : b + 1]), f"hyperprior y symbols differ in item {b}"
    assert torch.equal(z_sym, job["z_sym"][b : b + 1]), f"hyperprior z symbols differ in item {b}"
tp = TokenPrior([job["K"], job["K"]], "causal", hidden=32)
tp.load_state_dict(job["tp_state"])
tp.eval()
for b, data in enumerate(job["tp_strings"]):
    codes = tp.decompress([data], job["codes"].shape[-1])
    assert torch.equal(codes, job["codes"][b : b + 1]), f"token codes differ in item {b}"
print("decoded", len(job["y_strings"]), "images and", len(job["tp_strings"]), "token streams")
"""


def test_decode_in_other_process_with_other_threads_and_batch(tmp_path, hyperprior, causal_prior):
    torch.set_num_threads(2)
    hp = hyperprior
    y = latents(4, 32, seed=7)
    (y_strings, z_strings), z_shape = hp.compress(y)
    z_sym = hp.factorized.symbols(hp.h_a(y))
    means = hp.h_s_mean(hp.factorized.dequantize(z_sym))
    y_sym = hp.gaussian.symbols(y, means)

    tp = causal_prior
    codes = markov_codes(4, 300, seed=8)
    tp_strings = tp.compress(codes)

    job = {
        "hp_state": hp.state_dict(),
        "y_strings": y_strings,
        "z_strings": z_strings,
        "z_shape": z_shape,
        "y_sym": y_sym,
        "z_sym": z_sym,
        "K": K,
        "tp_state": tp.state_dict(),
        "tp_strings": tp_strings,
        "codes": codes,
    }
    path = tmp_path / "job.pkl"
    path.write_bytes(pickle.dumps(job))
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", DECODER, str(path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "decoded 4 images and 4 token streams" in proc.stdout
