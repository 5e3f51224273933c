"""YUV4MPEG2 (``.y4m``) video: a streaming reader/writer and YUV <-> RGB conversion in torch.

File layout: one ASCII header line ``YUV4MPEG2 W<w> H<h> F<num>:<den> [I<i>] [A<n>:<d>] [C<c>] [X<..>]*``
then, per frame, a line ``FRAME [params]`` and the raw planes (Y, then Cb, then Cr). Supported:
8-bit 4:2:0 (``C420``, ``C420jpeg``, ``C420paldv``, ``C420mpeg2``, all read as plain 4:2:0; a
missing ``C`` means 4:2:0), 4:4:4 (``C444``) and luma-only (``Cmono``); progressive (``Ip``) or
unknown (``I?``) scan. Everything else (4:2:2, 10-bit ``C420p10``, interlaced, odd sizes in 4:2:0)
is a :class:`~neuralcodec.errors.MediaError` naming the file and the problem.

Memory is bounded by one frame: :class:`Y4MReader` iterates frames one at a time and seeks for
random access; the frame count comes from the file size (frame lines are only scanned when their
parameters make frame records differ in length). Parameters on ``FRAME`` lines are kept, as raw
tokens, in :attr:`YUVFrame.params`; they do not change the frame layout.

Colour: BT.601 (default, what the development videos use) or BT.709, limited ("TV", Y in
16..235, Cb/Cr in 16..240) or full range. Tensor conversions express YUV samples as 8-bit code
values divided by 255 (so limited-range black is Y = 16/255). 4:2:0 chroma is downsampled by
2x2 averaging and upsampled bilinearly with half-pixel centres (``align_corners=False``, edge
replication), i.e. chroma samples are taken to sit at the centre of each 2x2 luma block (the
JPEG/MPEG-1 siting of ``C420jpeg``; the other 4:2:0 sitings are treated the same way).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F

from neuralcodec.errors import MediaError, NeuralCodecError
from neuralcodec.fileio import atomic_output

__all__ = [
    "Chroma",
    "MAX_DIMENSION",
    "Y4MHeader",
    "Y4MReader",
    "Y4MWriter",
    "YUVFrame",
    "parse_y4m_header",
    "rgb_to_yuv",
    "rgb_to_yuv420_tensor",
    "rgb_to_yuv444_tensor",
    "tensors_to_yuv_frame",
    "yuv420_to_rgb_tensor",
    "yuv444_to_rgb_tensor",
    "yuv_frame_to_tensors",
    "yuv_to_rgb",
]

Chroma = Literal["420", "444", "mono"]

SIGNATURE = b"YUV4MPEG2"
MAX_DIMENSION = 16384
MAX_HEADER_BYTES = 4096  # stream header line, including the newline
MAX_FRAME_LINE_BYTES = 1024  # one FRAME line with its parameters, including the newline

_CHROMA_TAGS: dict[str, Chroma] = {
    "420": "420",
    "420jpeg": "420",
    "420paldv": "420",
    "420mpeg2": "420",
    "444": "444",
    "mono": "mono",
}
_WRITE_CHROMA_TAGS: dict[str, str] = {"420": "420jpeg", "444": "444", "mono": "mono"}
_INT_RE = re.compile(r"[0-9]+")
_RATIO_RE = re.compile(r"([0-9]+):([0-9]+)")

#: (Kr, Kb) luma coefficients of the supported matrices.
_MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


# --------------------------------------------------------------------------------------------
# frames and headers
# --------------------------------------------------------------------------------------------


def _chroma_shape(chroma: str, height: int, width: int) -> tuple[int, int] | None:
    if chroma == "420":
        return height // 2, width // 2
    if chroma == "444":
        return height, width
    return None


@dataclass(frozen=True, eq=False)
class YUVFrame:
    """One picture as 8-bit planes: ``y [H, W]``, ``u``/``v`` (Cb/Cr) ``[H/2, W/2]`` for 4:2:0,
    ``[H, W]`` for 4:4:4, None for mono. ``params`` holds the FRAME-line tokens (uninterpreted)."""

    y: np.ndarray
    u: np.ndarray | None
    v: np.ndarray | None
    chroma: Chroma = "420"
    params: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.chroma not in _WRITE_CHROMA_TAGS:
            raise MediaError(f"unsupported chroma format {self.chroma!r} (use '420', '444' or 'mono')")
        if not isinstance(self.y, np.ndarray) or self.y.dtype != np.uint8 or self.y.ndim != 2:
            raise MediaError("YUVFrame.y must be a 2-D uint8 numpy array")
        h, w = self.y.shape
        if h < 1 or w < 1:
            raise MediaError(f"YUVFrame has an empty luma plane {h}x{w}")
        expected = _chroma_shape(self.chroma, h, w)
        if expected is None:
            if self.u is not None or self.v is not None:
                raise MediaError("a mono YUVFrame has no chroma planes (u and v must be None)")
            return
        if self.chroma == "420" and (h % 2 or w % 2):
            raise MediaError(f"4:2:0 frames need even width and height, got {w}x{h}")
        for name, plane in (("u", self.u), ("v", self.v)):
            if not isinstance(plane, np.ndarray) or plane.dtype != np.uint8 or plane.shape != expected:
                got = None if plane is None else (getattr(plane, "dtype", None), getattr(plane, "shape", None))
                raise MediaError(
                    f"YUVFrame.{name} must be uint8 of shape {expected} for {self.chroma} {w}x{h}, got {got}"
                )

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @property
    def width(self) -> int:
        return int(self.y.shape[1])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, YUVFrame):
            return NotImplemented
        if self.chroma != other.chroma or not np.array_equal(self.y, other.y):
            return False
        if self.chroma == "mono":
            return True
        return np.array_equal(self.u, other.u) and np.array_equal(self.v, other.v)

    __hash__ = None  # type: ignore[assignment]


def _frame_bytes(width: int, height: int, chroma: str) -> int:
    c = _chroma_shape(chroma, height, width)
    return width * height + (0 if c is None else 2 * c[0] * c[1])


@dataclass(frozen=True)
class Y4MHeader:
    """A parsed and validated y4m stream header."""

    width: int
    height: int
    fps: tuple[int, int]  # (numerator, denominator), frames per second = num / den
    chroma: Chroma = "420"
    chroma_tag: str = "420jpeg"  # the C value as written in the file
    interlace: str = "p"  # 'p' (progressive) or '?' (unknown, read as progressive)
    aspect: tuple[int, int] = (0, 0)  # pixel aspect ratio; 0:0 = unknown
    x_params: tuple[str, ...] = ()  # X tokens, without the leading X
    extra: tuple[str, ...] = ()  # unknown tags, kept verbatim and otherwise ignored

    def __post_init__(self) -> None:
        _validate_geometry(self.width, self.height, self.fps, self.chroma, "y4m header")

    @property
    def frame_bytes(self) -> int:
        """Bytes of picture data per frame (excluding the FRAME line)."""
        return _frame_bytes(self.width, self.height, self.chroma)

    @property
    def frame_rate(self) -> float:
        return self.fps[0] / self.fps[1]

    @property
    def color_range(self) -> str | None:
        """``"limited"``/``"full"`` from an ``XCOLORRANGE=`` parameter, None when the file does not say."""
        for p in self.x_params:
            if p.upper().startswith("COLORRANGE="):
                value = p.split("=", 1)[1].lower()
                return value if value in ("limited", "full") else None
        return None

    def to_bytes(self) -> bytes:
        """The header line (with trailing newline) that describes this stream."""
        parts = [
            "YUV4MPEG2",
            f"W{self.width}",
            f"H{self.height}",
            f"F{self.fps[0]}:{self.fps[1]}",
            f"I{self.interlace}",
            f"A{self.aspect[0]}:{self.aspect[1]}",
            f"C{self.chroma_tag}",
        ]
        parts += [f"X{p}" for p in self.x_params]
        return (" ".join(parts) + "\n").encode("ascii")


def _validate_geometry(width: int, height: int, fps: tuple[int, int], chroma: str, where: str) -> None:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise MediaError(f"{where}: {name} must be an integer, got {value!r}")
        if not 1 <= value <= MAX_DIMENSION:
            raise MediaError(f"{where}: {name} {value} is out of range (1..{MAX_DIMENSION})")
    if chroma not in _WRITE_CHROMA_TAGS:
        raise MediaError(f"{where}: unsupported chroma format {chroma!r} (use '420', '444' or 'mono')")
    if chroma == "420" and (width % 2 or height % 2):
        raise MediaError(f"{where}: 4:2:0 video needs even width and height, got {width}x{height}")
    if (
        not isinstance(fps, tuple)
        or len(fps) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in fps)
        or fps[0] <= 0
        or fps[1] <= 0
        or fps[0] >= 2**31
        or fps[1] >= 2**31
    ):
        raise MediaError(f"{where}: frame rate must be a pair of positive integers (num, den), got {fps!r}")


def _parse_ratio(value: str, tag: str, where: str) -> tuple[int, int]:
    m = _RATIO_RE.fullmatch(value)
    if not m:
        raise MediaError(f"{where}: malformed {tag} value {tag}{value!r} (expected num:den)")
    return int(m.group(1)), int(m.group(2))


def _unsupported_chroma(value: str, where: str) -> MediaError:
    if re.search(r"p[0-9]+$", value) or value in ("mono16",):
        why = "more than 8 bits per sample is not supported"
    elif value.startswith("444alpha"):
        why = "alpha planes are not supported"
    else:
        why = "only 4:2:0, 4:4:4 and mono are supported"
    return MediaError(f"{where}: unsupported colour space C{value} ({why})")


def parse_y4m_header(line: bytes, where: str = "y4m") -> Y4MHeader:
    """Parse and validate a stream header line (with or without its trailing newline)."""
    if not line.startswith(SIGNATURE):
        raise MediaError(f"{where}: not a YUV4MPEG2 (.y4m) file (missing 'YUV4MPEG2' signature)")
    body = line[len(SIGNATURE) :].rstrip(b"\n")
    if body and not body.startswith(b" "):
        raise MediaError(f"{where}: malformed y4m header (no space after the signature)")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MediaError(f"{where}: y4m header contains non-ASCII bytes") from exc
    seen: dict[str, str] = {}
    x_params: list[str] = []
    extra: list[str] = []
    for token in text.split(" "):
        if not token:
            continue  # tolerate doubled spaces
        tag, value = token[0], token[1:]
        if tag == "X":
            x_params.append(value)
            continue
        if tag not in "WHFIAC":
            extra.append(token)
            continue
        if tag in seen:
            raise MediaError(f"{where}: y4m header repeats the {tag} parameter")
        seen[tag] = value

    for tag, name in (("W", "width"), ("H", "height"), ("F", "frame rate")):
        if tag not in seen:
            raise MediaError(f"{where}: y4m header lacks the {name} ({tag}) parameter")
    dims = {}
    for tag, name in (("W", "width"), ("H", "height")):
        if not _INT_RE.fullmatch(seen[tag]) or len(seen[tag]) > 9:
            raise MediaError(f"{where}: malformed {name} {tag}{seen[tag]!r}")
        dims[name] = int(seen[tag])
    fps = _parse_ratio(seen["F"], "F", where)
    if fps[0] == 0 or fps[1] == 0:
        raise MediaError(f"{where}: frame rate F{fps[0]}:{fps[1]} must be positive")
    interlace = seen.get("I", "p")
    if interlace in ("t", "b", "m"):
        raise MediaError(f"{where}: interlaced video (I{interlace}) is not supported; only progressive")
    if interlace not in ("p", "?"):
        raise MediaError(f"{where}: malformed interlace parameter I{interlace!r}")
    aspect = _parse_ratio(seen["A"], "A", where) if "A" in seen else (0, 0)
    chroma_tag = seen.get("C", "420jpeg")
    chroma = _CHROMA_TAGS.get(chroma_tag)
    if chroma is None:
        raise _unsupported_chroma(chroma_tag, where)
    _validate_geometry(dims["width"], dims["height"], fps, chroma, where)
    return Y4MHeader(
        width=dims["width"],
        height=dims["height"],
        fps=fps,
        chroma=chroma,
        chroma_tag=chroma_tag,
        interlace=interlace,
        aspect=aspect,
        x_params=tuple(x_params),
        extra=tuple(extra),
    )


# --------------------------------------------------------------------------------------------
# reader
# --------------------------------------------------------------------------------------------


class Y4MReader:
    """Read a ``.y4m`` file frame by frame (bounded memory) or by index.

    ``len(reader)`` / :attr:`num_frames` come from the file size; a file whose size does not
    match whole frames raises MediaError ("truncated in frame i"). Iterating yields the complete
    frames first and raises the same error when it reaches the broken one.
    Use as a context manager (or call :meth:`close`).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise MediaError(f"video file not found: {self.path}")
        if self.path.is_dir():
            raise MediaError(f"expected a .y4m file but got a directory: {self.path}")
        try:
            self._fh = open(self.path, "rb")
        except OSError as exc:
            raise MediaError(f"cannot open {self.path}: {exc}") from exc
        try:
            self._size = os.fstat(self._fh.fileno()).st_size
            head = self._fh.read(MAX_HEADER_BYTES)
            if not head:
                raise MediaError(f"{self.path}: file is empty (0 bytes), not a y4m video")
            if not head.startswith(SIGNATURE):
                raise MediaError(f"{self.path}: not a YUV4MPEG2 (.y4m) file (missing 'YUV4MPEG2' signature)")
            end = head.find(b"\n")
            if end < 0:
                what = "too long" if len(head) >= MAX_HEADER_BYTES else "not terminated by a newline"
                raise MediaError(f"{self.path}: y4m header line is {what}")
            self.header = parse_y4m_header(head[: end + 1], str(self.path))
            self._data_start = end + 1
        except BaseException:
            self._fh.close()
            raise
        self._num_frames: int | None = None
        self._stride: int | None = None  # bytes per frame record when all FRAME lines have one length
        self._offsets: list[int] | None = None  # record offsets when they do not

    # -- properties -------------------------------------------------------------------------
    @property
    def width(self) -> int:
        return self.header.width

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def fps(self) -> tuple[int, int]:
        return self.header.fps

    @property
    def chroma(self) -> Chroma:
        return self.header.chroma

    @property
    def frame_bytes(self) -> int:
        return self.header.frame_bytes

    # -- context manager --------------------------------------------------------------------
    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "Y4MReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- low level --------------------------------------------------------------------------
    def _read_frame_line(self, offset: int, index: int) -> tuple[tuple[str, ...], int]:
        """Parse the FRAME line at ``offset``; return its parameters and its length in bytes."""
        self._fh.seek(offset)
        chunk = self._fh.read(MAX_FRAME_LINE_BYTES)
        if not chunk.startswith(b"FRAME"):
            if b"FRAME".startswith(chunk):
                raise MediaError(f"{self.path}: truncated in frame {index} (incomplete FRAME line)")
            raise MediaError(f"{self.path}: missing FRAME marker at frame {index} (byte offset {offset})")
        end = chunk.find(b"\n")
        if end < 0:
            if len(chunk) < MAX_FRAME_LINE_BYTES:
                raise MediaError(f"{self.path}: truncated in frame {index} (incomplete FRAME line)")
            raise MediaError(f"{self.path}: FRAME line of frame {index} is too long")
        rest = chunk[5:end]
        if rest and not rest.startswith(b" "):
            raise MediaError(f"{self.path}: malformed FRAME marker at frame {index} (byte offset {offset})")
        try:
            params = tuple(t for t in rest.decode("ascii").split(" ") if t)
        except UnicodeDecodeError as exc:
            raise MediaError(f"{self.path}: FRAME line of frame {index} contains non-ASCII bytes") from exc
        return params, end + 1

    def _check_data(self, data_offset: int, index: int) -> None:
        available = self._size - data_offset
        if available < self.frame_bytes:
            raise MediaError(
                f"{self.path}: truncated in frame {index} "
                f"(expected {self.frame_bytes} bytes of picture data, {max(available, 0)} present)"
            )

    def _read_record(self, offset: int, index: int) -> tuple[YUVFrame, int]:
        """Read the frame record at ``offset``; return the frame and the offset of the next record."""
        params, line_len = self._read_frame_line(offset, index)
        data_offset = offset + line_len
        self._check_data(data_offset, index)
        self._fh.seek(data_offset)
        buf = bytearray(self.frame_bytes)  # writable, so the planes are ordinary arrays
        if self._fh.readinto(buf) != self.frame_bytes:  # the file shrank under us
            raise MediaError(f"{self.path}: truncated in frame {index}")
        return self._planes(buf, params), data_offset + self.frame_bytes

    def _planes(self, buf: bytearray, params: tuple[str, ...]) -> YUVFrame:
        h, w = self.height, self.width
        arr = np.frombuffer(buf, dtype=np.uint8)
        y = arr[: h * w].reshape(h, w)
        shape = _chroma_shape(self.chroma, h, w)
        if shape is None:
            return YUVFrame(y, None, None, "mono", params)
        n = shape[0] * shape[1]
        u = arr[h * w : h * w + n].reshape(shape)
        v = arr[h * w + n : h * w + 2 * n].reshape(shape)
        return YUVFrame(y, u, v, self.chroma, params)

    def _scan(self) -> list[int]:
        """Walk the FRAME lines (not the picture data) to find every record offset."""
        offsets: list[int] = []
        offset = self._data_start
        while offset < self._size:
            index = len(offsets)
            _, line_len = self._read_frame_line(offset, index)
            self._check_data(offset + line_len, index)
            offsets.append(offset)
            offset += line_len + self.frame_bytes
        return offsets

    # -- public -----------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        """Number of frames, from the file size (MediaError if the last frame is incomplete)."""
        if self._num_frames is None:
            remaining = self._size - self._data_start
            if remaining == 0:
                self._num_frames = 0
                return 0
            _, first_len = self._read_frame_line(self._data_start, 0)
            stride = first_len + self.frame_bytes
            count, extra = divmod(remaining, stride)
            uniform = extra == 0
            if uniform:  # confirm with the last record's FRAME line
                try:
                    _, last_len = self._read_frame_line(self._data_start + (count - 1) * stride, count - 1)
                    uniform = last_len == first_len
                except MediaError:
                    uniform = False  # the scan below finds the exact problem
            if uniform:
                self._stride = stride
                self._num_frames = count
            else:
                self._offsets = self._scan()
                self._num_frames = len(self._offsets)
        return self._num_frames

    def __len__(self) -> int:
        return self.num_frames

    def read_frame(self, index: int) -> YUVFrame:
        """Random access to frame ``index`` (negative counts from the end) via seek."""
        n = self.num_frames
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"frame {index} out of range: {self.path} has {n} frames")
        if self._offsets is None:
            assert self._stride is not None
            try:
                return self._read_record(self._data_start + index * self._stride, index)[0]
            except MediaError:
                # FRAME lines differ in length somewhere before this frame: index them exactly.
                self._offsets = self._scan()
        return self._read_record(self._offsets[index], index)[0]

    def __iter__(self) -> Iterator[YUVFrame]:
        """Frames in order, one at a time; raises MediaError at a truncated or malformed frame."""
        offset = self._data_start
        index = 0
        while offset < self._size:
            frame, offset = self._read_record(offset, index)
            index += 1
            yield frame


# --------------------------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------------------------


class Y4MWriter:
    """Write a ``.y4m`` file atomically, one :class:`YUVFrame` at a time.

    Use as a context manager: the file appears at ``path`` only when the block exits normally
    (an exception leaves nothing behind). Without ``with``, call :meth:`close` to commit.
    The header states ``Ip``, ``A<aspect>``, ``C420jpeg``/``C444``/``Cmono`` and, unless
    ``color_range`` is None, ``XCOLORRANGE=LIMITED``/``FULL``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: tuple[int, int] = (25, 1),
        chroma: Chroma = "420",
        *,
        aspect: tuple[int, int] = (1, 1),
        color_range: Literal["limited", "full"] | None = "limited",
        x_params: tuple[str, ...] = (),
    ) -> None:
        self.path = Path(path)
        fps = tuple(fps) if isinstance(fps, list) else fps  # type: ignore[assignment]
        if chroma not in _WRITE_CHROMA_TAGS:
            raise MediaError(f"cannot write {self.path}: unsupported chroma {chroma!r} (use '420', '444' or 'mono')")
        params = list(x_params)
        if color_range is not None:
            if color_range not in ("limited", "full"):
                raise MediaError(f"color_range must be 'limited', 'full' or None, got {color_range!r}")
            params.append(f"COLORRANGE={color_range.upper()}")
        for p in params:
            if not p or any(c in p for c in " \n") or not p.isascii():
                raise MediaError(f"invalid y4m X parameter {p!r}")
        if len(aspect) != 2 or min(aspect) < 0:
            raise MediaError(f"aspect must be a pair of non-negative integers, got {aspect!r}")
        self.header = Y4MHeader(
            width=width,
            height=height,
            fps=fps,  # type: ignore[arg-type]
            chroma=chroma,
            chroma_tag=_WRITE_CHROMA_TAGS[chroma],
            interlace="p",
            aspect=(int(aspect[0]), int(aspect[1])),
            x_params=tuple(params),
        )
        self.frames_written = 0
        self._cm = atomic_output(self.path, "wb")
        try:
            self._fh = self._cm.__enter__()
        except MediaError:
            raise
        except (NeuralCodecError, OSError) as exc:
            raise MediaError(f"cannot write {self.path}: {exc}") from exc
        self._closed = False
        self._write(self.header.to_bytes())

    def _write(self, data: bytes | memoryview) -> None:
        try:
            self._fh.write(data)
        except OSError as exc:
            self.abort()
            raise MediaError(f"cannot write {self.path}: {exc}") from exc

    def write(self, frame: YUVFrame) -> None:
        """Append one frame; its size and chroma format must match the header.

        The frame is written with a bare ``FRAME`` line (its ``params`` are not copied).
        """
        if self._closed:
            raise MediaError(f"cannot write to {self.path}: writer is closed")
        if not isinstance(frame, YUVFrame):
            raise MediaError(f"Y4MWriter.write expects a YUVFrame, got {type(frame).__name__}")
        h = self.header
        if (frame.width, frame.height, frame.chroma) != (h.width, h.height, h.chroma):
            raise MediaError(
                f"cannot write {frame.width}x{frame.height} {frame.chroma} frame to {self.path}, "
                f"which is {h.width}x{h.height} {h.chroma}"
            )
        self._write(b"FRAME\n")
        for plane in (frame.y, frame.u, frame.v):
            if plane is not None:
                self._write(memoryview(np.ascontiguousarray(plane)).cast("B"))
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self._closed:
            return
        self._closed = True
        try:
            self._cm.__exit__(None, None, None)
        except (NeuralCodecError, OSError) as exc:
            raise MediaError(f"cannot write {self.path}: {exc}") from exc

    def abort(self) -> None:
        """Discard everything written; nothing appears at ``path``."""
        if self._closed:
            return
        self._closed = True
        err = MediaError(f"writing {self.path} aborted")
        try:
            self._cm.__exit__(MediaError, err, None)
        except MediaError:
            pass

    def __enter__(self) -> "Y4MWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# --------------------------------------------------------------------------------------------
# colour conversion (torch)
# --------------------------------------------------------------------------------------------


def _affine(matrix: str, full_range: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(M, b)`` with ``yuv = M @ rgb + b``, YUV in 8-bit code values / 255, RGB in [0, 1] (float64)."""
    try:
        kr, kb = _MATRICES[matrix]
    except KeyError:
        raise MediaError(f"unknown colour matrix {matrix!r} (use {', '.join(_MATRICES)})") from None
    kg = 1.0 - kr - kb
    # luma and the two colour differences Pb, Pr in [-0.5, 0.5]
    to_diff = np.array(
        [
            [kr, kg, kb],
            [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
            [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))],
        ]
    )
    # (offset, excursion) of Y and of Cb/Cr in 8-bit code values
    if full_range:
        scale, offset = np.array([255.0, 255.0, 255.0]), np.array([0.0, 128.0, 128.0])
    else:
        scale, offset = np.array([219.0, 224.0, 224.0]), np.array([16.0, 128.0, 128.0])
    return (scale[:, None] * to_diff) / 255.0, offset / 255.0


def _apply_affine(x: torch.Tensor, m: np.ndarray, b: np.ndarray) -> torch.Tensor:
    """``m @ x + b`` over the channel dim -3 of ``x [..., 3, H, W]``."""
    mt = torch.as_tensor(m, dtype=x.dtype, device=x.device)
    bt = torch.as_tensor(b, dtype=x.dtype, device=x.device)
    return torch.einsum("oc,...chw->...ohw", mt, x) + bt[:, None, None]


def rgb_to_yuv444_tensor(rgb: torch.Tensor, matrix: str = "bt601", full_range: bool = False) -> torch.Tensor:
    """RGB ``[..., 3, H, W]`` in [0, 1] -> YCbCr ``[..., 3, H, W]`` as 8-bit code values / 255 (not rounded)."""
    if rgb.dim() < 3 or rgb.shape[-3] != 3:
        raise MediaError(f"expected RGB with 3 channels at dim -3, got shape {tuple(rgb.shape)}")
    m, b = _affine(matrix, full_range)
    return _apply_affine(rgb, m, b)


def yuv444_to_rgb_tensor(
    yuv: torch.Tensor, matrix: str = "bt601", full_range: bool = False, clamp: bool = True
) -> torch.Tensor:
    """YCbCr ``[..., 3, H, W]`` (8-bit code values / 255) -> RGB ``[..., 3, H, W]`` (clamped to [0, 1])."""
    if yuv.dim() < 3 or yuv.shape[-3] != 3:
        raise MediaError(f"expected YUV with 3 channels at dim -3, got shape {tuple(yuv.shape)}")
    m, b = _affine(matrix, full_range)
    m_inv = np.linalg.inv(m)
    rgb = _apply_affine(yuv, m_inv, -m_inv @ b)
    return rgb.clamp(0.0, 1.0) if clamp else rgb


def _upsample_chroma(uv: torch.Tensor) -> torch.Tensor:
    """``[B, 2, h, w]`` -> ``[B, 2, 2h, 2w]``, bilinear with centre siting and edge replication."""
    return F.interpolate(uv, scale_factor=2.0, mode="bilinear", align_corners=False)


def yuv420_to_rgb_tensor(
    y: torch.Tensor,
    uv: torch.Tensor,
    matrix: str = "bt601",
    full_range: bool = False,
    clamp: bool = True,
) -> torch.Tensor:
    """4:2:0 planes -> RGB: ``y [B, 1, H, W]``, ``uv [B, 2, H/2, W/2]`` (code values / 255) -> ``[B, 3, H, W]``."""
    if y.dim() != 4 or y.shape[1] != 1 or uv.dim() != 4 or uv.shape[1] != 2:
        raise MediaError(f"expected y [B,1,H,W] and uv [B,2,H/2,W/2], got {tuple(y.shape)} and {tuple(uv.shape)}")
    b, _, h, w = y.shape
    if uv.shape[0] != b or uv.shape[2] * 2 != h or uv.shape[3] * 2 != w:
        raise MediaError(f"chroma {tuple(uv.shape)} does not match luma {tuple(y.shape)} for 4:2:0")
    yuv = torch.cat([y, _upsample_chroma(uv)], dim=1)
    return yuv444_to_rgb_tensor(yuv, matrix, full_range, clamp)


def rgb_to_yuv420_tensor(
    rgb: torch.Tensor, matrix: str = "bt601", full_range: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB ``[B, 3, H, W]`` (H, W even) -> ``(y [B, 1, H, W], uv [B, 2, H/2, W/2])``, chroma 2x2-averaged."""
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise MediaError(f"expected RGB [B, 3, H, W], got {tuple(rgb.shape)}")
    if rgb.shape[2] % 2 or rgb.shape[3] % 2:
        raise MediaError(f"4:2:0 needs even height and width, got {rgb.shape[3]}x{rgb.shape[2]}")
    yuv = rgb_to_yuv444_tensor(rgb, matrix, full_range)
    return yuv[:, :1], F.avg_pool2d(yuv[:, 1:], kernel_size=2, stride=2)


def yuv_frame_to_tensors(frame: YUVFrame) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``YUVFrame`` -> ``(y [1, H, W], uv [2, h, w] or None for mono)`` float32 code values / 255."""
    y = torch.from_numpy(np.ascontiguousarray(frame.y)).to(torch.float32).div_(255.0)[None]
    if frame.chroma == "mono":
        return y, None
    uv = torch.from_numpy(np.stack([frame.u, frame.v])).to(torch.float32).div_(255.0)
    return y, uv


def _to_plane(x: torch.Tensor) -> np.ndarray:
    if not bool(torch.isfinite(x).all()):
        raise MediaError("cannot convert non-finite values (NaN or inf) to an 8-bit plane")
    return x.detach().cpu().to(torch.float64).mul(255.0).round().clamp(0, 255).to(torch.uint8).numpy()


def tensors_to_yuv_frame(y: torch.Tensor, uv: torch.Tensor | None, chroma: Chroma | None = None) -> YUVFrame:
    """Inverse of :func:`yuv_frame_to_tensors`: values are rounded to the nearest 8-bit code and clamped.

    ``chroma`` is inferred from the shapes when None (no ``uv`` -> mono).
    """
    if y.dim() == 2:
        y = y[None]
    if y.dim() != 3 or y.shape[0] != 1:
        raise MediaError(f"expected luma [1, H, W], got {tuple(y.shape)}")
    h, w = y.shape[1:]
    if uv is None:
        inferred: Chroma = "mono"
    elif uv.dim() == 3 and uv.shape[0] == 2 and tuple(uv.shape[1:]) == (h, w):
        inferred = "444"
    elif uv.dim() == 3 and uv.shape[0] == 2 and tuple(uv.shape[1:]) == (h // 2, w // 2):
        inferred = "420"
    else:
        raise MediaError(f"chroma {None if uv is None else tuple(uv.shape)} does not fit luma {tuple(y.shape)}")
    if chroma is not None and chroma != inferred:
        raise MediaError(f"tensor shapes describe {inferred} video, not {chroma}")
    yp = _to_plane(y[0])
    if uv is None:
        return YUVFrame(yp, None, None, "mono")
    planes = _to_plane(uv)
    return YUVFrame(yp, planes[0], planes[1], inferred)


def yuv_to_rgb(frame: YUVFrame, matrix: str = "bt601", full_range: bool = False) -> torch.Tensor:
    """Decode a frame to float32 RGB ``[3, H, W]`` in [0, 1] (mono frames come out gray)."""
    y, uv = yuv_frame_to_tensors(frame)
    if uv is None:  # luma only: the same gray value in R, G and B
        m, b = _affine(matrix, full_range)
        luma = ((y - float(b[0])) / float(m[0].sum())).clamp(0.0, 1.0)
        return luma.expand(3, -1, -1).contiguous()
    if frame.chroma == "420":
        uv = _upsample_chroma(uv[None])[0]
    return yuv444_to_rgb_tensor(torch.cat([y, uv], dim=0), matrix, full_range)


def rgb_to_yuv(
    rgb: torch.Tensor, chroma: Chroma = "420", matrix: str = "bt601", full_range: bool = False
) -> YUVFrame:
    """Encode float RGB ``[3, H, W]`` in [0, 1] to an 8-bit frame (rounded to nearest, clamped to 0..255).

    4:2:0 averages chroma over 2x2 blocks (H, W must be even); ``"mono"`` keeps luma only.
    """
    if rgb.dim() != 3 or rgb.shape[0] != 3:
        raise MediaError(f"expected RGB [3, H, W], got {tuple(rgb.shape)}")
    if not torch.is_floating_point(rgb):
        raise MediaError(f"expected a float RGB tensor in [0, 1], got {rgb.dtype}")
    if chroma not in _WRITE_CHROMA_TAGS:
        raise MediaError(f"unsupported chroma format {chroma!r} (use '420', '444' or 'mono')")
    x = rgb.detach().cpu().to(torch.float64)[None]
    if chroma == "420":
        y, uv = rgb_to_yuv420_tensor(x, matrix, full_range)
        return tensors_to_yuv_frame(y[0], uv[0], "420")
    yuv = rgb_to_yuv444_tensor(x, matrix, full_range)[0]
    if chroma == "mono":
        return tensors_to_yuv_frame(yuv[:1], None, "mono")
    return tensors_to_yuv_frame(yuv[:1], yuv[1:], "444")
