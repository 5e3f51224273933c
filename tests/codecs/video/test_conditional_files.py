"""`codec encode/info/decode` on y4m files with the conditional video codec; bad input; bounded memory."""

from __future__ import annotations

import json
import weakref

import numpy as np
import pytest
import torch
from conditional_helpers import make_codec, moving_clip, write_y4m

from neuralcodec.bitstream import read_bitstream
from neuralcodec.cli import main
from neuralcodec.codecs.registry import load_codec, save_codec
from neuralcodec.errors import MediaError
from neuralcodec.media import Y4MReader, yuv_to_rgb


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny-video.safetensors"
    save_codec(make_codec(), path)
    return path


def _read_rgb(path):
    with Y4MReader(path) as reader:
        return torch.stack([yuv_to_rgb(f) for f in reader])


def test_encode_info_decode_matches_eval_forward(model_path, tmp_path, capsys):
    src = write_y4m(tmp_path / "in.y4m", moving_clip(5, 48, 64), fps=(12, 1))
    out, dec = tmp_path / "out.bin", tmp_path / "dec.y4m"
    assert main(["encode", str(src), str(out), "--model", str(model_path), "--quality", "3", "--gop", "3",
                 "--quiet"]) == 0
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    meta = info["metadata"]
    assert (meta["width"], meta["height"], meta["num_frames"], meta["fps_num"]) == (64, 48, 5, 12)
    assert meta["quality"] == 3 and meta["gop"] == 3 and info["chunks"] == 5
    assert info["bits_per_pixel"] == pytest.approx(out.stat().st_size * 8 / (64 * 48 * 5))
    assert info["duration_s"] == pytest.approx(5 / 12)
    assert main(["decode", str(out), str(dec), "--model", str(model_path), "--quiet"]) == 0
    codec = load_codec(model_path)
    types = [chunk[0] == 0 for chunk in read_bitstream(out)[1]]  # the adaptive encoder's frame types
    assert types[0] and all(any(types[max(0, t - 2):t + 1]) for t in range(5))  # intra at least every --gop frames
    with torch.no_grad():
        ref = codec(_read_rgb(src)[None], 3.0, intra=types).x_hat[0].clamp(0, 1)
    with Y4MReader(dec) as reader:
        assert (reader.width, reader.height, reader.num_frames, reader.chroma) == (64, 48, 5, "420")
    from neuralcodec.media import rgb_to_yuv

    with Y4MReader(dec) as reader:
        for frame, expected in zip(reader, ref):
            want = rgb_to_yuv(expected, "420")
            assert np.array_equal(frame.y, want.y) and np.array_equal(frame.u, want.u)
    part = tmp_path / "part.y4m"
    assert main(["decode", str(out), str(part), "--model", str(model_path), "--frames", "1:3", "--quiet"]) == 0
    with Y4MReader(part) as reader, Y4MReader(dec) as full:
        assert reader.num_frames == 2 and reader.read_frame(0) == full.read_frame(1)


@pytest.mark.parametrize("chroma,size", [("444", (33, 21)), ("mono", (40, 30))])
def test_odd_sizes_444_and_mono_round_trip(model_path, tmp_path, chroma, size):
    src = write_y4m(tmp_path / "in.y4m", moving_clip(2, size[1], size[0]), chroma=chroma)
    out, dec = tmp_path / "o.bin", tmp_path / "d.y4m"
    assert main(["encode", str(src), str(out), "--model", str(model_path), "--quiet"]) == 0
    assert main(["decode", str(out), str(dec), "--model", str(model_path), "--quiet"]) == 0
    with Y4MReader(dec) as reader:
        assert (reader.width, reader.height, reader.chroma, reader.num_frames) == (size[0], size[1], chroma, 2)


def _header(tmp_path, header: bytes, frame_bytes: int, frames: int = 2):
    path = tmp_path / "bad.y4m"
    path.write_bytes(header + (b"FRAME\n" + bytes(frame_bytes)) * frames)
    return path


@pytest.mark.parametrize("header,frame_bytes,message", [
    (b"YUV4MPEG2 W32 H32 F25:1 C422\n", 32 * 32 * 2, "4:2:0, 4:4:4"),
    (b"YUV4MPEG2 W32 H32 F25:1 C420p10\n", 32 * 32 * 3, "8 bits"),
    (b"YUV4MPEG2 W33 H32 F25:1 C420jpeg\n", 33 * 32 + 2 * 16 * 16, "even width and height"),
])
def test_unsupported_input_is_a_clear_error_and_leaves_no_file(model_path, tmp_path, capsys, header, frame_bytes,
                                                                 message):
    src = _header(tmp_path, header, frame_bytes)
    out = tmp_path / "out.bin"
    assert main(["encode", str(src), str(out), "--model", str(model_path)]) != 0
    assert message in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".out.bin*"))


def test_truncated_y4m_fails_without_output(model_path, tmp_path, capsys):
    src = write_y4m(tmp_path / "in.y4m", moving_clip(3, 32, 32))
    data = src.read_bytes()
    src.write_bytes(data[: len(data) - 100])
    out = tmp_path / "out.bin"
    assert main(["encode", str(src), str(out), "--model", str(model_path)]) != 0
    assert "truncated" in capsys.readouterr().err
    assert not out.exists()
    codec = load_codec(model_path)
    with pytest.raises(MediaError, match="truncated"):
        metadata, chunks = codec.compress_file(src)
        list(chunks)


def test_truncated_stream_leaves_no_decoded_file(model_path, tmp_path, capsys):
    src = write_y4m(tmp_path / "in.y4m", moving_clip(3, 32, 32))
    out, dec = tmp_path / "out.bin", tmp_path / "dec.y4m"
    assert main(["encode", str(src), str(out), "--model", str(model_path), "--quiet"]) == 0
    out.write_bytes(out.read_bytes()[:-30])
    assert main(["decode", str(out), str(dec), "--model", str(model_path)]) != 0
    assert not dec.exists()


def test_streaming_keeps_no_frames_alive(model_path):
    """Encode and decode hold one frame of state: earlier frames are released as the stream advances."""
    codec = load_codec(model_path)
    alive: list[weakref.ref] = []

    def frames(n):
        for t in range(n):
            frame = moving_clip(1, 64, 64, seed=t)[0]
            alive.append(weakref.ref(frame))
            yield frame

    n = 16
    metadata = codec._metadata(64, 64, n, (25, 1), "444", 2.0, 8)
    chunks = []
    for payload in codec.encode_frames(frames(n), 2.0, 8, n):
        chunks.append(payload)
        assert sum(r() is not None for r in alive) <= 2
    decoded_alive = []
    for frame in codec.decode_frames(metadata, iter(chunks)):
        decoded_alive.append(weakref.ref(frame))
        del frame
        assert sum(r() is not None for r in decoded_alive) <= 1


@pytest.mark.slow
def test_long_clip_memory_is_bounded(model_path, tmp_path):
    """300 frames at 256x256 through the CLI path: peak RSS grows far less than the video's size."""
    import resource

    codec = load_codec(model_path)
    path = tmp_path / "long.y4m"
    from neuralcodec.media import Y4MWriter, rgb_to_yuv

    with Y4MWriter(path, 256, 256, (25, 1), "420") as writer:
        for t in range(300):
            writer.write(rgb_to_yuv(moving_clip(1, 256, 256, seed=t % 7)[0]))
    from neuralcodec.cli.coding import decode_to_file, encode_to_file

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    encode_to_file(codec, path, tmp_path / "long.bin")
    decode_to_file(codec, tmp_path / "long.bin", tmp_path / "dec.y4m")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    video_mb = 300 * 256 * 256 * 3 * 4 / 2**20  # the clip as float RGB
    assert grown_mb < video_mb / 4
