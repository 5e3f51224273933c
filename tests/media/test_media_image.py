"""Image I/O: mode policy (RGB, gray, palette, alpha, 16-bit, CMYK), round trips and bad input."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from neuralcodec.errors import MediaError
from neuralcodec.media import image_to_tensor, load_image, save_image, tensor_to_image

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = REPO_ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"development media not found at {DATA}")


def _pixels(path: Path, convert: str | None = None) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert(convert) if convert else img)


def _mode(path: Path) -> str:
    with Image.open(path) as img:
        return img.mode


def random_rgb(h: int = 12, w: int = 17, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_rgb_png_exact(tmp_path: Path) -> None:
    arr = random_rgb()
    Image.fromarray(arr, "RGB").save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png")
    assert x.dtype == torch.float32 and x.shape == (3, 12, 17)
    assert np.array_equal((x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy(), arr)
    save_image(tmp_path / "b.png", x)
    assert np.array_equal(_pixels(tmp_path / "b.png"), arr)
    assert torch.equal(load_image(tmp_path / "b.png"), x)


def test_gray_and_mode_conversions(tmp_path: Path) -> None:
    arr = random_rgb()
    gray = np.asarray(Image.fromarray(arr).convert("L"))
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    g = load_image(tmp_path / "g.png")
    assert g.shape == (1, 12, 17)
    assert torch.equal(load_image(tmp_path / "g.png", "gray"), g)
    rgb = load_image(tmp_path / "g.png", mode="rgb")
    assert rgb.shape == (3, 12, 17) and torch.equal(rgb[0], rgb[2]) and torch.equal(rgb[1], g[0])
    Image.fromarray(arr, "RGB").save(tmp_path / "c.png")
    as_gray = load_image(tmp_path / "c.png", mode="gray")
    assert as_gray.shape == (1, 12, 17)
    assert torch.equal((as_gray[0] * 255).round().to(torch.uint8), torch.from_numpy(gray.copy()))
    save_image(tmp_path / "g2.png", g)
    assert _mode(tmp_path / "g2.png") == "L"
    with pytest.raises(MediaError):
        load_image(tmp_path / "c.png", mode="yuv")  # type: ignore[arg-type]


def test_bilevel_image(tmp_path: Path) -> None:
    img = Image.new("1", (5, 3), 0)
    img.putpixel((1, 1), 1)
    img.save(tmp_path / "b.png")
    x = load_image(tmp_path / "b.png")
    assert x.shape == (1, 3, 5) and x[0, 1, 1] == 1.0 and x.sum() == 1.0


def test_palette_expands_to_rgb(tmp_path: Path) -> None:
    img = Image.fromarray(random_rgb(), "RGB").quantize(colors=16)
    assert img.mode == "P"
    img.save(tmp_path / "p.png")
    x = load_image(tmp_path / "p.png")
    expected = np.asarray(img.convert("RGB"))
    assert x.shape == (3, 12, 17)
    assert np.array_equal((x * 255).round().byte().permute(1, 2, 0).numpy(), expected)


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.fromarray(random_rgb(), "RGB").quantize(colors=16)
    used = img.getpixel((0, 0))
    img.save(tmp_path / "t.png", transparency=used)
    with pytest.raises(MediaError, match="transparency"):
        load_image(tmp_path / "t.png")
    # a transparent palette entry that no pixel uses is harmless
    unused = next(i for i in range(256) if i not in set(np.asarray(img).ravel().tolist()))
    img.save(tmp_path / "u.png", transparency=unused)
    assert load_image(tmp_path / "u.png").shape == (3, 12, 17)


def test_alpha_policy(tmp_path: Path) -> None:
    arr = random_rgb()
    rgba = np.concatenate([arr, np.full((12, 17, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "opaque.png")
    x = load_image(tmp_path / "opaque.png")
    assert x.shape == (3, 12, 17)
    assert np.array_equal((x * 255).round().byte().permute(1, 2, 0).numpy(), arr)
    rgba[3, 4, 3] = 254
    Image.fromarray(rgba, "RGBA").save(tmp_path / "semi.png")
    with pytest.raises(MediaError, match=r"semi.png.*transparency \(1 of 204"):
        load_image(tmp_path / "semi.png")
    la = Image.fromarray(np.full((4, 4, 2), 255, np.uint8), "LA")
    la.save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png").shape == (1, 4, 4)


def test_sixteen_bit_png_is_refused(tmp_path: Path) -> None:
    arr = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    Image.fromarray(arr).save(tmp_path / "deep.png")
    assert _mode(tmp_path / "deep.png").startswith("I")
    with pytest.raises(MediaError, match="deep.png.*more than 8 bits"):
        load_image(tmp_path / "deep.png")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def test_sixteen_bit_rgb_png_is_refused(tmp_path: Path) -> None:
    # Pillow opens 48-bit RGB PNGs as 8-bit "RGB" (keeping the high bytes): we refuse instead.
    w, h = 3, 2
    rows = b"".join(b"\x00" + np.arange(w * 3, dtype=">u2").tobytes() for _ in range(h))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )
    (tmp_path / "rgb48.png").write_bytes(png)
    assert _mode(tmp_path / "rgb48.png") == "RGB"
    with pytest.raises(MediaError, match="rgb48.png: 16-bit PNG"):
        load_image(tmp_path / "rgb48.png")


def test_cmyk_converted_to_rgb(tmp_path: Path) -> None:
    cmyk = Image.fromarray(random_rgb(6, 7)).convert("CMYK")
    cmyk.save(tmp_path / "c.tiff")
    x = load_image(tmp_path / "c.tiff")
    assert x.shape == (3, 6, 7)
    expected = _pixels(tmp_path / "c.tiff", "RGB")
    assert np.array_equal((x * 255).round().byte().permute(1, 2, 0).numpy(), expected)


def test_one_pixel_image(tmp_path: Path) -> None:
    Image.new("RGB", (1, 1), (255, 0, 10)).save(tmp_path / "one.png")
    x = load_image(tmp_path / "one.png")
    assert x.shape == (3, 1, 1)
    assert x.flatten().tolist() == pytest.approx([1.0, 0.0, 10 / 255])


def test_exif_orientation_applied(tmp_path: Path) -> None:
    img = Image.fromarray(random_rgb(2, 3))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    img.save(tmp_path / "r.png", exif=exif)
    assert load_image(tmp_path / "r.png").shape == (3, 3, 2)


def test_truncated_and_garbage_files(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(random_rgb(64, 64), "RGB").save(buf, format="PNG")
    data = buf.getvalue()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="trunc.png"):
        load_image(tmp_path / "trunc.png")
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 2] ^= 0xFF  # flips a byte inside the compressed data (CRC mismatch)
    (tmp_path / "crc.png").write_bytes(bytes(corrupt))
    with pytest.raises(MediaError, match="crc.png"):
        load_image(tmp_path / "crc.png")
    (tmp_path / "noise.png").write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(MediaError, match="not a recognised image"):
        load_image(tmp_path / "noise.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(MediaError, match="not found"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(MediaError, match="directory"):
        load_image(tmp_path)


def test_decompression_bomb_guards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("L", (100, 100)).save(tmp_path / "big.png")
    with pytest.raises(MediaError, match="exceeds the limit of 5000"):
        load_image(tmp_path / "big.png", max_pixels=5000)
    assert load_image(tmp_path / "big.png", max_pixels=10_000).shape == (1, 100, 100)
    # Pillow's own guard (warning above the limit, error above twice the limit) also becomes MediaError
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)
    with pytest.raises(MediaError, match="decompression bomb"):
        load_image(tmp_path / "big.png", max_pixels=None)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4000)
    with pytest.raises(MediaError, match="decompression bomb"):
        load_image(tmp_path / "big.png", max_pixels=None)
    with pytest.raises(MediaError, match="big.png.*decompression bomb"):
        load_image(tmp_path / "big.png")  # default limit follows Pillow's setting


def test_save_image_rounding_clamping_and_errors(tmp_path: Path) -> None:
    x = torch.tensor([[[-0.5, 0.0, 0.4 / 255, 0.6 / 255, 1.0, 7.0]]])
    save_image(tmp_path / "r.png", x)
    assert _pixels(tmp_path / "r.png").tolist() == [[0, 0, 0, 1, 255, 255]]
    bad = torch.zeros(3, 2, 2)
    bad[1, 1, 1] = float("nan")
    with pytest.raises(MediaError, match="non-finite"):
        save_image(tmp_path / "n.png", bad)
    with pytest.raises(MediaError, match="shape"):
        save_image(tmp_path / "s.png", torch.zeros(2, 4, 4))
    with pytest.raises(MediaError, match="shape"):
        save_image(tmp_path / "s.png", torch.zeros(4, 4))
    with pytest.raises(MediaError, match="extension"):
        save_image(tmp_path / "x.unknownext", torch.zeros(3, 4, 4))
    with pytest.raises(MediaError):
        save_image(tmp_path / "missing_dir" / "x.png", torch.zeros(3, 4, 4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.png"]


def test_other_formats_and_helpers(tmp_path: Path) -> None:
    x = torch.rand(3, 8, 9)
    save_image(tmp_path / "a.bmp", x)
    assert torch.allclose(load_image(tmp_path / "a.bmp"), x, atol=0.5 / 255 + 1e-6)
    save_image(tmp_path / "a.jpg", x, quality=95)
    assert load_image(tmp_path / "a.jpg").shape == (3, 8, 9)
    img = tensor_to_image(x)
    assert img.mode == "RGB" and img.size == (9, 8)
    assert torch.allclose(image_to_tensor(img), x, atol=0.5 / 255 + 1e-6)


@needs_data
def test_dev_images() -> None:
    cam = load_image(DATA / "images" / "skimage" / "camera.png")
    assert cam.shape == (1, 512, 512)
    astro = load_image(DATA / "images" / "skimage" / "astronaut.png")
    assert astro.shape == (3, 512, 512)
    for t in (cam, astro):
        assert 0.0 <= t.min().item() and t.max().item() <= 1.0 and t.std().item() > 0.1
