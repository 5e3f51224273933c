"""`codec encode/info/decode` on images with an exported model, and the bad-input policy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_codec
from PIL import Image

from neuralcodec.cli import main
from neuralcodec.codecs.registry import load_codec, save_codec
from neuralcodec.media import load_image


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_codec(make_codec(), path)
    return path


def _photo(path, mode="RGB", size=(70, 45)):
    rng = np.random.default_rng(0)
    arr = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    Image.fromarray(arr, "RGB").convert(mode).save(path)
    return path


def test_encode_info_decode(model_path, tmp_path, capsys):
    src = _photo(tmp_path / "in.png")
    out, dec = tmp_path / "out.bin", tmp_path / "dec.png"
    assert main(["encode", str(src), str(out), "--model", str(model_path), "--quality", "2", "--quiet"]) == 0
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["metadata"]["width"] == 70 and info["metadata"]["height"] == 45
    assert info["metadata"]["quality"] == 2 and info["metadata"]["channels"] == 3
    assert info["bits_per_pixel"] == pytest.approx(out.stat().st_size * 8 / (70 * 45))
    assert main(["decode", str(out), str(dec), "--model", str(model_path), "--quiet"]) == 0
    assert load_image(dec).shape == (3, 45, 70)
    # the exported model reloads to the same fingerprint and decodes to the same pixels
    codec = load_codec(model_path)
    again = codec.decompress(*_read(out))
    assert np.array_equal(np.asarray(Image.open(dec)), (again.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    # --no-postfilter: the file has no filter entry (and never more bytes than its payloads need)
    plain = tmp_path / "plain.bin"
    assert main(["encode", str(src), str(plain), "--model", str(model_path), "--quality", "2", "--no-postfilter",
                 "--quiet"]) == 0
    assert main(["info", str(plain), "--json"]) == 0
    assert "filter" not in json.loads(capsys.readouterr().out)["metadata"]
    assert len(_read(plain)[1]) == 2 and len(_read(out)[1]) == 2 + ("filter" in info["metadata"])


def _read(path):
    from neuralcodec.bitstream import read_bitstream

    header, chunks = read_bitstream(path)
    return header.metadata, chunks


def test_target_bpp_and_rejected_options(model_path, tmp_path, capsys):
    src = _photo(tmp_path / "in.png")
    out = tmp_path / "out.bin"
    assert main(["encode", str(src), str(out), "--model", str(model_path), "--target-bpp", "2.0", "--quiet"]) == 0
    assert main(["encode", str(src), str(out), "--model", str(model_path), "--bitrate", "6"]) != 0
    assert "--bitrate" in capsys.readouterr().err


def test_bad_inputs(model_path, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(_photo(tmp_path / "ok.png").read_bytes()[:60])
    assert main(["encode", str(corrupt), str(tmp_path / "a.bin"), "--model", str(model_path)]) != 0
    assert "corrupt" in capsys.readouterr().err
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(deep)
    assert main(["encode", str(deep), str(tmp_path / "b.bin"), "--model", str(model_path)]) != 0
    assert "8-bit" in capsys.readouterr().err
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "b.bin").exists()
    # CMYK is converted to RGB; a 1x1 image and a grayscale image code correctly
    for name, mode, size in (("cmyk.jpg", "CMYK", (33, 20)), ("one.png", "RGB", (1, 1)), ("gray.png", "L", (20, 9))):
        src = _photo(tmp_path / name, mode, size)
        out, dec = tmp_path / f"{name}.bin", tmp_path / f"{name}.png"
        assert main(["encode", str(src), str(out), "--model", str(model_path), "--quiet"]) == 0
        assert main(["decode", str(out), str(dec), "--model", str(model_path), "--quiet"]) == 0
        channels = 1 if mode == "L" else 3
        assert load_image(dec).shape == (channels, size[1], size[0])


def test_encode_with_latent_refinement(model_path, tmp_path, capsys):
    src = _photo(tmp_path / "in.png")
    out, dec = tmp_path / "out.bin", tmp_path / "dec.png"
    args = ["encode", str(src), str(out), "--model", str(model_path), "--quality", "2", "--quiet"]
    assert main(args + ["--steps", "3"]) == 0
    assert main(["decode", str(out), str(dec), "--model", str(model_path), "--quiet"]) == 0
    assert load_image(dec).shape == (3, 45, 70)
    capsys.readouterr()
    bad = tmp_path / "bad.bin"
    assert main(["encode", str(src), str(bad), "--model", str(model_path), "--steps", "-2"]) != 0
    assert "--steps" in capsys.readouterr().err and not bad.exists()
