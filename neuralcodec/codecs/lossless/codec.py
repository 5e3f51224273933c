"""Lossless image codec whose entropy model is a probabilistic circuit (an HCLT over patches).

An image ``[C, H, W]`` of integer pixels in ``[0, K)`` (``K = 256`` for 8-bit models) is cut
into ``P x P`` patches (:mod:`.patches`); each patch is one row of ``P * P`` symbols coded with
the circuit's exact conditionals (:class:`~neuralcodec.entropy.circuits.CircuitCoder`). Pixels of
border patches that fall outside the image are marginalized, so any size is coded without
padding cost. Colour images are coded plane by plane with the same (grayscale-trained) model.

Container: metadata ``width``, ``height``, ``channels``, ``patch_size``, ``levels`` (K) and
``chunk_patches``; one chunk per ``chunk_patches`` consecutive patches (raster order, channel
by channel), each an independent ANS stream, so memory stays bounded on both sides. The decoder
decodes up to :data:`DECODE_GROUP_PATCHES` patches (whole chunks) in one walk of the circuit,
which shares its per-variable steps among more rows; the streams are the same.

``config`` keys: ``codec`` (``"lossless-pc"``), ``name``, ``patch_size``, ``levels``,
``hidden``, ``tie_emissions``, ``chunk_patches`` (default 256), ``transform`` (``"none"``, the
default, or ``"med"``: the circuit models the patch's median-edge prediction residuals, see
:mod:`.transforms`), optional ``fit`` (the settings the model was fitted with; informational).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch

from neuralcodec.bitstream import Modality
from neuralcodec.codecs.base import Codec, Metadata
from neuralcodec.codecs.lossless import transforms
from neuralcodec.codecs.lossless.patches import patch_grid
from neuralcodec.entropy.circuits import CODER_VERSION, HCLT, CircuitCoder
from neuralcodec.entropy.tables import PRECISION
from neuralcodec.errors import BitstreamError, MediaError

#: Largest image (pixels x channels) a decoder accepts from a file's metadata.
MAX_SAMPLES = 1 << 28
#: Patches decoded together in one walk of the circuit (consecutive chunks; bounds the memory).
DECODE_GROUP_PATCHES = 4096
#: Output formats written losslessly (``.webp`` with ``lossless=True``); JPEG is refused.
LOSSLESS_SUFFIXES = {".png": {}, ".bmp": {}, ".tif": {}, ".tiff": {}, ".pgm": {}, ".ppm": {},
                     ".webp": {"lossless": True, "quality": 100}}


def pixels_from_tensor(x: Any, levels: int) -> np.ndarray:
    """Integer pixels ``int64 [C, H, W]`` from an int array/tensor ``[C, H, W]`` or ``[H, W]``, or
    from a float tensor of values ``k / 255`` (as :func:`neuralcodec.media.load_image` returns)."""
    t = torch.as_tensor(x).detach().cpu()
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3 or t.shape[1] == 0 or t.shape[2] == 0:
        raise MediaError(f"expected an image [C, H, W] or [H, W], got shape {tuple(t.shape)}")
    if torch.is_floating_point(t):
        scaled = t.to(torch.float64) * 255.0
        values = torch.round(scaled)
        if not bool(torch.isfinite(scaled).all()) or float((scaled - values).abs().max()) > 1e-3:
            raise MediaError("a float image must hold 8-bit values k/255 (lossless coding needs exact levels)")
        t = values
    arr = t.to(torch.int64).numpy()
    if arr.min() < 0 or arr.max() >= levels:
        raise MediaError(f"pixel values must lie in [0, {levels}) for this model; found {arr.min()}..{arr.max()}")
    return arr


class CircuitLosslessCodec(Codec):
    """Patch-wise lossless image coding with an HCLT probabilistic circuit (see module docstring)."""

    modality = Modality.IMAGE
    codec_id = "lossless-pc"
    input_extensions = (".png", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp")

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.patch_size = int(self.config.get("patch_size", 16))
        self.levels = int(self.config.get("levels", 256))
        self.chunk_patches = int(self.config.get("chunk_patches", 256))
        if self.patch_size < 1 or not (2 <= self.levels <= 65536) or self.chunk_patches < 1:
            raise ValueError("need patch_size >= 1, 2 <= levels <= 65536, chunk_patches >= 1")
        self.transform = str(self.config.get("transform", "none"))
        if self.transform not in transforms.TRANSFORMS:
            raise ValueError(f"unknown transform {self.transform!r} (known: {', '.join(transforms.TRANSFORMS)})")
        self.circuit = HCLT(self.patch_size**2, self.levels, int(self.config.get("hidden", 32)),
                            tie_emissions=bool(self.config.get("tie_emissions", False)))
        self._coder: CircuitCoder | None = None

    # -- identity ---------------------------------------------------------------------------------
    @property
    def entropy_model_id(self) -> str:
        return f"hclt-exact-v{CODER_VERSION}"

    @property
    def coder_precision(self) -> int:
        return PRECISION

    def train(self, mode: bool = True) -> "CircuitLosslessCodec":
        self._coder = None
        return super().train(mode)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        self._coder = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @property
    def coder(self) -> CircuitCoder:
        """The frozen float64 coder (rebuilt after training or loading)."""
        if self._coder is None or self.training:
            self._coder = CircuitCoder(self.circuit)
        return self._coder

    def symbols(self, patches: Any) -> torch.Tensor:
        """The circuit's variables for pixel patches ``[B, P * P]``: int64 ``[B, P * P]`` (the
        patches themselves, or their transform; a bijection, so likelihoods are the patches')."""
        rows = torch.as_tensor(patches).numpy()
        return torch.from_numpy(transforms.forward(self.transform, rows, self.patch_size, self.levels))

    def forward(self, patches: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Natural-log likelihood of patches ``[B, P * P]`` (``mask``: observed pixels): ``[B]``."""
        return self.circuit.log_prob(self.symbols(patches), mask)

    # -- coding -----------------------------------------------------------------------------------
    def compress(self, x: Any, **options: Any) -> tuple[Metadata, Iterator[bytes]]:
        """Image ``[C, H, W]`` / ``[H, W]`` (ints, or floats ``k / 255``) -> metadata and chunk payloads."""
        unsupported = sorted(k for k, v in options.items() if v is not None)
        if unsupported:
            raise ValueError(f"option(s) not supported by the lossless codec: {', '.join(unsupported)}")
        pixels = pixels_from_tensor(x, self.levels)
        c, h, w = pixels.shape
        if c * h * w > MAX_SAMPLES:
            raise MediaError(f"image of {c}x{h}x{w} samples is larger than the codec's limit {MAX_SAMPLES}")
        metadata: Metadata = {"width": w, "height": h, "channels": c, "patch_size": self.patch_size,
                              "levels": self.levels, "chunk_patches": self.chunk_patches}
        return metadata, self._chunks(pixels)

    def _chunks(self, pixels: np.ndarray) -> Iterator[bytes]:
        coder, p = self.coder, self.patch_size
        c, h, w = pixels.shape
        rows, cols = patch_grid(h, w, p)
        total = c * rows * cols
        for start in range(0, total, self.chunk_patches):
            ids = np.arange(start, min(start + self.chunk_patches, total))
            ch, y, x, inside = _patch_coordinates(c, h, w, p, ids)
            values = np.where(inside, pixels[ch[:, None], np.minimum(y, h - 1), np.minimum(x, w - 1)], 0)
            yield coder.encode(transforms.forward(self.transform, values, p, self.levels), inside)

    def _geometry(self, metadata: Mapping[str, Any]) -> tuple[int, int, int]:
        try:
            w, h, c = int(metadata["width"]), int(metadata["height"]), int(metadata["channels"])
            p, k, n = int(metadata["patch_size"]), int(metadata["levels"]), int(metadata["chunk_patches"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BitstreamError(f"lossless-pc stream metadata is incomplete: {exc}") from None
        if (p, k, n) != (self.patch_size, self.levels, self.chunk_patches):
            raise BitstreamError(f"stream uses patch {p}, {k} levels, {n} patches per chunk; the model has "
                                 f"{self.patch_size}, {self.levels}, {self.chunk_patches}")
        if w < 1 or h < 1 or c < 1 or c * h * w > MAX_SAMPLES:
            raise BitstreamError(f"image geometry {c}x{h}x{w} in the stream metadata is out of range")
        return c, h, w

    def decompress(self, metadata: Mapping[str, Any], chunks: Iterable[bytes]) -> torch.Tensor:
        """Inverse of :meth:`compress`: the pixels as ``uint8`` (``int32`` above 256 levels) ``[C, H, W]``."""
        c, h, w = self._geometry(metadata)
        coder, p = self.coder, self.patch_size
        rows, cols = patch_grid(h, w, p)
        total = c * rows * cols
        expected = math.ceil(total / self.chunk_patches)
        canvas = np.zeros((c, rows * p, cols * p), dtype=np.uint8 if self.levels <= 256 else np.int32)
        group = max(1, DECODE_GROUP_PATCHES // self.chunk_patches)
        pending: list[bytes] = []
        got = 0

        def flush() -> None:
            start = (got - len(pending)) * self.chunk_patches
            ids = np.arange(start, min(got * self.chunk_patches, total))
            symbols = coder.decode_chunks(pending, ids.size, _patch_coordinates(c, h, w, p, ids)[3], self.chunk_patches)
            values = transforms.inverse(self.transform, symbols, p, self.levels)
            ch, rem = np.divmod(ids, rows * cols)
            r, q = np.divmod(rem, cols)
            tiles = values.reshape(-1, p, p)
            for i in range(ids.size):
                canvas[ch[i], r[i] * p : (r[i] + 1) * p, q[i] * p : (q[i] + 1) * p] = tiles[i]
            pending.clear()

        for payload in chunks:
            if got >= expected:
                raise BitstreamError(f"stream has more than the {expected} chunks its image needs")
            pending.append(bytes(payload))
            got += 1
            if len(pending) == group:
                flush()
        if got != expected:
            raise BitstreamError(f"stream has {got} chunks, its image needs {expected}")
        if pending:
            flush()
        return torch.from_numpy(np.ascontiguousarray(canvas[:, :h, :w]))

    # -- files ------------------------------------------------------------------------------------
    def compress_file(self, path: Any, **options: Any) -> tuple[Metadata, Iterator[bytes]]:
        """Read an 8-bit image (grayscale, or RGB coded plane by plane) and compress it losslessly."""
        from neuralcodec.media.image import load_image

        unsupported = sorted(k for k, v in options.items() if v is not None)
        if unsupported:
            raise ValueError("option(s) not supported by the lossless codec: "
                             + ", ".join("--" + k.replace("_", "-") for k in unsupported))
        return self.compress(load_image(path, mode="auto"))

    def decompress_to_file(self, metadata: Mapping[str, Any], chunks: Iterable[bytes], path: Any,
                           **options: Any) -> None:
        """Decode and write a lossless image file (PNG, BMP, TIFF, PGM/PPM or lossless WebP)."""
        from neuralcodec.media.image import save_image

        unsupported = sorted(k for k, v in options.items() if v is not None)
        if unsupported:
            raise ValueError("option(s) not supported by the lossless codec: "
                             + ", ".join("--" + k.replace("_", "-") for k in unsupported))
        suffix = Path(path).suffix.lower()
        if suffix not in LOSSLESS_SUFFIXES:
            raise MediaError(f"cannot write {path} losslessly: use one of {', '.join(sorted(LOSSLESS_SUFFIXES))}")
        if self.levels > 256:
            raise MediaError("files can only hold 8-bit images; use decompress() for more levels")
        pixels = self.decompress(metadata, chunks)
        if pixels.shape[0] not in (1, 3):
            raise MediaError(f"cannot write an image with {pixels.shape[0]} channels")
        save_image(path, pixels.to(torch.float32) / 255.0, **LOSSLESS_SUFFIXES[suffix])


def _patch_coordinates(channels: int, height: int, width: int, patch: int, ids: np.ndarray):
    """For patches ``ids`` (raster order, channel by channel): channel ``[n]``, pixel rows and
    columns ``[n, P * P]`` and the mask of pixels inside the image (the rows of
    :func:`~neuralcodec.codecs.lossless.patches.patch_mask`)."""
    rows, cols = patch_grid(height, width, patch)
    ch, rem = np.divmod(ids, rows * cols)
    r, q = np.divmod(rem, cols)
    y = r[:, None] * patch + np.repeat(np.arange(patch), patch)[None, :]
    x = q[:, None] * patch + np.tile(np.arange(patch), patch)[None, :]
    return ch, y, x, (y < height) & (x < width)
