"""Image files <-> float tensors ``[C, H, W]`` in [0, 1] (C = 3 for RGB, 1 for grayscale).

Only 8-bit content is accepted; the policy for each Pillow mode is:

* ``RGB``, ``L``: used as stored; ``1`` (bilevel) becomes ``L`` with values 0/255.
* ``P`` (palette): expanded to RGB (or RGBA when the palette has transparency, see alpha below).
* ``CMYK``, ``YCbCr``: converted to RGB with Pillow's plain formulas (no ICC colour management).
* alpha (``LA``, ``RGBA``, ``PA``, palette transparency): dropped when every pixel is fully
  opaque; any transparent pixel is a MediaError (compositing onto a background would invent data).
* 16/32-bit and float modes (``I;16``, ``I``, ``F``, ...) and 16-bit colour PNGs (which Pillow
  would silently cut to 8 bits): MediaError, as the codecs are 8-bit.
* anything else (``LAB``, ``HSV``, ...): MediaError.

Multi-frame files (GIF, APNG, TIFF) give their first frame. EXIF orientation is applied, so the
tensor shows the picture the way viewers display it. Images with more pixels than ``max_pixels``
(default: Pillow's decompression-bomb limit) are refused before their pixel data is decoded.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from neuralcodec.errors import MediaError, NeuralCodecError
from neuralcodec.fileio import atomic_path

__all__ = ["ImageMode", "image_to_tensor", "load_image", "save_image", "tensor_to_image"]

ImageMode = Literal["auto", "rgb", "gray"]

_HIGH_DEPTH_MODES = {"I", "F", "I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I;32", "I;32B", "I;32S"}
_ALPHA_MODES = {"LA": "L", "La": "L", "RGBA": "RGB", "RGBa": "RGB", "PA": "RGB"}
# What Pillow raises for broken files (it uses SyntaxError and struct.error for malformed headers).
_READ_ERRORS = (
    OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error, zlib.error
)


def _default_max_pixels() -> int | None:
    limit = Image.MAX_IMAGE_PIXELS
    return int(limit) if limit else None


def _png_is_16bit(img: Image.Image) -> bool:
    """True for 16-bit PNGs that Pillow would silently reduce to 8-bit RGB/RGBA/LA (rawmode ``*;16B``)."""
    if img.format != "PNG":
        return False
    for tile in getattr(img, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        rawmode = args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args else "")
        if isinstance(rawmode, str) and ";16" in rawmode:
            return True
    return False


def _to_8bit_color(img: Image.Image, where: str) -> Image.Image:
    """Bring ``img`` to mode ``RGB`` or ``L`` following the module's policy (MediaError otherwise)."""
    mode = img.mode
    if mode in ("RGB", "L"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode in _HIGH_DEPTH_MODES or mode.startswith("I;"):
        raise MediaError(
            f"{where}: {mode} images (more than 8 bits per sample) are not supported; convert to 8-bit first"
        )
    if mode == "P":
        has_alpha = "transparency" in img.info or img.palette is not None and img.palette.mode == "RGBA"
        img = img.convert("RGBA" if has_alpha else "RGB")
        mode = img.mode
        if mode == "RGB":
            return img
    if mode in _ALPHA_MODES:
        alpha = np.asarray(img.getchannel(img.getbands()[-1]))
        if alpha.size and int(alpha.min()) < 255:
            transparent = int((alpha < 255).sum())
            raise MediaError(
                f"{where}: image has transparency ({transparent} of {alpha.size} pixels not opaque); "
                "flatten it onto a background first"
            )
        return img.convert(_ALPHA_MODES[mode])
    if mode in ("CMYK", "YCbCr"):
        return img.convert("RGB")
    raise MediaError(f"{where}: unsupported image mode {mode}")


def image_to_tensor(img: Image.Image, mode: ImageMode = "auto", where: str = "image") -> torch.Tensor:
    """Convert a Pillow image to float32 ``[C, H, W]`` in [0, 1] (values k/255) per the module policy.

    ``mode``: ``"auto"`` keeps grayscale as ``C = 1`` and colour as ``C = 3``; ``"rgb"`` replicates
    gray to 3 channels; ``"gray"`` converts colour with Pillow's ITU-R 601 luma
    (``L = 0.299 R + 0.587 G + 0.114 B``, rounded to 8 bits).
    """
    if mode not in ("auto", "rgb", "gray"):
        raise MediaError(f"image mode must be 'auto', 'rgb' or 'gray', got {mode!r}")
    img = _to_8bit_color(img, where)
    if mode == "rgb" and img.mode != "RGB":
        img = img.convert("RGB")
    elif mode == "gray" and img.mode != "L":
        img = img.convert("L")
    arr = np.array(img, dtype=np.uint8)  # a writable copy
    if arr.ndim == 2:
        arr = arr[:, :, None]
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return t.to(torch.float32).div_(255.0)


def load_image(
    path: str | os.PathLike, mode: ImageMode = "auto", *, max_pixels: int | None = -1
) -> torch.Tensor:
    """Read an 8-bit image file as float32 ``[C, H, W]`` in [0, 1] (see the module doc for modes).

    ``max_pixels``: refuse larger images before decoding (-1: Pillow's ``MAX_IMAGE_PIXELS``;
    None: no limit). Missing, unreadable, truncated or unsupported files raise MediaError.
    """
    p = Path(path)
    if not p.exists():
        raise MediaError(f"image file not found: {p}")
    if p.is_dir():
        raise MediaError(f"expected an image file but got a directory: {p}")
    if p.stat().st_size == 0:
        raise MediaError(f"image file is empty (0 bytes): {p}")
    limit = _default_max_pixels() if max_pixels == -1 else max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                w, h = img.size
                if w <= 0 or h <= 0:
                    raise MediaError(f"{p}: invalid image size {w}x{h}")
                if limit is not None and w * h > limit:
                    raise MediaError(
                        f"{p}: {w}x{h} = {w * h} pixels exceeds the limit of {limit} (possible decompression bomb)"
                    )
                if _png_is_16bit(img):
                    raise MediaError(
                        f"{p}: 16-bit PNG ({img.mode}, more than 8 bits per sample) is not supported; "
                        "convert to 8-bit first"
                    )
                img.seek(0)
                img.load()
                img = ImageOps.exif_transpose(img)
                return image_to_tensor(img, mode, str(p))
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(f"{p}: image too large, refused as a possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise MediaError(f"cannot read {p}: not a recognised image file") from exc
    except _READ_ERRORS as exc:
        raise MediaError(f"cannot read {p}: corrupt or truncated image ({exc})") from exc


def tensor_to_image(x: torch.Tensor) -> Image.Image:
    """Float ``[C, H, W]`` (C = 1 or 3) in [0, 1] -> 8-bit Pillow image (clamped, rounded to nearest).

    Raises MediaError for other shapes or non-finite values.
    """
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise MediaError(f"expected an image tensor [C, H, W] with C in (1, 3), got shape {tuple(x.shape)}")
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise MediaError(f"image tensor has no pixels (shape {tuple(x.shape)})")
    if not torch.is_floating_point(x):
        raise MediaError(f"expected a float image tensor in [0, 1], got {x.dtype}")
    x = x.detach().cpu()
    if not bool(torch.isfinite(x).all()):
        raise MediaError("image tensor contains non-finite values (NaN or inf)")
    q = x.to(torch.float64).clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    arr = q.permute(1, 2, 0).numpy()
    if arr.shape[2] == 1:
        return Image.fromarray(np.ascontiguousarray(arr[:, :, 0]), mode="L")
    return Image.fromarray(np.ascontiguousarray(arr), mode="RGB")


def save_image(path: str | os.PathLike, x: torch.Tensor, **save_kwargs) -> None:
    """Write ``x [C, H, W]`` in [0, 1] atomically as an 8-bit image (values clamped, rounded to k/255).

    The format follows the extension (PNG recommended; anything Pillow writes, e.g. ``.bmp``,
    ``.tiff``, ``.webp``, ``.jpg`` with ``quality=...`` in ``save_kwargs``).
    """
    p = Path(path)
    fmt = Image.registered_extensions().get(p.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise MediaError(f"cannot write image to {p}: unknown or unwritable extension {p.suffix!r}")
    img = tensor_to_image(x)
    try:
        with atomic_path(p, suffix=p.suffix) as tmp:
            img.save(tmp, format=fmt, **save_kwargs)
    except MediaError:
        raise
    except (NeuralCodecError, OSError, ValueError, KeyError) as exc:
        raise MediaError(f"cannot write {p}: {exc}") from exc
