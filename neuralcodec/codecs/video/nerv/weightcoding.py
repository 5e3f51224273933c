"""Entropy coding of integer weight tensors under a per-tensor fitted distribution.

Each tensor's integers are coded under one quantized family (Gaussian, Laplace or logistic) at one
scale of a fixed :class:`~neuralcodec.entropy.ScaleGrid`, chosen by the encoder to minimise the
*exact* code length under the integer tables. The choice is two bytes of side information
(family id, scale index), so the decoder rebuilds identical tables from them alone.

Payload of one group of tensors (all integers little-endian)::

    for each tensor, in the network's parameter order:
        u8 family id (0 gaussian, 1 laplace, 2 logistic), u8 scale index, i8 step code[C]
    ANS stream (32-bit words) of every tensor's integers, tensor after tensor

Tensor shapes and channel counts are known from the stream header, so nothing else is stored.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from neuralcodec.entropy import QuantizedFamily, StackDecoder, StackEncoder
from neuralcodec.errors import BitstreamError

FAMILY_IDS = ("gaussian", "laplace", "logistic")
#: grid of distribution scales (in integer steps) shared by encoder and decoder
SCALE_MIN, SCALE_MAX, NUM_SCALES = 0.25, 512.0, 48
#: probability mass left to the escape code beyond each table's support
TAIL_MASS = 1e-6


@lru_cache(maxsize=None)
def family(family_id: int) -> QuantizedFamily:
    """The quantized family for a stored id (tables built once per process)."""
    return QuantizedFamily(FAMILY_IDS[family_id], scale_min=SCALE_MIN, scale_max=SCALE_MAX, num_scales=NUM_SCALES,
                           tail_mass=TAIL_MASS)


@dataclass
class CodedTensor:
    """One tensor's integers with its steps and chosen distribution."""

    q: np.ndarray  # int64, the tensor's shape
    step: np.ndarray  # int step codes [C] (see quant.step_values)
    family_id: int = 0
    scale_index: int = 0
    bits: float = 0.0  # exact code length of q under the chosen table

    @property
    def side_bytes(self) -> int:
        return 2 + self.step.size


def _initial_scales(q: np.ndarray) -> dict[int, float]:
    x = q.astype(np.float64).reshape(-1)
    std = max(float(np.sqrt(np.mean(x * x))), 1e-3)
    mad = max(float(np.mean(np.abs(x))), 1e-3)
    return {0: std, 1: mad, 2: std * math.sqrt(3) / math.pi}


def fit_distribution(t: CodedTensor, search: int = 3) -> CodedTensor:
    """Pick the family and scale index with the fewest exact bits (moment guess, then +-search)."""
    flat = t.q.reshape(-1)
    best: tuple[float, int, int] | None = None
    for fid, scale in _initial_scales(t.q).items():
        fam = family(fid)
        guess = int(fam.grid.index(np.array([scale]))[0])
        for idx in range(max(0, guess - search), min(NUM_SCALES, guess + search + 1)):
            index = np.full(flat.size, idx * fam.mean_bins, dtype=np.int64)
            bits = float(fam.bank.symbol_bits(flat, index).sum())
            if best is None or bits < best[0]:
                best = (bits, fid, idx)
    assert best is not None
    t.bits, t.family_id, t.scale_index = best
    return t


def encode_tensors(tensors: list[CodedTensor]) -> bytes:
    """Side information then one ANS stream for ``tensors`` (distributions already fitted)."""
    side = bytearray()
    enc = StackEncoder()
    for t in tensors:
        side += struct.pack("<BB", t.family_id, t.scale_index)
        side += np.ascontiguousarray(t.step, dtype="i1").tobytes()
        flat = t.q.reshape(-1).astype(np.int64)
        bank = family(t.family_id).bank
        enc.indexed(flat, np.full(flat.size, t.scale_index, dtype=np.int64), bank)
    return bytes(side) + enc.finish()


def estimate_bytes(tensors: list[CodedTensor]) -> float:
    """Estimated payload size: side information plus the ideal code length of the integers."""
    return sum(t.side_bytes for t in tensors) + sum(t.bits for t in tensors) / 8


def decode_tensors(payload: bytes, shapes: list[tuple[int, ...]], channels: list[int],
                   max_abs: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inverse of :func:`encode_tensors` for known shapes: ``[(q int64, step codes int64 [C])]``.

    ``max_abs[i]`` bounds the integers of tensor ``i`` (its bit depth); anything else is corruption.
    """
    pos = 0
    meta = []
    for shape, c in zip(shapes, channels, strict=True):
        need = 2 + c
        if pos + need > len(payload):
            raise BitstreamError("NeRV weight payload is truncated (side information)")
        fid, sidx = struct.unpack_from("<BB", payload, pos)
        if fid >= len(FAMILY_IDS) or sidx >= NUM_SCALES:
            raise BitstreamError(f"NeRV weight payload names an unknown distribution ({fid}, {sidx})")
        step = np.frombuffer(payload, dtype="i1", count=c, offset=pos + 2).astype(np.int64)
        meta.append((fid, sidx, step))
        pos += need
    dec = StackDecoder(payload[pos:])
    out = []
    for shape, (fid, sidx, step), bound in zip(shapes, meta, max_abs, strict=True):
        n = math.prod(shape)
        q = dec.indexed(np.full(n, sidx, dtype=np.int64), family(fid).bank)
        if q.size and int(np.abs(q).max()) > bound:
            raise BitstreamError("NeRV weight payload decodes to out-of-range integers (corrupt data)")
        out.append((q.reshape(shape), step))
    dec.finish()
    return out
