"""Classic image anchors (JPEG, WebP, AVIF through Pillow) at a matched file size, and PSNR."""

from __future__ import annotations

import io
import math
from typing import Callable

Encoder = Callable[[int], "tuple[int, np.ndarray]"]

import numpy as np
import torch
from PIL import Image

#: codec name -> (Pillow format, quality range searched, extra save arguments)
CLASSIC = {
    "JPEG": ("JPEG", (1, 100), {"optimize": True}),
    "WebP": ("WEBP", (0, 100), {"method": 6}),
    "AVIF": ("AVIF", (0, 100), {}),
}


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``[C, H, W]`` float in [0, 1] -> ``[H, W, C]`` uint8 (as written to an 8-bit file)."""
    return x.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def psnr(ref: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB of 8-bit images (peak 255)."""
    mse = float(np.mean((ref.astype(np.float64) - test.astype(np.float64)) ** 2))
    return 10 * math.log10(255.0**2 / max(mse, 1e-10))


def classic_codec(ref: np.ndarray, name: str) -> Encoder:
    """``encode(param) -> (bits, decoded uint8 [H, W, C])`` for one Pillow codec, memoised."""
    fmt, _, extra = CLASSIC[name]
    gray = ref.shape[2] == 1
    img = Image.fromarray(ref[..., 0] if gray else ref, "L" if gray else "RGB")
    cache: dict[int, tuple[int, np.ndarray]] = {}

    def encode(param: int) -> tuple[int, np.ndarray]:
        if param not in cache:
            buf = io.BytesIO()
            img.save(buf, format=fmt, quality=int(param), **extra)
            with Image.open(io.BytesIO(buf.getvalue())) as dec:
                arr = np.asarray(dec.convert("L" if gray else "RGB"))
            cache[param] = (8 * buf.tell(), arr[..., None] if gray else arr)
        return cache[param]

    return encode


def match_bpp(encode: Encoder, lo: int, hi: int, target_bits: float) -> int:
    """Quality parameter whose file size is closest to ``target_bits`` (bisection; size grows with it)."""
    best = lo
    a, b = lo, hi
    while a <= b:
        mid = (a + b) // 2
        bits, _ = encode(mid)
        if abs(bits - target_bits) < abs(encode(best)[0] - target_bits):
            best = mid
        if bits < target_bits:
            a = mid + 1
        else:
            b = mid - 1
    for cand in (lo, hi):
        if abs(encode(cand)[0] - target_bits) < abs(encode(best)[0] - target_bits):
            best = cand
    return best
