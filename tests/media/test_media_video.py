"""y4m reading/writing (streaming, random access, validation) and YUV <-> RGB conversion."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from neuralcodec.errors import MediaError
from neuralcodec.media import (
    Y4MReader,
    Y4MWriter,
    YUVFrame,
    load_image,
    parse_y4m_header,
    rgb_to_yuv,
    rgb_to_yuv420_tensor,
    rgb_to_yuv444_tensor,
    tensors_to_yuv_frame,
    yuv420_to_rgb_tensor,
    yuv444_to_rgb_tensor,
    yuv_frame_to_tensors,
    yuv_to_rgb,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = REPO_ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"development media not found at {DATA}")

DEV_VIDEOS = {
    "bbb_640x360_25fps_132f.y4m": (640, 360, (25, 1), 132),
    "cisco_vt2people_320x192_12fps_9f.y4m": (320, 192, (12, 1), 9),
    "mobile_calendar_cif_25fps_30f.y4m": (352, 288, (25, 1), 30),
    "office_webcam_640x360_25fps_19f.y4m": (640, 360, (25, 1), 19),
}


def random_frame(w: int, h: int, chroma: str = "420", seed: int = 0) -> YUVFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 256, (h, w), dtype=np.uint8)
    if chroma == "mono":
        return YUVFrame(y, None, None, "mono")
    ch, cw = (h // 2, w // 2) if chroma == "420" else (h, w)
    u = rng.integers(0, 256, (ch, cw), dtype=np.uint8)
    v = rng.integers(0, 256, (ch, cw), dtype=np.uint8)
    return YUVFrame(y, u, v, chroma)  # type: ignore[arg-type]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return 10 * math.log10(1.0 / mse)


def write_frames(path: Path, frames: list[YUVFrame], fps=(30000, 1001)) -> None:
    f0 = frames[0]
    with Y4MWriter(path, f0.width, f0.height, fps, f0.chroma) as w:
        for f in frames:
            w.write(f)


# ----------------------------------------------------------------------------- dev videos


@needs_data
@pytest.mark.parametrize("name", sorted(DEV_VIDEOS))
def test_dev_video_headers_and_first_frames(name: str) -> None:
    w, h, fps, n = DEV_VIDEOS[name]
    with Y4MReader(DATA / "video" / name) as r:
        assert (r.width, r.height, r.fps, r.chroma) == (w, h, fps, "420")
        assert r.num_frames == n and len(r) == n  # from the file size alone
        it = iter(r)
        first, second = next(it), next(it)
        assert first.y.shape == (h, w) and first.u.shape == (h // 2, w // 2)
        assert first == r.read_frame(0) and second == r.read_frame(1)
        last = r.read_frame(-1)
        assert last.y.shape == (h, w)
        rgb = yuv_to_rgb(first)
        assert rgb.shape == (3, h, w) and 0.0 <= rgb.min().item() and rgb.max().item() <= 1.0
        # RGB -> YUV of the decoded frame lands back near the original planes
        again = rgb_to_yuv(rgb, "420")
        assert np.abs(again.y.astype(int) - first.y.astype(int)).mean() < 1.5
        assert np.abs(again.u.astype(int) - first.u.astype(int)).mean() < 1.5


@needs_data
def test_dev_video_random_access_matches_sequential() -> None:
    with Y4MReader(DATA / "video" / "cisco_vt2people_320x192_12fps_9f.y4m") as r:
        frames = list(r)
        assert len(frames) == 9
        assert r.read_frame(5) == frames[5] and r.read_frame(8) == frames[8]
        assert frames[0] != frames[8]
        with pytest.raises(IndexError):
            r.read_frame(9)


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("chroma", ["420", "444", "mono"])
def test_write_read_round_trip_exact(tmp_path: Path, chroma: str) -> None:
    frames = [random_frame(24, 10, chroma, seed=i) for i in range(4)]
    path = tmp_path / f"v_{chroma}.y4m"
    write_frames(path, frames)
    header = path.read_bytes().split(b"\n", 1)[0]
    assert header.startswith(b"YUV4MPEG2 W24 H10 F30000:1001 Ip A1:1 C")
    with Y4MReader(path) as r:
        assert (r.width, r.height, r.fps, r.chroma, r.num_frames) == (24, 10, (30000, 1001), chroma, 4)
        assert r.header.color_range == "limited"
        back = list(r)
        assert back == frames
        assert r.read_frame(2) == frames[2]
    assert path.stat().st_size == len(header) + 1 + 4 * (6 + r.frame_bytes)


def test_odd_size_444_and_empty_stream(tmp_path: Path) -> None:
    write_frames(tmp_path / "odd.y4m", [random_frame(7, 5, "444")])
    with Y4MReader(tmp_path / "odd.y4m") as r:
        assert r.num_frames == 1 and r.read_frame(0).u.shape == (5, 7)
    with Y4MWriter(tmp_path / "none.y4m", 8, 8):
        pass
    with Y4MReader(tmp_path / "none.y4m") as r:
        assert r.num_frames == 0 and list(r) == []


def test_writer_is_atomic_and_validates(tmp_path: Path) -> None:
    path = tmp_path / "v.y4m"
    with pytest.raises(RuntimeError):
        with Y4MWriter(path, 8, 8) as w:
            w.write(random_frame(8, 8))
            raise RuntimeError("interrupted")
    assert not path.exists() and list(tmp_path.iterdir()) == []
    with Y4MWriter(path, 8, 8) as w:
        with pytest.raises(MediaError, match="16x8 420 frame"):
            w.write(random_frame(16, 8))
        with pytest.raises(MediaError, match="444"):
            w.write(random_frame(8, 8, "444"))
        w.write(random_frame(8, 8))
    with Y4MReader(path) as r:
        assert r.num_frames == 1
    with pytest.raises(MediaError, match="even"):
        Y4MWriter(tmp_path / "o.y4m", 7, 8)
    with pytest.raises(MediaError, match="frame rate"):
        Y4MWriter(tmp_path / "o.y4m", 8, 8, fps=(0, 1))
    with pytest.raises(MediaError, match="out of range"):
        Y4MWriter(tmp_path / "o.y4m", 20000, 8)
    with pytest.raises(MediaError, match="chroma"):
        Y4MWriter(tmp_path / "o.y4m", 8, 8, chroma="422")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.y4m"]


def test_yuvframe_validation() -> None:
    y = np.zeros((4, 6), np.uint8)
    with pytest.raises(MediaError, match="shape"):
        YUVFrame(y, np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))
    with pytest.raises(MediaError, match="uint8"):
        YUVFrame(y.astype(np.int16), None, None, "mono")
    with pytest.raises(MediaError, match="even"):
        YUVFrame(np.zeros((3, 6), np.uint8), np.zeros((1, 3), np.uint8), np.zeros((1, 3), np.uint8))


# ----------------------------------------------------------------------------- damaged files


def _small_video(tmp_path: Path, n: int = 4) -> tuple[Path, bytes, int]:
    path = tmp_path / "ok.y4m"
    write_frames(path, [random_frame(8, 6, seed=i) for i in range(n)], fps=(25, 1))
    data = path.read_bytes()
    return path, data, data.index(b"\n") + 1


def test_truncated_picture_data(tmp_path: Path) -> None:
    _, data, start = _small_video(tmp_path)
    record = 6 + 8 * 6 * 3 // 2
    bad = tmp_path / "trunc.y4m"
    bad.write_bytes(data[: start + 3 * record + 6 + 10])  # frame 3 has a FRAME line but 10 of 72 bytes
    r = Y4MReader(bad)
    with pytest.raises(MediaError, match=r"trunc.y4m: truncated in frame 3 \(expected 72 bytes.*10 present"):
        _ = r.num_frames
    got = []
    with pytest.raises(MediaError, match="truncated in frame 3"):
        for frame in r:
            got.append(frame)
    assert len(got) == 3
    r.close()


def test_truncated_frame_line(tmp_path: Path) -> None:
    _, data, start = _small_video(tmp_path)
    record = 6 + 72
    bad = tmp_path / "t2.y4m"
    bad.write_bytes(data[: start + 2 * record + 3])  # ends inside "FRAME"
    with Y4MReader(bad) as r, pytest.raises(MediaError, match="truncated in frame 2"):
        _ = r.num_frames


def test_missing_frame_marker(tmp_path: Path) -> None:
    _, data, start = _small_video(tmp_path)
    record = 6 + 72
    broken = bytearray(data)
    broken[start + record : start + record + 5] = b"FRAMX"
    bad = tmp_path / "m.y4m"
    bad.write_bytes(bytes(broken))
    with Y4MReader(bad) as r:
        assert r.read_frame(0).y.shape == (6, 8)  # size is consistent, frame 0 is fine
        with pytest.raises(MediaError, match="missing FRAME marker at frame 1"):
            list(r)
        with pytest.raises(MediaError, match="missing FRAME marker at frame 1"):
            r.read_frame(1)


def test_frame_parameters_of_varying_length(tmp_path: Path) -> None:
    path, data, start = _small_video(tmp_path, n=3)
    header = data[:start]
    with Y4MReader(path) as r:
        frames = list(r)
    lines = [b"FRAME Ip XFOO=1\n", b"FRAME\n", b"FRAME XLONGERPARAMETER=abc\n"]
    body = b"".join(line + f.y.tobytes() + f.u.tobytes() + f.v.tobytes() for line, f in zip(lines, frames))
    odd = tmp_path / "params.y4m"
    odd.write_bytes(header + body)
    with Y4MReader(odd) as r:
        assert r.num_frames == 3
        assert r.read_frame(2) == frames[2] and r.read_frame(1) == frames[1]
        seq = list(r)
        assert seq == frames
        assert seq[0].params == ("Ip", "XFOO=1") and seq[1].params == ()


BAD_HEADERS = [
    (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a YUV4MPEG2"),
    (b"YUV4MPEG2 H10 F25:1 C420\n", "width"),
    (b"YUV4MPEG2 W0 H10 F25:1\n", "out of range"),
    (b"YUV4MPEG2 W20000 H10 F25:1\n", "out of range"),
    (b"YUV4MPEG2 Wabc H10 F25:1\n", "malformed width"),
    (b"YUV4MPEG2 W11 H10 F25:1 C420jpeg\n", "even"),
    (b"YUV4MPEG2 W10 H10 F25:1 C422\n", "C422"),
    (b"YUV4MPEG2 W10 H10 F25:1 C420p10 XYSCSS=420P10\n", "8 bits"),
    (b"YUV4MPEG2 W10 H10 F25:1 Cmono16\n", "8 bits"),
    (b"YUV4MPEG2 W10 H10 F25:1 It\n", "interlaced"),
    (b"YUV4MPEG2 W10 H10 F0:1\n", "frame rate"),
    (b"YUV4MPEG2 W10 H10 F25\n", "malformed F"),
    (b"YUV4MPEG2 W10 H10\n", "frame rate"),
    (b"YUV4MPEG2 W10 W10 H10 F25:1\n", "repeats"),
    (b"YUV4MPEG2 W10 H10 F25:1", "not terminated"),
    (b"YUV4MPEG2 W10 H10 F25:1 X" + b"a" * 5000, "too long"),
    (b"YUV4MPEG2 W10 H10 F25:1 X\xff\n", "non-ASCII"),
    (b"YUV4MPEG2W10 H10 F25:1\n", "malformed"),
    (b"", "empty"),
]


@pytest.mark.parametrize("content,message", BAD_HEADERS)
def test_bad_headers(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.y4m"
    path.write_bytes(content + (b"FRAME\n" + bytes(150) if content.endswith(b"\n") else b""))
    with pytest.raises(MediaError, match=f"bad.y4m.*{message}"):
        Y4MReader(path)


def test_header_parsing_details() -> None:
    h = parse_y4m_header(b"YUV4MPEG2 W640 H360 F25:1 I? A1:1 C420mpeg2 XYSCSS=420MPEG2 XCOLORRANGE=FULL Zz\n")
    assert (h.width, h.height, h.fps, h.chroma, h.chroma_tag, h.interlace) == (640, 360, (25, 1), "420", "420mpeg2", "?")
    assert h.color_range == "full" and h.extra == ("Zz",) and h.frame_bytes == 640 * 360 * 3 // 2
    assert parse_y4m_header(b"YUV4MPEG2 W2 H2 F1:1").chroma == "420"  # C defaults to 4:2:0
    assert parse_y4m_header(b"YUV4MPEG2 W3 H3 F1:1 C444").frame_bytes == 27
    assert parse_y4m_header(b"YUV4MPEG2 W3 H3 F1:1 Cmono").frame_bytes == 9


def test_reader_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not found"):
        Y4MReader(tmp_path / "nope.y4m")
    with pytest.raises(MediaError, match="directory"):
        Y4MReader(tmp_path)


# ----------------------------------------------------------------------------- colour


def test_reference_colours_bt601_limited() -> None:
    rgb = torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0, 1.0]])
    yuv = rgb_to_yuv444_tensor(rgb[:, None, :]) * 255  # [3, 1, 5]
    y, u, v = yuv[:, 0].round().int().tolist()
    assert y == [16, 235, 81, 145, 41]
    assert u == [128, 128, 90, 54, 240]
    assert v == [128, 128, 240, 34, 110]
    full = rgb_to_yuv444_tensor(rgb[:, None, :], full_range=True) * 255
    assert full[0, 0].round().int().tolist() == [0, 255, 76, 150, 29]
    for matrix, full_range in [("bt601", False), ("bt601", True), ("bt709", False)]:
        back = yuv444_to_rgb_tensor(rgb_to_yuv444_tensor(rgb[:, None, :], matrix, full_range), matrix, full_range)
        assert torch.allclose(back[:, 0], rgb, atol=1e-6)


@needs_data
def test_rgb_yuv_rgb_psnr_on_photo() -> None:
    rgb = load_image(DATA / "images" / "skimage" / "astronaut.png")[:, :256, :256]
    f444 = rgb_to_yuv(rgb, "444")
    f420 = rgb_to_yuv(rgb, "420")
    assert f420.u.shape == (128, 128)
    assert psnr(yuv_to_rgb(f444), rgb) > 42.0  # only 8-bit rounding of YUV
    assert psnr(yuv_to_rgb(f420), rgb) > 32.0  # plus chroma subsampling
    gray = yuv_to_rgb(rgb_to_yuv(rgb, "mono"))
    assert torch.allclose(gray[0], gray[1]) and torch.allclose(gray[1], gray[2])


def test_rgb_yuv_rgb_smooth_image_420() -> None:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 48), indexing="ij")
    rgb = torch.stack([xx, yy, 0.5 * (xx + yy)]) * 0.8 + 0.1
    assert psnr(yuv_to_rgb(rgb_to_yuv(rgb, "420")), rgb) > 40.0


def test_batch_tensor_conversions_match_frame_versions() -> None:
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(2, 3, 8, 12, generator=g, requires_grad=True)
    y, uv = rgb_to_yuv420_tensor(rgb)
    assert y.shape == (2, 1, 8, 12) and uv.shape == (2, 2, 4, 6)
    back = yuv420_to_rgb_tensor(y, uv)
    assert back.shape == (2, 3, 8, 12)
    back.sum().backward()  # differentiable, usable inside codecs
    assert rgb.grad is not None and torch.isfinite(rgb.grad).all()
    frame = rgb_to_yuv(rgb[1].detach(), "420")
    fy, fuv = yuv_frame_to_tensors(frame)
    assert (fy - y[1].detach()).abs().max().item() <= 0.5 / 255 + 1e-6
    assert (fuv - uv[1].detach()).abs().max().item() <= 0.5 / 255 + 1e-6
    assert tensors_to_yuv_frame(fy, fuv) == frame
    assert torch.allclose(yuv_to_rgb(frame), yuv420_to_rgb_tensor(fy[None], fuv[None])[0], atol=1e-6)
    with pytest.raises(MediaError):
        yuv420_to_rgb_tensor(y, uv[:, :, :3])
    with pytest.raises(MediaError):
        rgb_to_yuv420_tensor(torch.rand(1, 3, 5, 6))
