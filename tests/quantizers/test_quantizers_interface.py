"""The shared quantizer contract: shapes, dtypes, exact encode/decode, gradients, registry."""

from __future__ import annotations

import math

import pytest
import torch

from neuralcodec.errors import ModelError
from neuralcodec.quantizers import (
    FSQ,
    QUANTIZERS,
    SUPPORTED_DTYPES,
    GroupResidualVQ,
    Quantizer,
    QuantizerOutput,
    ResidualFSQ,
    ResidualVQ,
    VectorQuantizer,
    build_quantizer,
)

DIM = 16

FACTORIES = {
    "vq": lambda: VectorQuantizer(DIM, 64),
    "vq-factorised-cosine-rotation": lambda: VectorQuantizer(
        DIM, 64, codebook_dim=4, distance="cosine", gradient="rotation"
    ),
    "vq-learnable": lambda: VectorQuantizer(DIM, 64, ema=False),
    "rvq": lambda: ResidualVQ(DIM, num_codebooks=3, codebook_size=32, dropout=0.5),
    "rvq-kmeans-rotation": lambda: ResidualVQ(DIM, 3, 32, kmeans_init=True, kmeans_iters=3, gradient="rotation"),
    "grvq": lambda: GroupResidualVQ(DIM, groups=2, num_codebooks=2, codebook_size=32, dropout=0.5),
    "fsq": lambda: FSQ((8, 5, 5, 5), DIM),
    "fsq-noproj": lambda: FSQ((7, 5, 5, 4), 4),
    "rfsq": lambda: ResidualFSQ((5, 5, 5), DIM, num_codebooks=3, dropout=0.5),
}
EXPECTED_Q = {
    "vq": 1,
    "vq-factorised-cosine-rotation": 1,
    "vq-learnable": 1,
    "rvq": 3,
    "rvq-kmeans-rotation": 3,
    "grvq": 4,
    "fsq": 1,
    "fsq-noproj": 1,
    "rfsq": 3,
}
SPATIAL = {"1d": (37,), "2d": (5, 6)}


def make(name: str) -> Quantizer:
    torch.manual_seed(0)
    return FACTORIES[name]()


def latent(name: str, spatial: tuple[int, ...], dtype: torch.dtype = torch.float32, batch: int = 3) -> torch.Tensor:
    q = make(name)
    return torch.randn(batch, q.dim, *spatial).to(dtype)


def warm_up(q: Quantizer, spatial: tuple[int, ...]) -> None:
    """A few training steps so EMA, k-means and dead-code logic have changed the state."""
    q.train()
    for _ in range(3):
        q(torch.randn(4, q.dim, *spatial))
    q.eval()


@pytest.mark.parametrize("name", list(FACTORIES))
@pytest.mark.parametrize("layout", list(SPATIAL))
@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES, ids=str)
def test_shapes_and_dtypes(name: str, layout: str, dtype: torch.dtype) -> None:
    q = make(name)
    spatial = SPATIAL[layout]
    z = torch.randn(3, q.dim, *spatial).to(dtype)
    for training in (True, False):
        q.train(training)
        out = q(z)
        assert isinstance(out, QuantizerOutput)
        assert out.quantized.shape == z.shape and out.quantized.dtype == dtype
        assert out.codes.shape == (3, EXPECTED_Q[name], *spatial) and out.codes.dtype == torch.int64
        assert out.loss.shape == () and out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
        assert torch.isfinite(out.quantized.float()).all()
        for i in range(q.num_codebooks):
            for key in ("usage", "perplexity", "dead_codes"):
                value = out.metrics[f"{key}/{i}"]
                assert value.shape == () and value.dtype == torch.float32
            assert 0.0 < out.metrics[f"usage/{i}"] <= 1.0
    codes = q.encode(z)
    assert codes.shape == (3, EXPECTED_Q[name], *spatial) and codes.dtype == torch.int64
    sizes = torch.tensor(q.codebook_sizes).view(1, -1, *([1] * len(spatial)))
    assert ((codes >= 0) & (codes < sizes)).all()
    decoded = q.decode(codes)
    assert decoded.shape == z.shape and decoded.dtype == torch.float32


@pytest.mark.parametrize("name", list(FACTORIES))
@pytest.mark.parametrize("layout", list(SPATIAL))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
def test_decode_encode_equals_forward_exactly(name: str, layout: str, dtype: torch.dtype) -> None:
    q = make(name)
    spatial = SPATIAL[layout]
    warm_up(q, spatial)
    z = (torch.randn(3, q.dim, *spatial) * 1.5).to(dtype)
    out = q(z)
    codes = q.encode(z)
    assert torch.equal(codes, out.codes)
    assert torch.equal(q.decode(codes).to(dtype), out.quantized)
    # also with gradients flowing (the estimators must not perturb the value)
    zg = z.clone().requires_grad_()
    assert torch.equal(q(zg).quantized.detach(), out.quantized)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_exact_under_bf16_autocast(name: str) -> None:
    q = make(name)
    warm_up(q, (20,))
    z = torch.randn(2, q.dim, 20)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(z)
        codes = q.encode(z)
    assert out.quantized.dtype == torch.float32
    # distances ran in fp32: same codes as without autocast
    assert torch.equal(codes, q.encode(z))
    assert torch.equal(q.decode(codes), out.quantized)


@pytest.mark.parametrize("name", list(FACTORIES))
@pytest.mark.parametrize("layout", list(SPATIAL))
def test_gradients_reach_the_encoder(name: str, layout: str) -> None:
    q = make(name).train()
    encoder = torch.nn.Conv1d(q.dim, q.dim, 1) if layout == "1d" else torch.nn.Conv2d(q.dim, q.dim, 1)
    x = torch.randn(4, q.dim, *SPATIAL[layout])
    out = q(encoder(x))
    target = torch.randn_like(out.quantized)
    ((out.quantized - target).pow(2).mean() + out.loss).backward()
    assert encoder.weight.grad is not None
    assert encoder.weight.grad.abs().sum() > 0
    assert torch.isfinite(encoder.weight.grad).all()


def test_straight_through_gradient_is_identity() -> None:
    for q in (VectorQuantizer(DIM, 32, commitment_weight=0.0), ResidualVQ(DIM, 4, 16, commitment_weight=0.0)):
        q.train()
        z = torch.randn(2, DIM, 9, requires_grad=True)
        g = torch.randn(2, DIM, 9)
        (q(z).quantized * g).sum().backward()
        torch.testing.assert_close(z.grad, g)


def test_bits_and_codebook_properties() -> None:
    assert VectorQuantizer(DIM, 4096).bits_per_frame == 12.0
    rvq = ResidualVQ(DIM, 8, 1024)
    assert rvq.num_codebooks == 8 and rvq.codebook_sizes == (1024,) * 8 and rvq.bits_per_frame == 80.0
    assert rvq.bits_per_frame_at(3) == 30.0
    mixed = ResidualVQ(DIM, 3, [256, 512, 1024])
    assert mixed.codebook_sizes == (256, 512, 1024) and mixed.bits_per_frame == 27.0
    fsq = FSQ((8, 5, 5, 5), DIM)
    assert fsq.codebook_sizes == (1000,) and math.isclose(fsq.bits_per_frame, math.log2(1000))
    grvq = GroupResidualVQ(DIM, groups=2, num_codebooks=3, codebook_size=[64, 128, 256])
    assert grvq.codebook_sizes == (64, 64, 128, 128, 256, 256) and grvq.num_codebooks == 6
    rfsq = ResidualFSQ((5, 5, 5), DIM, num_codebooks=4)
    assert rfsq.codebook_sizes == (125,) * 4


def test_registry_builds_every_quantizer() -> None:
    assert set(QUANTIZERS) == {"vq", "rvq", "grvq", "fsq", "rfsq"}
    assert isinstance(build_quantizer("vq", dim=8, codebook_size=16), VectorQuantizer)
    assert isinstance(build_quantizer("RVQ", dim=8, num_codebooks=2, codebook_size=16), ResidualVQ)
    assert isinstance(build_quantizer("grvq", dim=8, groups=2, num_codebooks=2, codebook_size=16), GroupResidualVQ)
    assert isinstance(build_quantizer("fsq", levels=(5, 5), dim=8), FSQ)
    assert isinstance(build_quantizer("rfsq", levels=(5, 5), dim=8, num_codebooks=2), ResidualFSQ)
    with pytest.raises(ValueError, match="unknown quantizer"):
        build_quantizer("nope")


def test_bad_inputs_raise_model_error() -> None:
    q = VectorQuantizer(DIM, 32).eval()
    with pytest.raises(ModelError, match="channels"):
        q.encode(torch.randn(2, DIM + 1, 5))
    with pytest.raises(ModelError, match="channels-first"):
        q.encode(torch.randn(2, DIM))
    with pytest.raises(ModelError, match="dtype"):
        q.encode(torch.randint(0, 3, (2, DIM, 5)))
    with pytest.raises(ModelError, match="out of range"):
        q.decode(torch.full((1, 1, 4), 32))
    with pytest.raises(ModelError, match="out of range"):
        q.decode(torch.full((1, 1, 4), -1))
    with pytest.raises(ModelError, match="codes must be"):
        q.decode(torch.zeros(1, 2, 4, dtype=torch.long))
    with pytest.raises(ModelError, match="integers"):
        q.decode(torch.zeros(1, 1, 4))
    rvq = ResidualVQ(DIM, 3, 8).eval()
    with pytest.raises(ModelError, match="num_codebooks"):
        rvq.encode(torch.randn(1, DIM, 4), num_codebooks=4)
    grvq = GroupResidualVQ(DIM, 2, 2, 8).eval()
    with pytest.raises(ModelError, match="multiple of 2"):
        grvq.encode(torch.randn(1, DIM, 4), num_codebooks=3)
    assert grvq.encode(torch.randn(1, DIM, 4), num_codebooks=2).shape == (1, 2, 4)
    with pytest.raises(ModelError, match="num_codebooks"):
        q.encode(torch.randn(1, DIM, 4), num_codebooks=2)
    assert torch.equal(q.encode(torch.ones(1, DIM, 4), num_codebooks=1), q.encode(torch.ones(1, DIM, 4)))
    with pytest.raises(ValueError):
        VectorQuantizer(DIM, 32, gradient="magic")
    with pytest.raises(ValueError):
        VectorQuantizer(DIM, 32, distance="l1")
