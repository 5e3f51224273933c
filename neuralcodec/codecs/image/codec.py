"""The learned image codec: GDN transforms + per-quality gains + mean-scale hyperprior.

Shapes: images ``[B, 3, H, W]`` in [0, 1]; latent ``y [B, M, H/16, W/16]``; side latent
``z [B, N, H/64, W/64]`` (``H``, ``W`` padded to multiples of 64). Qualities are 1-based floats
``[B]`` in ``[1, Q]`` (see :mod:`neuralcodec.codecs.image.gain`).

Coding path (one image): pad -> ``g_a`` -> ``y * gain[q]`` -> :class:`~neuralcodec.entropy.Hyperprior`
(``z`` under the factorized prior, ``round(y - mean)`` under integer Gaussian tables whose index
comes from an integer-exact network) -> two chunks, ``z`` then ``y``; then, unless it does not pay
for its bits, a third chunk with a per-image linear post-filter the encoder fitted to the decoded
image (:mod:`neuralcodec.codecs.image.postfilter`; metadata ``filter`` = its size). Decoding runs the
same entropy path backwards, multiplies by ``inverse_gain[q]``, synthesises, crops, clamps and
applies the filter. The eval-mode :meth:`ImageCodec.forward` computes the very same ``y_hat`` and
exact code lengths, so the file size matches the model's estimate (up to the ANS flush words and
the filter) and the decoded image is the eval-mode reconstruction (before the filter).

Grayscale images are replicated to RGB for the model and stored with ``channels = 1``; the
decoder returns the mean of the three reconstructed channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import torch
from torch import Tensor

from neuralcodec.bitstream import Modality
from neuralcodec.codecs.base import Codec, Metadata
from neuralcodec.codecs.image.gain import QualityGain, interpolate_lambdas
from neuralcodec.codecs.image.padding import crop_to, pad_to_multiple, padded_size
from neuralcodec.codecs.image.postfilter import KERNEL_SIZES as FILTER_SIZES
from neuralcodec.codecs.image.postfilter import PostFilter, fit_postfilter
from neuralcodec.codecs.image.refine import MAX_STEPS as MAX_REFINE_STEPS
from neuralcodec.codecs.image.refine import refine_latent
from neuralcodec.codecs.image.transforms import STRIDE, AnalysisTransform, SynthesisTransform
from neuralcodec.entropy import CheckerboardHyperprior, Hyperprior
from neuralcodec.entropy.ops import round_ste
from neuralcodec.entropy.tables import PRECISION, TABLE_VERSION
from neuralcodec.errors import BitstreamError, MediaError, ModelError, NeuralCodecError

#: Largest image side and pixel count the decoder accepts from a header (guards allocations).
MAX_SIDE = 1 << 16
MAX_PIXELS = 1 << 28
#: Quality values written to a file are rounded to this many decimals (encoder uses the same value).
QUALITY_DECIMALS = 4
#: Default MSE rate-distortion weights (loss = bpp + lambda * 255^2 * MSE), lowest quality first.
DEFAULT_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
#: ``entropy.context`` values: the latent's entropy model (``"checkerboard"`` adds a two-pass
#: spatial context to the hyperprior; same file layout of chunks, different y chunk contents).
ENTROPY_CONTEXTS = {"none": Hyperprior, "checkerboard": CheckerboardHyperprior}


@dataclass
class ImageCodecOutput:
    """What :meth:`ImageCodec.forward` returns (all per image of the batch)."""

    x_hat: Tensor  # [B, 3, H, W] reconstruction (unclamped), cropped to the input size
    y_bits: Tensor  # [B] -sum log2 p(y_hat | z_hat)
    z_bits: Tensor  # [B] -sum log2 p(z_hat)
    num_pixels: int  # H * W of the input (unpadded)

    @property
    def bits(self) -> Tensor:
        """Total estimated bits per image ``[B]``."""
        return self.y_bits + self.z_bits

    @property
    def bpp(self) -> Tensor:
        """Estimated bits per (unpadded) pixel ``[B]``."""
        return self.bits / self.num_pixels


def _bits(likelihoods: Tensor) -> Tensor:
    """``-sum log2 p`` per batch item of ``likelihoods [B, ...]`` -> ``[B]``."""
    return -torch.log2(likelihoods).flatten(1).sum(dim=1)


def _format_quality(value: float) -> int | float:
    """Quality as written to metadata: an int for integer levels, else rounded to QUALITY_DECIMALS."""
    rounded = round(float(value), QUALITY_DECIMALS)
    return int(rounded) if rounded.is_integer() else rounded


class ImageCodec(Codec):
    """Mean-scale hyperprior image codec with ``Q`` quality levels in one model.

    ``config`` keys: ``N`` (transform channels), ``M`` (latent channels), ``lambdas`` (one
    rate-distortion weight per quality level, increasing; their count is ``Q``),
    ``default_quality``, ``gain_spread`` (initial gain range), ``decoder_quantization``
    (``"ste"``: the synthesis sees rounded latents in training, ``"noise"``: noisy ones),
    ``entropy`` (kwargs of :class:`~neuralcodec.entropy.Hyperprior`: ``z_channels``,
    ``hidden_channels``, ``scale_min``, ``scale_max``, ``num_scales``, ``act_frac_bits``, and
    ``context``: ``"none"`` or ``"checkerboard"`` with ``context_hidden``, ``context_kernel`` and
    ``channel_groups``: a count or a list of sizes, coded in sequence within each checkerboard pass),
    ``target_bpp_refine`` (bisection steps between levels for ``target_bpp``), optional ``name``.
    """

    modality = Modality.IMAGE
    codec_id = "image"
    input_extensions = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        cfg = self.config
        unknown = set(cfg) - {"codec", "name", "N", "M", "lambdas", "default_quality", "gain_spread",
                              "decoder_quantization", "entropy", "target_bpp_refine"}
        if unknown:
            raise ModelError(f"unknown image codec config key(s): {', '.join(sorted(unknown))}")
        self.N, self.M = int(cfg.get("N", 128)), int(cfg.get("M", 192))
        self.lambdas = [float(v) for v in cfg.get("lambdas", DEFAULT_LAMBDAS)]
        if len(self.lambdas) < 1 or any(b <= a for a, b in zip(self.lambdas, self.lambdas[1:])) \
                or min(self.lambdas) <= 0:
            raise ModelError("lambdas must be positive and strictly increasing (one per quality level)")
        self.num_qualities = len(self.lambdas)
        self.default_quality = int(cfg.get("default_quality", (self.num_qualities + 1) // 2))
        if not 1 <= self.default_quality <= self.num_qualities:
            raise ModelError(f"default_quality must lie in 1..{self.num_qualities}")
        self.decoder_quantization = str(cfg.get("decoder_quantization", "ste"))
        if self.decoder_quantization not in ("ste", "noise"):
            raise ModelError("decoder_quantization must be 'ste' or 'noise'")
        self.target_bpp_refine = int(cfg.get("target_bpp_refine", 6))
        entropy = dict(cfg.get("entropy", {}))
        z_channels = int(entropy.pop("z_channels", self.N))
        hidden = int(entropy.pop("hidden_channels", self.N))
        context = str(entropy.pop("context", "none"))
        if context not in ENTROPY_CONTEXTS:
            raise ModelError(f"entropy.context must be one of {', '.join(ENTROPY_CONTEXTS)}, got {context!r}")
        self.g_a = AnalysisTransform(self.N, self.M)
        self.g_s = SynthesisTransform(self.N, self.M)
        self.gain = QualityGain(self.num_qualities, self.M, float(cfg.get("gain_spread", 3.0)))
        try:
            self.hyperprior = ENTROPY_CONTEXTS[context](self.M, z_channels, hidden, **entropy)
        except TypeError as exc:  # an option of another entropy model, e.g. context_hidden without a context
            raise ModelError(f"entropy options do not fit entropy.context={context!r}: {exc}") from None
        except ValueError as exc:  # e.g. channel_groups that do not add up to M
            raise ModelError(f"entropy: {exc}") from None

    # ----- identity ---------------------------------------------------------------------------
    @property
    def entropy_model_id(self) -> str:
        return f"{self.hyperprior.model_name}/{self.hyperprior.gaussian.family}/tables-v{TABLE_VERSION}"

    @property
    def coder_precision(self) -> int:
        return PRECISION

    def freeze(self) -> "ImageCodec":
        """Build the entropy model's integer tables from the current weights (after training)."""
        self.hyperprior.freeze()
        self._fingerprint = None
        return self

    def aux_loss(self) -> Tensor:
        """Quantile loss of the side-latent prior (trained alongside the R-D loss)."""
        return self.hyperprior.aux_loss()

    # ----- quality ----------------------------------------------------------------------------
    def _qualities(self, quality: Tensor | float | int | None, batch: int, device: torch.device) -> Tensor:
        if quality is None:
            quality = float(self.default_quality)
        q = torch.as_tensor(quality, dtype=torch.float32, device=device).reshape(-1)
        if q.numel() == 1 and batch > 1:
            q = q.expand(batch)
        if q.numel() != batch:
            raise ValueError(f"{q.numel()} qualities for a batch of {batch}")
        return self.gain.check(q).to(device)

    def lambda_at(self, quality: float) -> float:
        """The rate-distortion weight of ``quality`` (cost = bits/px + lambda * 255^2 * MSE), as trained."""
        return float(interpolate_lambdas(self.lambdas, torch.tensor([float(quality)]))[0])

    # ----- training / evaluation --------------------------------------------------------------
    def forward(self, x: Tensor, quality: Tensor | float | int | None = None) -> ImageCodecOutput:
        """Reconstruction and code lengths for ``x [B, 3, H, W]`` at ``quality`` (float ``[B]`` or scalar).

        Training: additive-noise rate proxy; the synthesis sees ``round_ste(y - mean) + mean``
        (``decoder_quantization="ste"``). Eval mode (frozen model): exactly the coding path,
        with the exact integer-table code lengths.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {tuple(x.shape)}")
        height, width = x.shape[-2:]
        q = self._qualities(quality, x.shape[0], x.device)
        y = self.g_a(pad_to_multiple(x, STRIDE))
        hp = self.hyperprior
        y = y.float() * self.gain.gain(q)  # mixed precision: only the transforms run in low precision
        if self.training:
            y_noisy, means, lik_y, lik_z = hp.float_path(y)
            y_hat = round_ste(y - means) + means if self.decoder_quantization == "ste" else y_noisy
        else:
            y_hat, liks = hp(y)
            lik_y, lik_z = liks["y"], liks["z"]
        x_hat = self.g_s(y_hat * self.gain.inverse_gain(q))
        return ImageCodecOutput(crop_to(x_hat.float(), height, width), _bits(lik_y), _bits(lik_z), height * width)

    # ----- coding -----------------------------------------------------------------------------
    @staticmethod
    def _as_image(x: Any) -> Tensor:
        """``[C, H, W]`` float in [0, 1] with C in (1, 3), from a tensor ``[C, H, W]`` or ``[1, C, H, W]``."""
        x = torch.as_tensor(x)
        if x.dim() == 4 and x.shape[0] == 1:
            x = x[0]
        if x.dim() != 3 or x.shape[0] not in (1, 3) or x.shape[1] < 1 or x.shape[2] < 1:
            raise MediaError(f"expected an image tensor [C, H, W] with C = 1 or 3, got shape {tuple(x.shape)}")
        if not torch.is_floating_point(x):
            raise MediaError(f"expected a float image in [0, 1], got {x.dtype}")
        if not bool(torch.isfinite(x).all()):
            raise MediaError("image contains non-finite values")
        if x.shape[1] > MAX_SIDE or x.shape[2] > MAX_SIDE or x.shape[1] * x.shape[2] > MAX_PIXELS:
            raise MediaError(f"image of {x.shape[2]}x{x.shape[1]} pixels is larger than this codec supports")
        return x.float().clamp(0.0, 1.0)

    def _code(self, y: Tensor, quality: float) -> list[bytes]:
        """Chunks ``[z bytes, y bytes]`` for the ungained latent ``y [1, M, h, w]`` at ``quality``."""
        q = torch.tensor([quality], dtype=torch.float32, device=y.device)
        return self._code_gained(y * self.gain.gain(q))

    def _code_gained(self, y: Tensor) -> list[bytes]:
        """Chunks ``[z bytes, y bytes]`` for the gained latent ``y [1, M, h, w]``."""
        try:
            (y_strings, z_strings), _ = self.hyperprior.compress(y)
        except ValueError as exc:
            raise ModelError(f"cannot entropy-code this image with model {self.model_id!r}: {exc}") from exc
        return [z_strings[0], y_strings[0]]

    def _metadata(self, height: int, width: int, channels: int, quality: float) -> Metadata:
        return {"width": width, "height": height, "channels": channels, "quality": _format_quality(quality)}

    @torch.no_grad()
    def compress(self, x: Any, quality: float | int | None = None, target_bpp: float | None = None,
                 steps: int | None = None, postfilter: bool = True,
                 **options: Any) -> tuple[Metadata, Iterator[bytes]]:
        """Image ``[C, H, W]`` in [0, 1] -> (metadata, chunks). ``target_bpp`` searches the quality
        (on the size without the post-filter, which adds at most a few hundred bytes); ``steps`` > 0
        refines the latent for this image first (slower encoding, same decoder; see
        :mod:`neuralcodec.codecs.image.refine`); ``postfilter=False`` leaves out the per-image filter
        (faster encoding; the decoded image is then exactly the eval-mode reconstruction)."""
        unsupported = sorted(k for k, v in options.items() if v is not None)
        if unsupported:
            raise NeuralCodecError("option(s) not supported by the image codec: "
                                   + ", ".join("--" + k.replace("_", "-") for k in unsupported))
        if quality is not None and target_bpp is not None:
            raise NeuralCodecError("give either --quality or --target-bpp, not both")
        if quality is not None:
            if not (isinstance(quality, (int, float)) and 1 <= quality <= self.num_qualities):
                raise NeuralCodecError(f"--quality must lie in 1..{self.num_qualities} (higher = better), "
                                       f"got {quality}")
        if target_bpp is not None and not (math.isfinite(target_bpp) and target_bpp > 0):
            raise NeuralCodecError(f"--target-bpp must be a positive number, got {target_bpp}")
        if steps is not None:
            if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_REFINE_STEPS:
                raise NeuralCodecError(f"--steps (latent refinement) must be an integer in 0..{MAX_REFINE_STEPS}, "
                                       f"got {steps}")
            if steps and target_bpp is not None:
                raise NeuralCodecError("--steps (latent refinement) cannot be combined with --target-bpp; "
                                       "give --quality")
        self.hyperprior.require_frozen()
        image = self._as_image(x)
        channels, height, width = image.shape
        rgb = image.expand(3, -1, -1) if channels == 1 else image
        device = next(self.parameters()).device
        y = self.g_a(pad_to_multiple(rgb[None].to(device), STRIDE))
        if target_bpp is not None:
            q_value, chunks = self._search_quality(y, height, width, channels, float(target_bpp))
        else:
            q_value = float(_format_quality(self.default_quality if quality is None else quality))
            chunks = self._code(y, q_value)
            if steps:
                chunks = self._refined(image, y, q_value, steps, chunks)
        metadata = self._metadata(height, width, channels, q_value)
        if postfilter:
            found = fit_postfilter(self._decode_rgb(metadata, chunks), image.cpu(), self.lambda_at(q_value))
            if found is not None:
                metadata["filter"] = found.kernel
                chunks = [*chunks, found.to_bytes()]
        return metadata, iter(chunks)

    def _refined(self, image: Tensor, y: Tensor, quality: float, steps: int, amortized: list[bytes]) -> list[bytes]:
        """Chunks of the refined latent, or ``amortized`` where refining did not lower the exact
        cost ``bpp + lambda(q) * 255^2 * MSE`` (actual file bits, decoded image)."""
        channels, height, width = image.shape
        rgb = (image.expand(3, -1, -1) if channels == 1 else image)[None].to(y.device)
        q = torch.tensor([quality], dtype=torch.float32, device=y.device)
        refined = self._code_gained(refine_latent(self, rgb, y * self.gain.gain(q), q, steps))
        lam = self.lambda_at(quality)
        metadata = self._metadata(height, width, channels, quality)

        def cost(chunks: list[bytes]) -> float:
            mse = float((self.decompress(metadata, chunks) - image.cpu()).pow(2).mean())
            return self._file_bits(metadata, chunks) / (height * width) + lam * 255.0**2 * mse

        return refined if cost(refined) < cost(amortized) else amortized

    def _file_bits(self, metadata: Metadata, chunks: list[bytes]) -> int:
        """Exact size in bits of the file ``codec encode`` writes for these chunks."""
        from neuralcodec.bitstream import bitstream_to_bytes

        return 8 * len(bitstream_to_bytes(self.stream_header(metadata), chunks))

    def _search_quality(self, y: Tensor, height: int, width: int, channels: int,
                        target_bpp: float) -> tuple[float, list[bytes]]:
        """The quality whose whole file is closest to ``target_bpp`` (actual sizes, not estimates).

        Bisection over the integer levels (file size grows with quality), then ``target_bpp_refine``
        bisection steps on the continuous quality between the two bracketing levels.
        """
        pixels = height * width
        tried: dict[float, tuple[float, list[bytes]]] = {}

        def bpp_at(q: float) -> float:
            q = float(_format_quality(q))
            if q not in tried:
                chunks = self._code(y, q)
                tried[q] = (self._file_bits(self._metadata(height, width, channels, q), chunks) / pixels, chunks)
            return tried[q][0]

        lo, hi = 1, self.num_qualities
        if bpp_at(lo) < target_bpp < bpp_at(hi):
            while hi - lo > 1:  # invariant: bpp(lo) < target < bpp(hi)
                mid = (lo + hi) // 2
                if bpp_at(mid) < target_bpp:
                    lo = mid
                else:
                    hi = mid
            a, b = float(lo), float(hi)
            for _ in range(self.target_bpp_refine):
                mid = 0.5 * (a + b)
                if bpp_at(mid) < target_bpp:
                    a = mid
                else:
                    b = mid
        best = min(tried, key=lambda q: (abs(tried[q][0] - target_bpp), -q))
        return best, tried[best][1]

    def _check_metadata(self, metadata: Mapping[str, Any]) -> tuple[int, int, int, float, int]:
        """``(width, height, channels, quality, filter size)`` (filter size 0: no post-filter chunk)."""
        try:
            width, height = int(metadata["width"]), int(metadata["height"])
            channels, quality = int(metadata["channels"]), float(metadata["quality"])
            kernel = metadata.get("filter", 0)
        except (KeyError, TypeError, ValueError) as exc:
            raise BitstreamError(f"image stream metadata is missing or malformed: {exc}") from None
        if isinstance(kernel, bool) or not isinstance(kernel, int) or (kernel and kernel not in FILTER_SIZES):
            raise BitstreamError(f"image stream post-filter size {kernel!r} is not one of {FILTER_SIZES}")
        if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE and width * height <= MAX_PIXELS):
            raise BitstreamError(f"image stream has an invalid size {width}x{height}")
        if channels not in (1, 3):
            raise BitstreamError(f"image stream has {channels} channels (1 or 3 expected)")
        if not (math.isfinite(quality) and 1 <= quality <= self.num_qualities):
            raise BitstreamError(f"image stream quality {quality} is outside 1..{self.num_qualities}")
        return width, height, channels, quality, kernel

    def _decode_rgb(self, metadata: Mapping[str, Any], chunks: Iterable[bytes]) -> Tensor:
        """The synthesis output ``[3, H, W]`` in [0, 1] from the ``z`` and ``y`` chunks (before any filter)."""
        width, height, _, quality, _ = self._check_metadata(metadata)
        z_bytes, y_bytes = chunks
        self.hyperprior.require_frozen()
        pad_h, pad_w = padded_size(height, width, STRIDE)
        y_hat = self.hyperprior.decompress([[y_bytes], [z_bytes]], (pad_h // STRIDE, pad_w // STRIDE))
        device = next(self.parameters()).device
        q = torch.tensor([quality], dtype=torch.float32, device=device)
        x_hat = self.g_s(y_hat.to(device) * self.gain.inverse_gain(q))
        return crop_to(x_hat[0], height, width).clamp(0.0, 1.0).float().cpu()

    @torch.no_grad()
    def decompress(self, metadata: Mapping[str, Any], chunks: Iterable[bytes]) -> Tensor:
        """(metadata, chunks) -> image ``[C, H, W]`` float in [0, 1] (C from the metadata)."""
        _, _, channels, _, kernel = self._check_metadata(metadata)
        expected = 3 if kernel else 2
        payloads = []
        for payload in chunks:
            payloads.append(bytes(payload))
            if len(payloads) > expected:
                break
        if len(payloads) != expected:
            what = "z, y, then the post-filter" if kernel else "z, then y"
            raise BitstreamError(f"image stream has {len(payloads)} chunk(s); expected {expected} ({what})")
        postfilter = PostFilter.from_bytes(payloads[2], kernel, channels) if kernel else None
        image = self._decode_rgb(metadata, payloads[:2])
        if postfilter is not None:
            return postfilter.apply(image)
        return image.mean(dim=0, keepdim=True) if channels == 1 else image

    # ----- files ------------------------------------------------------------------------------
    def compress_file(self, path: Any, quality: float | int | None = None, target_bpp: float | None = None,
                      steps: int | None = None, no_postfilter: bool | None = None,
                      **options: Any) -> tuple[Metadata, Iterator[bytes]]:
        """Read an 8-bit image (RGB or grayscale) and compress it (``no_postfilter``: the CLI's
        ``--no-postfilter``)."""
        from neuralcodec.media import load_image

        unsupported = sorted(k for k, v in options.items() if v is not None)
        if unsupported:
            raise NeuralCodecError("option(s) not supported by the image codec: "
                                   + ", ".join("--" + k.replace("_", "-") for k in unsupported))
        return self.compress(load_image(path, mode="auto"), quality=quality, target_bpp=target_bpp, steps=steps,
                             postfilter=not no_postfilter)

    def decompress_to_file(self, metadata: Mapping[str, Any], chunks: Iterable[bytes], path: Any,
                           **options: Any) -> None:
        """Decode and write an 8-bit image (format from the extension, e.g. .png), atomically."""
        from neuralcodec.media import save_image

        unsupported = sorted(k for k, v in options.items() if v is not None)
        if unsupported:
            raise NeuralCodecError("option(s) not supported by the image codec: "
                                   + ", ".join("--" + k.replace("_", "-") for k in unsupported))
        image = self.decompress(metadata, chunks)
        save_image(Path(path), image)


__all__ = ["DEFAULT_LAMBDAS", "ImageCodec", "ImageCodecOutput"]
