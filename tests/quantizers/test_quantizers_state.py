"""Checkpoints: codebooks survive save/load bit for bit (torch and safetensors)."""

from __future__ import annotations

import io

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from neuralcodec.quantizers import FSQ, GroupResidualVQ, ResidualFSQ, ResidualVQ, VectorQuantizer

FACTORIES = {
    "vq": lambda: VectorQuantizer(8, 32, kmeans_init=True, kmeans_iters=3),
    "vq-factorised": lambda: VectorQuantizer(8, 32, codebook_dim=3, distance="cosine"),
    "vq-learnable": lambda: VectorQuantizer(8, 32, ema=False),
    "rvq": lambda: ResidualVQ(8, 3, 16, kmeans_init=True, dropout=0.3),
    "grvq": lambda: GroupResidualVQ(8, 2, 2, 16),
    "fsq": lambda: FSQ((5, 5, 5), 8),
    "rfsq": lambda: ResidualFSQ((5, 5, 5), 8, num_codebooks=2),
}


def trained(name: str, seed: int = 0):
    torch.manual_seed(seed)
    q = FACTORIES[name]().train()
    for _ in range(4):
        q(torch.randn(4, 8, 30) * 2)
    return q.eval()


@pytest.mark.parametrize("name", list(FACTORIES))
@pytest.mark.parametrize("fmt", ["torch", "safetensors"])
def test_state_dict_round_trip_is_bit_exact(name: str, fmt: str) -> None:
    src = trained(name, seed=0)
    state = src.state_dict()
    if fmt == "torch":
        buf = io.BytesIO()
        torch.save(state, buf)
        buf.seek(0)
        loaded = torch.load(buf, weights_only=True)
    else:
        loaded = st_load(st_save({k: v.contiguous() for k, v in state.items()}))
    dst = trained(name, seed=1)  # different codebooks before loading
    dst.load_state_dict(loaded)
    for key, value in src.state_dict().items():
        other = dst.state_dict()[key]
        assert other.dtype == value.dtype and torch.equal(other, value), key
    z = torch.randn(3, 8, 40)
    assert torch.equal(src.encode(z), dst.encode(z))
    assert torch.equal(src(z).quantized, dst(z).quantized)


def test_vq_state_is_the_documented_buffer_set() -> None:
    keys = set(VectorQuantizer(8, 32).state_dict())
    assert keys == {"codebook.embed", "codebook.embed_sum", "codebook.cluster_size", "codebook.initted"}
    learnable = set(VectorQuantizer(8, 32, ema=False, codebook_dim=4).state_dict())
    assert {"codebook.embed", "codebook.cluster_size", "codebook.initted", "project_in.weight"} <= learnable
    assert "codebook.embed_sum" not in learnable


def test_loaded_initialised_codebook_skips_kmeans() -> None:
    src = trained("vq")
    assert bool(src.codebook.initted)
    dst = VectorQuantizer(8, 32, kmeans_init=True, kmeans_iters=3, decay=0.0, replace_dead_codes=False)
    assert not dst.codebook.is_initted()  # caches "not initialised" before the load
    dst.load_state_dict(src.state_dict())
    dst.train()
    z = torch.randn(2, 8, 50)
    dst(z)
    # with decay 0 the EMA step makes every used code the mean of its rows; k-means would have
    # re-clustered from scratch and moved unused codes too
    codes = src.encode(z).flatten()
    unused = torch.ones(32, dtype=torch.bool)
    unused[codes] = False
    assert unused.any()
    assert torch.equal(dst.codebook.embed[unused], src.codebook.embed[unused])


@pytest.mark.parametrize("name", list(FACTORIES))
def test_state_stays_fp32_when_the_model_goes_bf16(name: str) -> None:
    q = trained(name)
    z = torch.randn(2, 8, 25)
    before = {k: v.clone() for k, v in q.state_dict().items() if "project" not in k}
    q.to(torch.bfloat16)
    for key, value in q.state_dict().items():
        if "project" in key:
            assert value.dtype == torch.bfloat16  # ordinary layers convert as asked
        else:
            assert torch.equal(value, before[key]), key  # codebooks are neither rounded nor recast
    for _, buf in q.named_buffers():
        assert buf.dtype in (torch.float32, torch.int64, torch.bool)
    out = q(z.bfloat16())
    assert out.quantized.dtype == torch.bfloat16
    assert torch.equal(q.encode(z.bfloat16()), out.codes)
