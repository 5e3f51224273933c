"""NeRV video codec: fit quality, exact decoding, bitstream size vs estimate, random access, bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from neuralcodec.bitstream import bitstream_to_bytes, read_bitstream
from neuralcodec.codecs.registry import load_codec
from neuralcodec.codecs.video.nerv import NervVideoCodec
from neuralcodec.codecs.video.nerv.codec import parse_frames, render_frame
from neuralcodec.codecs.video.nerv.planes import VideoPlanes, read_y4m
from neuralcodec.errors import BitstreamError, MediaError, UsageError

SIZE, FRAMES = 32, 4


def tiny_clip(shared_data) -> VideoPlanes:
    """A 32x32 crop of 4 frames of the Cisco clip (textured: a face and background)."""
    video = read_y4m(shared_data / "video" / "cisco_vt2people_320x192_12fps_9f.y4m", max_frames=FRAMES)
    y0, x0 = 64, 128
    return VideoPlanes(video.y[:, :, y0:y0 + SIZE, x0:x0 + SIZE].contiguous(),
                       video.uv[:, :, y0 // 2:(y0 + SIZE) // 2, x0 // 2:(x0 + SIZE) // 2].contiguous(),
                       video.chroma, video.fps)


def psnr_y(frames, video: VideoPlanes) -> float:
    ref = video.y[:, 0].numpy() * 255
    dec = np.stack([f.y for f in frames]).astype(np.float64)
    return 10 * math.log10(255**2 / float(np.mean((dec - ref) ** 2)))


@pytest.fixture(scope="module")
def encoded(shared_data_module):
    video = tiny_clip(shared_data_module)
    codec = NervVideoCodec({"progress": False})
    torch.set_num_threads(2)
    metadata, chunks = codec.compress(video, target_bpp=16.0, steps=120, gop=2)
    data = bitstream_to_bytes(codec.stream_header(metadata), list(chunks))
    return codec, video, data


@pytest.fixture(scope="module")
def shared_data_module(shared_data):
    """The session-wide ``shared_data`` fixture, usable from module-scoped fixtures."""
    return shared_data


def test_fit_beats_broken_models(encoded):
    codec, video, data = encoded
    header, chunks = read_bitstream(data)
    frames = codec.decompress(header.metadata, chunks)
    assert len(frames) == FRAMES
    fitted = psnr_y(frames, video)
    # a "broken" model that learned nothing useful: each frame replaced by its mean, or by another frame
    flat = 10 * math.log10(1 / float(((video.y - video.y.mean(dim=(1, 2, 3), keepdim=True)) ** 2).mean()))
    assert fitted > 24.0 and fitted > flat + 8.0, (fitted, flat)


def test_decoded_frames_equal_quantized_forward(encoded):
    codec, video, data = encoded
    header, chunks = read_bitstream(data)
    frames = codec.decompress(header.metadata, chunks)
    report = codec.last_encode
    assert len(report.groups) == 2  # gop=2: two NIRVANA groups, one chunk each
    expected = [render_frame(g.net, i - g.start, SIZE, SIZE, "420") for g in report.groups for i in range(g.start, g.stop)]
    assert all(a == b for a, b in zip(frames, expected, strict=True))


def test_file_size_within_estimate(encoded):
    codec, _, data = encoded
    estimate = codec.last_encode.estimate_bytes
    assert len(data) <= estimate * 1.01, (len(data), estimate)
    assert len(data) >= estimate - 1


def test_random_access_matches_full_decode(encoded):
    codec, _, data = encoded
    header, chunks = read_bitstream(data)
    full = codec.decompress(header.metadata, chunks)
    assert codec.decompress(header.metadata, chunks, frames="1:3") == full[1:3]
    # frames of the second group decode without a decodable first chunk
    broken = [b"\x00" * 4] + list(chunks[1:])
    assert codec.decompress(header.metadata, broken, frames="2:4") == full[2:4]
    with pytest.raises(BitstreamError):
        codec.decompress(header.metadata, broken, frames="0:1")


def test_corrupt_and_truncated_streams(encoded):
    codec, _, data = encoded
    header, chunks = read_bitstream(data)
    with pytest.raises(BitstreamError):
        codec.decompress(header.metadata, chunks[:1])
    with pytest.raises(BitstreamError):
        codec.decompress(header.metadata, [chunks[0][:10], chunks[1]])
    for key, value in [("nerv_version", 99), ("width", 1 << 20), ("channels", "1000000,8"),
                       ("num_frames", 0), ("strides", "x"), ("embed_h", 1)]:
        bad = dict(header.metadata)
        bad[key] = value
        with pytest.raises(BitstreamError):
            codec.decompress(bad, chunks)
    bad = dict(header.metadata)
    del bad["group_size"]
    with pytest.raises(BitstreamError):
        codec.parse_metadata(bad)


def test_options_and_inputs_rejected(shared_data_module):
    codec = load_codec("nerv")
    video = tiny_clip(shared_data_module)
    for kwargs in ({"quality": 3}, {"target_bpp": -1.0}, {"steps": 0}, {"gop": 0}):
        with pytest.raises(UsageError):
            codec.compress(video, **kwargs)
    with pytest.raises(MediaError):
        codec.compress(torch.zeros(4, 3, 8, 8))
    with pytest.raises(UsageError):
        parse_frames("3:1", 4)
    with pytest.raises(UsageError):
        parse_frames("0:9", 4)
    assert parse_frames(":2", 4) == (0, 2) and parse_frames("1:", 4) == (1, 4)


def test_unreachable_target_bpp_warns(shared_data_module):
    video = tiny_clip(shared_data_module)
    codec = NervVideoCodec({"progress": False})
    with pytest.warns(UserWarning, match="smallest NeRV network"):
        codec.compress(video, target_bpp=0.05, steps=1, gop=2)  # fitting starts only when chunks are read
    assert codec.last_encode.planned_bpp > 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codec.compress(video, target_bpp=16.0, steps=1, gop=2)
    assert codec.last_encode.planned_bpp <= 16.0
