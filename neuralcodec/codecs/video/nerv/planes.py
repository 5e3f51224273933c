"""Video as float planes for fitting, and the one mapping from network output to 8-bit frames.

The network predicts full-resolution Y, U, V code values / 255 (``[B, 3, H, W]``, or ``[B, 1, H, W]``
for mono). The fitting loss and the decoder both go through :func:`predicted_planes`, which
averages 2x2 chroma blocks for 4:2:0, so the fit minimises the error of exactly the samples that
are written; :func:`to_yuv_frames` rounds them to the 8-bit planes of the output file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from neuralcodec.errors import MediaError
from neuralcodec.media.video import YUVFrame, Y4MReader, yuv_frame_to_tensors

#: Frames a single encode reads at once (the float planes live in memory while fitting).
MAX_FRAMES = 10_000
MAX_PIXELS_PER_FRAME = 1 << 26


@dataclass
class VideoPlanes:
    """``y [T, 1, H, W]``, ``uv [T, 2, Hc, Wc]`` (None for mono), float32 code values / 255."""

    y: Tensor
    uv: Tensor | None
    chroma: str = "420"
    fps: tuple[int, int] = (25, 1)
    color_range: str | None = None

    def __post_init__(self) -> None:
        if self.y.dim() != 4 or self.y.shape[1] != 1 or self.y.shape[0] < 1:
            raise MediaError(f"luma must be [T, 1, H, W] with T >= 1, got {tuple(self.y.shape)}")
        if self.chroma not in ("420", "444", "mono"):
            raise MediaError(f"unsupported chroma {self.chroma!r}")
        t, _, h, w = self.y.shape
        if self.chroma == "mono":
            if self.uv is not None:
                raise MediaError("mono video has no chroma planes")
        else:
            expected = (t, 2, h // 2, w // 2) if self.chroma == "420" else (t, 2, h, w)
            if self.uv is None or tuple(self.uv.shape) != expected:
                raise MediaError(f"chroma planes must be {expected} for {self.chroma}")
        if not bool(torch.isfinite(self.y).all()) or (self.uv is not None and not bool(torch.isfinite(self.uv).all())):
            raise MediaError("video planes contain non-finite values")

    @property
    def num_frames(self) -> int:
        return int(self.y.shape[0])

    @property
    def height(self) -> int:
        return int(self.y.shape[2])

    @property
    def width(self) -> int:
        return int(self.y.shape[3])

    @property
    def out_channels(self) -> int:
        return 1 if self.chroma == "mono" else 3

    def frames(self, start: int, stop: int) -> "VideoPlanes":
        """Frames ``start:stop`` (a view)."""
        uv = None if self.uv is None else self.uv[start:stop]
        return VideoPlanes(self.y[start:stop], uv, self.chroma, self.fps, self.color_range)


def read_y4m(path: str | Path, max_frames: int | None = None) -> VideoPlanes:
    """Read a y4m file (4:2:0, 4:4:4 or mono, 8-bit) into float planes."""
    with Y4MReader(path) as reader:
        if reader.width * reader.height > MAX_PIXELS_PER_FRAME:
            raise MediaError(f"{path}: {reader.width}x{reader.height} frames are too large for the NeRV codec")
        count = len(reader)
        if count < 1:
            raise MediaError(f"{path}: the video has no frames")
        limit = MAX_FRAMES if max_frames is None else min(max_frames, MAX_FRAMES)
        if count > MAX_FRAMES and max_frames is None:
            raise MediaError(f"{path}: {count} frames; the NeRV codec fits at most {MAX_FRAMES} per file")
        ys, uvs = [], []
        for i, frame in enumerate(reader):
            if i >= limit:
                break
            y, uv = yuv_frame_to_tensors(frame)
            ys.append(y)
            uvs.append(uv)
        chroma = reader.chroma
        fps = reader.fps
        color_range = reader.header.color_range
    uv_all = None if chroma == "mono" else torch.stack(uvs)  # type: ignore[arg-type]
    return VideoPlanes(torch.stack(ys), uv_all, chroma, tuple(fps), color_range)  # type: ignore[arg-type]


def predicted_planes(out: Tensor, height: int, width: int, chroma: str) -> tuple[Tensor, Tensor | None]:
    """Network output ``[B, C, Hp, Wp]`` -> ``(y [B, 1, H, W], uv [B, 2, Hc, Wc] or None)`` (unrounded)."""
    out = out[..., :height, :width]
    y = out[:, :1]
    if chroma == "mono":
        return y, None
    uv = out[:, 1:3]
    return y, (F.avg_pool2d(uv, 2) if chroma == "420" else uv)


def plane_mse(out: Tensor, y: Tensor, uv: Tensor | None, chroma: str) -> Tensor:
    """Mean squared error over every coded sample (luma and chroma samples weigh the same)."""
    py, puv = predicted_planes(out, y.shape[-2], y.shape[-1], chroma)
    err = (py - y).square().sum()
    n = y.numel()
    if uv is not None and puv is not None:
        err = err + (puv - uv).square().sum()
        n += uv.numel()
    return err / n


def _u8(x: Tensor) -> np.ndarray:
    return x.detach().cpu().to(torch.float64).mul(255.0).round().clamp(0, 255).to(torch.uint8).numpy()


def to_yuv_frames(out: Tensor, height: int, width: int, chroma: str) -> list[YUVFrame]:
    """Network output ``[B, C, Hp, Wp]`` -> 8-bit frames (rounded, clamped)."""
    if not bool(torch.isfinite(out).all()):
        raise MediaError("the network produced non-finite values")
    py, puv = predicted_planes(out, height, width, chroma)
    frames = []
    for b in range(out.shape[0]):
        if puv is None:
            frames.append(YUVFrame(_u8(py[b, 0]), None, None, chroma="mono"))
        else:
            frames.append(YUVFrame(_u8(py[b, 0]), _u8(puv[b, 0]), _u8(puv[b, 1]), chroma=chroma))  # type: ignore[arg-type]
    return frames
