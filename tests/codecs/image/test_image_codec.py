"""Image codec: real coding (file = estimate, decode = eval forward), any size, gray, quality, errors."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_codec

from neuralcodec.bitstream import bitstream_to_bytes
from neuralcodec.codecs.image import STRIDE, ImageCodec, pad_to_multiple
from neuralcodec.codecs.image.postfilter import KERNEL_SIZES, OVERHEAD_BITS, PostFilter, fit_postfilter
from neuralcodec.errors import BitstreamError, NeuralCodecError
from neuralcodec.media import load_image


def psnr_8bit(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB between two [0, 1] images after rounding both to 8 bits."""
    qa, qb = (t.clamp(0, 1).mul(255).round() for t in (a, b))
    mse = (qa - qb).pow(2).mean().item()
    return 10 * math.log10(255.0**2 / max(mse, 1e-12))


def forward_reconstruction(codec: ImageCodec, image: torch.Tensor, quality: float) -> torch.Tensor:
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    with torch.no_grad():
        x_hat = codec(rgb[None], quality).x_hat[0].clamp(0, 1)
    return x_hat.mean(0, keepdim=True) if image.shape[0] == 1 else x_hat


def file_bits(codec: ImageCodec, metadata, chunks) -> int:
    return 8 * len(bitstream_to_bytes(codec.stream_header(metadata), chunks))


@pytest.mark.parametrize("name", ["chelsea.png", "camera.png"])
def test_round_trip_matches_eval_forward_and_estimate(codec, dev_images, name):
    image = load_image(dev_images / name)
    metadata, chunks = codec.compress(image, quality=3, postfilter=False)
    chunks = list(chunks)
    assert len(chunks) == 2 and "filter" not in metadata
    decoded = codec.decompress(metadata, chunks)
    assert decoded.shape == image.shape
    assert metadata["width"] == image.shape[2] and metadata["height"] == image.shape[1]
    assert metadata["channels"] == image.shape[0] and metadata["quality"] == 3
    reference = forward_reconstruction(codec, image, 3.0)
    assert abs(psnr_8bit(decoded, image) - psnr_8bit(reference, image)) <= 0.01
    # estimated (eval forward, exact integer tables) vs actual payload bits
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    with torch.no_grad():
        estimate = codec(rgb[None], 3.0).bits.item()
    actual = 8 * sum(len(c) for c in chunks)
    assert abs(actual - estimate) / actual < 0.01


@pytest.mark.parametrize("height,width", [(1, 1), (3, 65), (64, 64), (70, 129)])
def test_any_size(codec, height, width):
    image = torch.rand(3, height, width)
    metadata, chunks = codec.compress(image, quality=2, postfilter=False)
    decoded = codec.decompress(metadata, list(chunks))
    assert decoded.shape == (3, height, width)
    assert torch.allclose(decoded, forward_reconstruction(codec, image, 2.0), atol=1e-6)


def test_grayscale_is_stored_as_one_channel(codec):
    gray = torch.rand(1, 40, 50)
    metadata, chunks = codec.compress(gray)
    assert metadata["channels"] == 1 and metadata["quality"] == codec.default_quality
    decoded = codec.decompress(metadata, list(chunks))
    assert decoded.shape == (1, 40, 50)


def test_rate_grows_with_quality(codec):
    torch.manual_seed(1)
    image = torch.rand(3, 64, 96) * 0.5 + 0.25
    sizes = []
    for q in range(1, codec.num_qualities + 1):
        metadata, chunks = codec.compress(image, quality=q)
        sizes.append(sum(len(c) for c in chunks))
    assert sizes[0] < sizes[-1]
    assert sum(b >= a for a, b in zip(sizes, sizes[1:])) >= codec.num_qualities - 2


def test_target_bpp_picks_the_closest_actual_size(codec):
    torch.manual_seed(2)
    image = torch.rand(3, 128, 128)
    pixels = 128 * 128
    low = file_bits(codec, *(lambda m, c: (m, list(c)))(*codec.compress(image, quality=1))) / pixels
    high = file_bits(codec, *(lambda m, c: (m, list(c)))(*codec.compress(image, quality=codec.num_qualities))) / pixels
    target = 0.5 * (low + high)
    metadata, chunks = codec.compress(image, target_bpp=target, postfilter=False)
    got = file_bits(codec, metadata, list(chunks)) / pixels
    assert abs(got - target) < 0.05 * target
    # the post-filter is fitted after the search: same quality, at most its own bits more
    filtered, chunks = codec.compress(image, target_bpp=target)
    assert filtered["quality"] == metadata["quality"]
    largest = 16 * PostFilter.num_values(max(KERNEL_SIZES), 3) + OVERHEAD_BITS
    assert file_bits(codec, filtered, list(chunks)) / pixels - got <= largest / pixels + 1e-9
    assert 1 < metadata["quality"] < codec.num_qualities
    # a fractional quality decodes like any other
    assert codec.decompress(*codec.compress(image, quality=metadata["quality"])).shape == image.shape
    # targets outside the model's range clamp to the end levels
    assert codec.compress(image, target_bpp=low / 10)[0]["quality"] == 1
    assert codec.compress(image, target_bpp=high * 10)[0]["quality"] == codec.num_qualities


def test_options_and_quality_are_validated(codec, tmp_path):
    image = torch.rand(3, 16, 16)
    with pytest.raises(NeuralCodecError, match="either"):
        codec.compress(image, quality=2, target_bpp=0.5)
    with pytest.raises(NeuralCodecError, match="quality"):
        codec.compress(image, quality=codec.num_qualities + 1)
    with pytest.raises(NeuralCodecError, match="target-bpp"):
        codec.compress(image, target_bpp=-1.0)
    with pytest.raises(NeuralCodecError, match="--bitrate"):
        codec.compress_file(tmp_path / "unused.png", bitrate=6.0)
    metadata, chunks = codec.compress(image)
    with pytest.raises(NeuralCodecError, match="--frames"):
        codec.decompress_to_file(metadata, chunks, tmp_path / "out.png", frames="0:1")


def test_corrupt_streams_raise_bitstream_errors(codec):
    image = torch.rand(3, 64, 64)
    metadata, chunks = codec.compress(image, postfilter=False)
    z_bytes, y_bytes = list(chunks)
    with pytest.raises(BitstreamError, match="chunk"):
        codec.decompress(metadata, [z_bytes])
    with pytest.raises(BitstreamError, match="chunk"):
        codec.decompress(metadata, [z_bytes, y_bytes, b""])
    with pytest.raises(BitstreamError):
        codec.decompress(metadata, [z_bytes, y_bytes[:-4]])
    with pytest.raises(BitstreamError):
        codec.decompress(metadata, [z_bytes, y_bytes + b"\x00\x00\x00\x01"])
    for bad in ({"quality": 0}, {"width": 0}, {"channels": 2}, {"height": 1 << 20}):
        with pytest.raises(BitstreamError):
            codec.decompress({**metadata, **bad}, [z_bytes, y_bytes])
    with pytest.raises(BitstreamError, match="metadata"):
        codec.decompress({"width": 64}, [z_bytes, y_bytes])


@pytest.mark.parametrize("name", ["chelsea.png", "camera.png"])
def test_postfilter_is_sent_where_it_pays_and_decoded_exactly(codec, dev_images, name):
    """With the post-filter (the default) the file carries a third chunk whose filter, applied to the
    eval-mode reconstruction, gives the decoded image; the exact cost bits/px + lambda 255^2 MSE is
    lower than without it (the random model's output has large linear errors, so it pays here)."""
    image = load_image(dev_images / name)[:, :128, :160]
    plain_meta, plain = codec.compress(image, quality=3, postfilter=False)
    metadata, chunks = codec.compress(image, quality=3)
    plain, chunks = list(plain), list(chunks)
    assert metadata["filter"] in KERNEL_SIZES and len(chunks) == 3 and chunks[:2] == plain
    decoded = codec.decompress(metadata, chunks)
    assert decoded.shape == image.shape
    postfilter = PostFilter.from_bytes(chunks[2], metadata["filter"], image.shape[0])
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    with torch.no_grad():
        reference = codec(rgb[None], 3.0).x_hat[0].clamp(0, 1)
    assert torch.allclose(decoded, postfilter.apply(reference), atol=1e-5)
    lam = codec.lambdas[2]
    pixels = image.shape[1] * image.shape[2]

    def cost(meta, parts):
        return file_bits(codec, meta, parts) / pixels + lam * 255**2 * (codec.decompress(meta, parts) - image).pow(2).mean()

    assert cost(metadata, chunks) < cost(plain_meta, plain)
    # the layout is checked: a filter chunk without its metadata entry, a wrong size, a bad entry
    with pytest.raises(BitstreamError, match="chunk"):
        codec.decompress(plain_meta, chunks)
    with pytest.raises(BitstreamError, match="chunk"):
        codec.decompress(metadata, plain)
    with pytest.raises(BitstreamError, match="post-filter chunk has"):
        codec.decompress(metadata, chunks[:2] + [chunks[2][:-2]])
    with pytest.raises(BitstreamError, match="non-finite"):
        codec.decompress(metadata, chunks[:2] + [b"\x00\x7c" + chunks[2][2:]])  # float16 +inf
    for bad in (2, 7, "3", True):
        with pytest.raises(BitstreamError, match="post-filter size"):
            codec.decompress({**metadata, "filter": bad}, chunks)


def test_postfilter_fit_recovers_a_linear_distortion_and_stays_off_where_it_does_not_pay():
    torch.manual_seed(5)
    original = torch.rand(3, 96, 80) * 0.8 + 0.1
    # a colour cast, an offset and a blur: exactly a 3x3 linear filter of the "decoded" image
    mix = torch.tensor([[0.9, 0.05, 0.0], [0.0, 1.0, 0.0], [0.1, 0.0, 0.85]])
    blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(original[None], (1, 1, 1, 1), mode="replicate"),
                                             3, stride=1)[0]
    decoded = (torch.einsum("oc,chw->ohw", mix, 0.7 * original + 0.3 * blurred) + 0.03).clamp(0, 1)
    found = fit_postfilter(decoded, original, lam=0.01)
    assert found is not None and found.kernel >= 3
    before = (decoded - original).pow(2).mean()
    after = (found.apply(decoded) - original).pow(2).mean()
    assert after < 0.05 * before
    assert torch.equal(PostFilter.from_bytes(found.to_bytes(), found.kernel, 3).weight, found.weight)
    # grayscale target: one output channel, fitted from the three reconstructed channels
    gray = fit_postfilter(decoded, original.mean(0, keepdim=True), lam=0.01)
    assert gray is not None and gray.channels == 1 and gray.apply(decoded).shape == (1, 96, 80)
    # an unbiased reconstruction whose error is independent noise: no filter is worth its bits
    noisy = (original + 0.01 * torch.randn_like(original)).clamp(0, 1)
    assert fit_postfilter(noisy, original, lam=0.0018) is None
    with pytest.raises(ValueError, match="does not fit"):
        fit_postfilter(decoded[:, :10], original, lam=0.01)


def test_postfilter_gram_is_the_same_in_row_blocks(monkeypatch):
    """The normal equations accumulated over row blocks (bounded memory) equal the one-shot ones."""
    import neuralcodec.codecs.image.postfilter as pf

    torch.manual_seed(6)
    decoded, residual = torch.rand(3, 23, 17), torch.randn(1, 23, 17)
    whole = pf._normal_equations(decoded, residual)
    monkeypatch.setattr(pf, "_BLOCK_PIXELS", 40)  # 2 rows per block, last block partial
    blocked = pf._normal_equations(decoded, residual)
    assert all(torch.allclose(a, b, rtol=1e-12, atol=1e-9) for a, b in zip(whole, blocked))
    # the feature at the 5x5 centre of channel 1 is the pixel itself: its right-hand side is sum(x * r)
    centre = 1 * 25 + 2 * 5 + 2
    assert torch.isclose(whole[1][centre, 0], (decoded[1].double() * residual[0].double()).sum())


def test_padding_is_edge_replication():
    x = torch.arange(6.0).view(1, 1, 2, 3)
    padded = pad_to_multiple(x, STRIDE)
    assert padded.shape == (1, 1, STRIDE, STRIDE)
    assert torch.equal(padded[..., :2, :3], x)
    assert torch.all(padded[0, 0, 5, :3] == x[0, 0, 1]) and torch.all(padded[0, 0, :2, 7] == x[0, 0, :, 2])


def test_unfrozen_model_refuses_to_code():
    codec = make_codec()
    codec.hyperprior.unfreeze()
    with pytest.raises(NeuralCodecError, match="freeze"):
        codec.compress(torch.rand(3, 8, 8))


def test_config_is_validated():
    with pytest.raises(NeuralCodecError, match="increasing"):
        make_codec(lambdas=[0.1, 0.01])
    with pytest.raises(NeuralCodecError, match="unknown"):
        make_codec(quantizer={"name": "rvq"})


def test_bf16_autocast_runs_only_the_transforms_in_low_precision():
    """Mixed-precision training (``trainer.precision=bf16-mixed``): outputs and code lengths stay
    float32 and match the float32 pass to within the transforms' bf16 error."""
    model = make_codec().train()
    x = torch.rand(2, 3, 64, 64)
    quality = torch.tensor([2.0, 5.5])
    torch.manual_seed(1)
    ref = model(x, quality)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model(x, quality)
    assert mixed.x_hat.dtype == torch.float32 and mixed.bits.dtype == torch.float32
    assert torch.allclose(mixed.bits, ref.bits, rtol=0.05)
    assert (mixed.x_hat - ref.x_hat).abs().mean() < 0.02
    (mixed.bpp.mean() + mixed.x_hat.square().mean()).backward()
    assert model.g_a[0].weight.grad is not None and torch.isfinite(model.g_a[0].weight.grad).all()


@pytest.mark.parametrize("groups", [1, 3])
def test_checkerboard_context_codes_exactly(dev_images, groups):
    """``entropy.context=checkerboard`` (with and without channel groups): the file decodes to the
    eval forward pass and its size matches the estimate; the entropy-model id names the context;
    bad settings are refused."""
    codec = make_codec(entropy={"z_channels": 16, "hidden_channels": 16, "context": "checkerboard",
                                "context_hidden": 16, "channel_groups": groups})
    hp = codec.hyperprior
    with torch.no_grad():  # contexts in use (a new model's last context layers are zero)
        torch.manual_seed(3)
        lasts = [hp.ctx_mean[-1], hp.ctx_scale.layers[-1]] + [net[-1] for net in hp.chan_mean]
        for layer in lasts + [net.layers[-1] for net in hp.chan_scale]:
            layer.weight.normal_(std=0.05)
    codec.freeze()
    assert len(hp.chan_scale) == 2 * (groups - 1)
    assert codec.entropy_model_id.startswith("checkerboard-hyperprior/" if groups == 1 else
                                             "channel-checkerboard-hyperprior/")
    image = load_image(dev_images / "chelsea.png")
    metadata, chunks = codec.compress(image, quality=4, postfilter=False)
    chunks = list(chunks)
    decoded = codec.decompress(metadata, chunks)
    assert abs(psnr_8bit(decoded, image) - psnr_8bit(forward_reconstruction(codec, image, 4.0), image)) <= 0.01
    with torch.no_grad():
        estimate = codec(image[None], 4.0).bits.item()
    assert abs(8 * sum(len(c) for c in chunks) - estimate) / estimate < 0.01
    with pytest.raises(NeuralCodecError, match="entropy.context"):
        make_codec(entropy={"context": "raster"})
    with pytest.raises(NeuralCodecError, match="context_hidden"):
        make_codec(entropy={"context_hidden": 8})
    with pytest.raises(NeuralCodecError, match="channel_groups"):
        make_codec(entropy={"context": "checkerboard", "channel_groups": [4, 4]})
