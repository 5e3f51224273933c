"""The patch-wise lossless circuit codec: exact round trips, containers, files and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neuralcodec.bitstream import bitstream_to_bytes, read_bitstream
from neuralcodec.codecs.lossless.codec import CircuitLosslessCodec, _patch_coordinates
from neuralcodec.codecs.lossless.patches import from_patches, patch_mask, to_patches
from neuralcodec.codecs.registry import available_models, build_codec, load_codec, save_codec
from neuralcodec.entropy.circuits import FitConfig, fit_hclt
from neuralcodec.errors import BitstreamError, MediaError


def _smooth_images(n: int, size: int, seed: int) -> np.ndarray:
    """Smooth random 8-bit images (blurred noise + gradient), ``[n, size, size]``."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, 1, size + 6, size + 6, generator=g)
    blurred = torch.nn.functional.avg_pool2d(noise, 7, stride=1)[:, 0]
    ramp = torch.linspace(0, 1, size)[None, None, :]
    img = (0.6 * (blurred - 0.5) * 6 + 0.5 * ramp + 0.2).clamp(0, 1)
    return (img * 255).round().to(torch.uint8).numpy()


@pytest.fixture(scope="module")
def codec() -> CircuitLosslessCodec:
    """A small gray codec (4x4 patches, 256 levels) fitted on smooth synthetic images."""
    torch.manual_seed(0)
    imgs = _smooth_images(16, 32, seed=0)
    patches = np.concatenate([to_patches(im[None], 4)[0] for im in imgs])
    cfg = {"codec": "lossless-pc", "name": "test-gray4", "patch_size": 4, "levels": 256, "hidden": 8,
           "tie_emissions": True, "chunk_patches": 16}
    model = build_codec(cfg)
    circuit = fit_hclt(torch.from_numpy(patches), 256, FitConfig(hidden=8, tie_emissions=True, epochs=1, batch_size=256),
                       log=None)
    model.circuit.load_state_dict(circuit.state_dict())
    return model.eval()


def test_patches_round_trip_and_mask():
    img = np.random.default_rng(0).integers(0, 256, (2, 13, 21))
    patches, mask = to_patches(img, 8)
    assert patches.shape == (2 * 2 * 3, 64) and mask.shape == patches.shape
    assert mask.sum() == img.size
    assert np.array_equal(from_patches(patches, 2, 13, 21, 8), img)
    ids = np.arange(patches.shape[0])
    assert np.array_equal(_patch_coordinates(2, 13, 21, 8, ids)[3], patch_mask(2, 13, 21, 8))


@pytest.mark.parametrize("shape", [(1, 32, 32), (1, 7, 9), (3, 19, 26), (1, 1, 1)])
def test_round_trip_is_bit_exact(codec, shape):
    rng = np.random.default_rng(sum(shape))
    img = _smooth_images(1, 40, seed=5)[0][None].repeat(shape[0], 0)[:, : shape[1], : shape[2]].copy()
    img[:, ::3, ::5] = rng.integers(0, 256, img[:, ::3, ::5].shape)  # some noise too
    meta, chunks = codec.compress(torch.from_numpy(img))
    payloads = list(chunks)
    out = codec.decompress(meta, payloads)
    assert out.dtype == torch.uint8 and torch.equal(out, torch.from_numpy(img))
    assert (meta["width"], meta["height"], meta["channels"]) == (shape[2], shape[1], shape[0])


def test_rate_tracks_model_likelihood(codec):
    img = _smooth_images(1, 64, seed=9)[0]
    meta, chunks = codec.compress(torch.from_numpy(img))
    payloads = list(chunks)
    bits = sum(len(p) for p in payloads) * 8
    patches, _ = to_patches(img[None], 4)
    nll = float(-codec.circuit.log_prob(torch.from_numpy(patches), dtype=torch.float64).sum()) / np.log(2)
    flush = 64 * len(payloads)  # at most 64 bits of ANS state per chunk
    assert -1e-3 * nll < bits - nll < 1e-3 * nll + flush
    assert bits / img.size < 7.5  # below the 8 bits per pixel of raw storage


def test_float_input_and_validation(codec):
    img = _smooth_images(1, 16, seed=2)[0]
    as_float = torch.from_numpy(img).float().div(255.0)[None]
    meta, chunks = codec.compress(as_float)
    assert torch.equal(codec.decompress(meta, list(chunks))[0], torch.from_numpy(img))
    with pytest.raises(MediaError):
        codec.compress(as_float + 0.3 / 255)  # not on the 8-bit grid
    with pytest.raises(ValueError):
        codec.compress(torch.from_numpy(img), quality=3)
    digits_like = build_codec({"codec": "lossless-pc", "patch_size": 8, "levels": 17, "hidden": 2})
    with pytest.raises(MediaError):
        digits_like.compress(torch.full((8, 8), 200))


def test_corrupt_or_mismatched_streams_raise(codec):
    img = torch.from_numpy(_smooth_images(1, 24, seed=3)[0])
    meta, chunks = codec.compress(img)
    payloads = list(chunks)
    with pytest.raises(BitstreamError):
        codec.decompress(meta, payloads[:-1])
    with pytest.raises(BitstreamError):
        codec.decompress(meta, payloads + payloads[:1])
    with pytest.raises(BitstreamError):
        codec.decompress({**meta, "patch_size": 8}, payloads)
    with pytest.raises(BitstreamError):
        codec.decompress({**meta, "width": -1}, payloads)
    with pytest.raises(BitstreamError):
        codec.decompress(meta, [payloads[0][:-4]] + payloads[1:])


def test_export_load_and_container(codec, tmp_path):
    path = save_codec(codec, tmp_path / "m.safetensors")
    loaded = load_codec(path)
    assert loaded.fingerprint() == codec.fingerprint()
    img = torch.from_numpy(_smooth_images(1, 20, seed=4)[0])
    meta, chunks = codec.compress(img)
    from neuralcodec.bitstream import StreamHeader

    header = StreamHeader(modality=codec.modality, codec_id=codec.codec_id, model_id=codec.model_id,
                          fingerprint=codec.fingerprint(), entropy_model_id=codec.entropy_model_id,
                          coder_precision=codec.coder_precision, metadata=meta)
    blob = bitstream_to_bytes(header, chunks)
    hdr, payloads = read_bitstream(blob)
    assert torch.equal(loaded.decompress(hdr.metadata, payloads)[0], img)


def test_cli_round_trip_png(codec, tmp_path, capsys):
    from PIL import Image

    from neuralcodec.cli import main

    model = save_codec(codec, tmp_path / "gray4.safetensors")
    img = _smooth_images(1, 37, seed=6)[0][:, :29]
    src = tmp_path / "in.png"
    Image.fromarray(img, mode="L").save(src)
    assert main(["encode", str(src), str(tmp_path / "x.bin"), "--model", str(model)]) == 0
    assert main(["info", "--json", str(tmp_path / "x.bin")]) == 0
    info = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert info["codec"] == "lossless-pc" and info["bits_per_pixel"] > 0
    assert main(["decode", str(tmp_path / "x.bin"), str(tmp_path / "out.png"), "--model", str(model)]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), img)
    assert main(["decode", str(tmp_path / "x.bin"), str(tmp_path / "out.jpg"), "--model", str(model)]) == 1
    assert not (tmp_path / "out.jpg").exists()
    assert main(["encode", str(src), str(tmp_path / "y.bin"), "--model", str(model), "--quality", "2"]) != 0


@pytest.mark.parametrize("name", ["pc-digits", "pc-gray16"])
def test_shipped_models_round_trip(name):
    if name not in available_models():
        pytest.skip(f"{name} is not shipped")
    model = load_codec(name)
    levels, p = model.levels, model.patch_size
    rng = np.random.default_rng(0)
    img = torch.from_numpy(rng.integers(0, levels, (1, p + 3, 2 * p - 1)).astype(np.uint8))
    meta, chunks = model.compress(img)
    assert torch.equal(model.decompress(meta, list(chunks)), img)


def test_grouped_decoding_matches(codec, monkeypatch):
    import neuralcodec.codecs.lossless.codec as codec_module

    img = _smooth_images(1, 40, seed=8)[0][None, :37, :30].copy()  # 10 x 8 patches, 5 chunks, borders masked
    meta, chunks = codec.compress(torch.from_numpy(img))
    payloads = list(chunks)
    assert len(payloads) == 5
    for group_patches in (16, 32, 48, 4096):  # 1, 2, 3 or all chunks per walk
        monkeypatch.setattr(codec_module, "DECODE_GROUP_PATCHES", group_patches)
        assert torch.equal(codec.decompress(meta, payloads), torch.from_numpy(img))
    monkeypatch.setattr(codec_module, "DECODE_GROUP_PATCHES", 32)
    with pytest.raises(BitstreamError):
        codec.decompress(meta, payloads[:3] + [payloads[3][:-4]] + payloads[4:])


def test_files_of_another_coder_version_are_refused(codec, tmp_path, capsys):
    from PIL import Image

    from neuralcodec.bitstream import StreamHeader
    from neuralcodec.cli import main
    from neuralcodec.cli.coding import decode_to_file
    from neuralcodec.entropy.circuits import CODER_VERSION

    model = save_codec(codec, tmp_path / "gray4.safetensors")
    src = tmp_path / "in.png"
    Image.fromarray(_smooth_images(1, 12, seed=1)[0], mode="L").save(src)
    assert main(["encode", str(src), str(tmp_path / "x.bin"), "--model", str(model), "--quiet"]) == 0
    header, payloads = read_bitstream((tmp_path / "x.bin").read_bytes())
    assert header.entropy_model_id == f"hclt-exact-v{CODER_VERSION}"
    old = StreamHeader(modality=header.modality, codec_id=header.codec_id, model_id=header.model_id,
                       fingerprint=header.fingerprint, entropy_model_id=f"hclt-exact-v{CODER_VERSION - 1}",
                       coder_precision=header.coder_precision, metadata=header.metadata)
    (tmp_path / "old.bin").write_bytes(bitstream_to_bytes(old, payloads))
    capsys.readouterr()
    assert main(["decode", str(tmp_path / "old.bin"), str(tmp_path / "out.png"), "--model", str(model)]) == 1
    err = capsys.readouterr().err
    assert f"hclt-exact-v{CODER_VERSION - 1}" in err and "entropy coder changed" in err
    assert not (tmp_path / "out.png").exists()
    with pytest.raises(BitstreamError, match="entropy model"):
        decode_to_file(load_codec(model), tmp_path / "old.bin", tmp_path / "out.png")


@pytest.mark.parametrize("levels,patch", [(256, 16), (256, 4), (17, 8), (2, 3), (255, 5)])
def test_med_transform_is_a_bijection(levels, patch):
    from neuralcodec.codecs.lossless.transforms import forward, inverse

    rng = np.random.default_rng(levels + patch)
    rows = rng.integers(0, levels, (40, patch * patch))
    rows[0], rows[1] = 0, levels - 1
    smooth = np.clip(np.cumsum(rng.integers(-2, 3, (40, patch * patch)), axis=1) + levels // 2, 0, levels - 1)
    for x in (rows, smooth):
        s = forward("med", x, patch, levels)
        assert s.dtype == np.int64 and s.min() >= 0 and s.max() < levels
        assert np.array_equal(inverse("med", s, patch, levels), x)
    # smooth content gives small symbols (zigzag residuals); a flat patch is all zeros but the first pixel
    flat = np.full((1, patch * patch), levels // 2)
    assert np.count_nonzero(forward("med", flat, patch, levels)) == 0
    with pytest.raises(ValueError):
        forward("dct", rows, patch, levels)


def test_med_codec_round_trip_and_likelihood(codec):
    cfg = {**codec.config, "name": "test-gray4-med", "transform": "med"}
    model = build_codec(cfg)
    imgs = _smooth_images(16, 32, seed=0)
    patches = np.concatenate([to_patches(im[None], 4)[0] for im in imgs])
    torch.manual_seed(0)
    circuit = fit_hclt(model.symbols(patches), 256, FitConfig(hidden=8, tie_emissions=True, epochs=1, batch_size=256),
                       log=None)
    model.circuit.load_state_dict(circuit.state_dict())
    model.eval()
    assert model.fingerprint() != codec.fingerprint()
    for shape in [(1, 32, 32), (3, 19, 26), (1, 1, 1), (1, 5, 3)]:
        img = _smooth_images(1, 40, seed=sum(shape))[0][None].repeat(shape[0], 0)[:, : shape[1], : shape[2]].copy()
        meta, chunks = model.compress(torch.from_numpy(img))
        assert torch.equal(model.decompress(meta, list(chunks)), torch.from_numpy(img))
    img = _smooth_images(1, 64, seed=9)[0]
    rows, _ = to_patches(img[None], 4)
    meta, chunks = model.compress(torch.from_numpy(img))
    bits = sum(len(p) for p in chunks) * 8
    nll = float(-model(torch.from_numpy(rows)).double().sum()) / np.log(2)
    assert abs(bits - nll) < 1e-3 * nll + 64 * 16
    with pytest.raises(ValueError):
        build_codec({**cfg, "transform": "wavelet"})
