"""DCVC-style conditional video codec: intra frames from the image codec, inter frames coded
conditionally on a propagated temporal context, a spatiotemporal entropy model, one model for
the whole quality range.

Per group of pictures (``gop`` frames): frame 0 is coded by an embedded
:class:`~neuralcodec.codecs.image.ImageCodec` (same classes and state-dict layout as the shipped
``image`` model, so its weights can warm-start ``intra.*``); every following frame is a P-frame:

1. :class:`~.context.TemporalContext` turns the previous decoder feature (or, after an intra frame
   and every ``refresh_period`` P-frames, features re-extracted from the decoded pixels) into
   contexts ``c1..c4``, modulated by the quality;
2. :class:`~.inter.ContextualEncoder` maps ``(x, c1, c2, c3)`` to ``y``, scaled by the learned
   per-quality gain (the quantization step selected by ``--quality``, DCVC-FM);
3. :class:`~.stem.SpatioTemporalPrior` codes ``y`` given ``z``, the previous latent, ``c4`` and a
   checkerboard spatial context (integer-exact table indices);
4. :class:`~.inter.ContextualDecoder` reconstructs ``x_hat`` and the feature passed on.

Shapes: clips ``[B, T, 3, H, W]`` in [0, 1] (RGB; y4m frames are converted with BT.601/709);
frames are edge-padded to multiples of 64 and cropped back. The eval-mode :meth:`forward` of a
frozen model runs exactly the coding path, frame by frame, so a decoded video equals the eval
forward reconstruction and the file size matches its estimated bits (plus container overhead).

Bitstream (``docs/bitstream.md``): one chunk per frame, ``u8`` frame type then the payload:
type 0 (intra) ``u32 len(z) | z stream | y stream``, type 1 (inter) one ANS stream
``z | anchors | non-anchors``. Decoders keep one frame of state: memory does not grow with length.
"""

from __future__ import annotations

import math
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch
from torch import Tensor

from neuralcodec.bitstream import Modality
from neuralcodec.codecs.base import Codec, Metadata
from neuralcodec.codecs.image.codec import DEFAULT_LAMBDAS, QUALITY_DECIMALS, ImageCodec
from neuralcodec.codecs.image.gain import QualityGain, interpolate_lambdas
from neuralcodec.codecs.image.padding import crop_to, pad_to_multiple, padded_size
from neuralcodec.codecs.image.transforms import LATENT_STRIDE, STRIDE
from neuralcodec.codecs.video.context import TemporalContext
from neuralcodec.codecs.video.inter import ContextualDecoder, ContextualEncoder
from neuralcodec.codecs.video.stem import SpatioTemporalPrior
from neuralcodec.entropy.tables import PRECISION, TABLE_VERSION
from neuralcodec.errors import BitstreamError, MediaError, ModelError, NeuralCodecError

INTRA, INTER = 0, 1
_LEN = struct.Struct("<I")
MAX_SIDE = 1 << 14
MAX_FRAMES = 1 << 24
CHROMAS = ("420", "444", "mono")
#: encoder frame-type decisions: "adaptive" also codes a P-frame position as an intra frame when that
#: costs less (bpp + lambda(q) 255^2 MSE of the decoded frame); "fixed": intra only every ``gop`` frames
FRAME_TYPES = ("adaptive", "fixed")


@dataclass
class VideoCodecOutput:
    """What :meth:`ConditionalVideoCodec.forward` returns."""

    x_hat: Tensor  # [B, T, 3, H, W] reconstruction (unclamped), cropped to the input size
    bits: Tensor  # [B, T] estimated (eval + frozen: exact) bits per frame
    num_pixels: int  # H * W of one frame (unpadded)
    intra: list[bool]  # [T] frame types

    @property
    def bpp(self) -> Tensor:
        """Bits per pixel per frame ``[B, T]``."""
        return self.bits / self.num_pixels


@dataclass
class _Reference:
    """Decoder state carried from one frame to the next (one frame's worth of tensors)."""

    x_hat: Tensor  # [B, 3, Hp, Wp] previous decoded frame, clamped to [0, 1]
    feature: Tensor | None  # [B, N, Hp/2, Wp/2] previous inter decoder feature (None after intra)
    older: Tensor | None  # the feature before it (extrapolated alignment only)
    y_hat: Tensor  # [B, M, Hp/16, Wp/16] previous inter latent (zeros after intra)
    sym: Tensor  # its coded residual symbols
    p_index: int  # P-frames since the last intra frame


def _bits(likelihoods: Tensor) -> Tensor:
    return -torch.log2(likelihoods).flatten(1).sum(dim=1)


def _format_quality(value: float) -> int | float:
    rounded = round(float(value), QUALITY_DECIMALS)
    return int(rounded) if rounded.is_integer() else rounded


class ConditionalVideoCodec(Codec):
    """Conditional (DCVC-style) learned video codec with ``Q`` quality levels in one model.

    ``config`` keys: ``lambdas`` (R-D weight per quality, increasing), ``default_quality``,
    ``gop`` (default intra period), ``refresh_period`` (P-frames between context refreshes from
    pixels; 0 = only after intra frames), ``intra`` (kwargs of the embedded ImageCodec: ``N``,
    ``M``, ``entropy``, ...), ``inter`` (``N``, ``M``, ``C`` context channels, ``gain_spread``,
    ``alignment`` = ``"none"``/``"extrapolated"``, ``entropy``: ``z_channels``,
    ``hidden_channels``, ``num_scales``, ``scale_min``, ``scale_max``), optional ``name``.
    """

    modality = Modality.VIDEO
    codec_id = "video-conditional"
    input_extensions = (".y4m",)

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        cfg = self.config
        unknown = set(cfg) - {"codec", "name", "lambdas", "default_quality", "gop", "refresh_period", "intra", "inter"}
        if unknown:
            raise ModelError(f"unknown video codec config key(s): {', '.join(sorted(unknown))}")
        self.lambdas = [float(v) for v in cfg.get("lambdas", DEFAULT_LAMBDAS)]
        self.num_qualities = len(self.lambdas)
        self.default_quality = int(cfg.get("default_quality", (self.num_qualities + 1) // 2))
        self.gop = int(cfg.get("gop", 32))
        self.refresh_period = int(cfg.get("refresh_period", 8))
        if self.gop < 1 or self.refresh_period < 0:
            raise ModelError("gop must be >= 1 and refresh_period >= 0")
        intra = {k: v for k, v in dict(cfg.get("intra", {})).items() if k not in ("codec", "name", "lambdas")}
        self.intra = ImageCodec({"codec": "image", "name": f"{self.model_id}-intra", "lambdas": self.lambdas,
                                 "default_quality": self.default_quality, **intra})
        inter = dict(cfg.get("inter", {}))
        unknown = set(inter) - {"N", "M", "C", "gain_spread", "alignment", "entropy"}
        if unknown:
            raise ModelError(f"unknown inter config key(s): {', '.join(sorted(unknown))}")
        n, m, c = int(inter.get("N", 96)), int(inter.get("M", 96)), int(inter.get("C", 48))
        self.N, self.M, self.C = n, m, c
        entropy = dict(inter.get("entropy", {}))
        z_channels = int(entropy.pop("z_channels", n))
        hidden = int(entropy.pop("hidden_channels", n))
        self.context = TemporalContext(n, c, self.num_qualities, str(inter.get("alignment", "none")))
        self.encoder = ContextualEncoder(n, m, c)
        self.decoder = ContextualDecoder(n, m, c)
        self.gain = QualityGain(self.num_qualities, m, float(inter.get("gain_spread", 3.0)))
        self.prior = SpatioTemporalPrior(m, z_channels, hidden, c, **entropy)

    # ----- identity -----------------------------------------------------------------------------
    @property
    def entropy_model_id(self) -> str:
        return f"conditional-stem-checkerboard/{self.prior.gaussian.family}/tables-v{TABLE_VERSION}"

    @property
    def coder_precision(self) -> int:
        return PRECISION

    def freeze(self) -> "ConditionalVideoCodec":
        """Build every integer table from the current weights (after training)."""
        self.intra.freeze()
        self.prior.freeze()
        self._fingerprint = None
        return self

    def aux_loss(self) -> Tensor:
        """Quantile losses of both side-latent priors."""
        return self.intra.aux_loss() + self.prior.aux_loss()

    def aux_parameters(self) -> list[Tensor]:
        return [self.intra.hyperprior.factorized.quantiles, self.prior.factorized.quantiles]

    def _qualities(self, quality: Tensor | float | int | None, batch: int, device: torch.device) -> Tensor:
        q = torch.as_tensor(float(self.default_quality) if quality is None else quality, dtype=torch.float32)
        q = q.reshape(-1).to(device)
        if q.numel() == 1 and batch > 1:
            q = q.expand(batch)
        if q.numel() != batch:
            raise ValueError(f"{q.numel()} qualities for a batch of {batch}")
        return self.gain.check(q).to(device)

    def is_refresh(self, p_index: int, refresh_period: int | None = None) -> bool:
        """Whether P-frame ``p_index`` (1-based since the intra frame) re-extracts its context from pixels."""
        period = self.refresh_period if refresh_period is None else refresh_period
        return p_index > 1 and period > 0 and (p_index - 1) % period == 0

    # ----- one frame ----------------------------------------------------------------------------
    def _intra_reference(self, x_hat: Tensor) -> _Reference:
        b, _, hp, wp = x_hat.shape
        zeros = x_hat.new_zeros(b, self.M, hp // LATENT_STRIDE, wp // LATENT_STRIDE)
        return _Reference(x_hat.clamp(0.0, 1.0), None, None, zeros, zeros, 0)

    def _contexts(self, ref: _Reference, q: Tensor, refresh_period: int | None):
        p_index = ref.p_index + 1
        source = self.context.source(ref.feature, ref.older, ref.x_hat, self.is_refresh(p_index, refresh_period))
        return p_index, self.context(source, q)

    def _reconstruct(self, ref: _Reference, p_index: int, ctx, y_hat: Tensor, sym: Tensor, q: Tensor
                     ) -> tuple[Tensor, _Reference]:
        c1, c2, c3, _ = ctx
        x_hat, feature = self.decoder(y_hat * self.gain.inverse_gain(q), c1, c2, c3)
        older = ref.feature if self.context.alignment != "none" else None
        return x_hat, _Reference(x_hat.clamp(0.0, 1.0), feature, older, y_hat, sym, p_index)

    def _inter_step(self, x: Tensor, q: Tensor, ref: _Reference, refresh_period: int | None
                    ) -> tuple[Tensor, Tensor, _Reference]:
        """Padded frame ``x [B, 3, Hp, Wp]`` -> ``(x_hat, bits [B], next reference)``."""
        p_index, ctx = self._contexts(ref, q, refresh_period)
        y = self.encoder(x, *ctx[:3]) * self.gain.gain(q)
        y_hat, sym, liks = self.prior(y, ctx[3], ref.y_hat, ref.sym)
        x_hat, ref = self._reconstruct(ref, p_index, ctx, y_hat, sym, q)
        return x_hat, _bits(liks["y"]) + _bits(liks["z"]), ref

    # ----- training / evaluation ----------------------------------------------------------------
    def forward(self, clip: Tensor, quality: Tensor | float | int | None = None, gop: int | None = None,
                refresh_period: int | None = None, intra: Sequence[bool] | None = None) -> VideoCodecOutput:
        """Reconstruction and bits of ``clip [B, T, 3, H, W]``; frame ``t`` is intra iff ``t % gop == 0``,
        or iff ``intra[t]`` where the frame types are given (e.g. those an adaptive encoder chose).

        Training: noise rate proxies, STE-rounded latents, gradients through the whole prediction
        chain. Eval mode (frozen model): exactly the coding path.
        """
        if clip.dim() != 5 or clip.shape[2] != 3:
            raise ValueError(f"expected clips [B, T, 3, H, W], got {tuple(clip.shape)}")
        b, t_len, _, height, width = clip.shape
        if intra is not None and len(intra) != t_len:
            raise ValueError(f"{len(intra)} frame types for {t_len} frames")
        q = self._qualities(quality, b, clip.device)
        gop = self.gop if gop is None else int(gop)
        frames, bits, types = [], [], []
        ref: _Reference | None = None
        for t in range(t_len):
            x = pad_to_multiple(clip[:, t], STRIDE)
            if ref is None or (bool(intra[t]) if intra is not None else t % gop == 0):
                out = self.intra(x, q)
                x_hat, frame_bits = out.x_hat, out.bits
                ref = self._intra_reference(x_hat)
                types.append(True)
            else:
                x_hat, frame_bits, ref = self._inter_step(x, q, ref, refresh_period)
                types.append(False)
            frames.append(crop_to(x_hat, height, width))
            bits.append(frame_bits)
        return VideoCodecOutput(torch.stack(frames, dim=1), torch.stack(bits, dim=1), height * width, types)

    # ----- coding: frames -----------------------------------------------------------------------
    def _encode_intra(self, x: Tensor, q: Tensor) -> tuple[bytes, _Reference]:
        y = self.intra.g_a(x)
        z_bytes, y_bytes = self.intra._code(y, float(q[0]))
        x_hat = self.intra(x, q).x_hat  # the eval forward == what the decoder reconstructs
        return bytes([INTRA]) + _LEN.pack(len(z_bytes)) + z_bytes + y_bytes, self._intra_reference(x_hat)

    def _decode_intra(self, payload: bytes, q: Tensor, padded: tuple[int, int]) -> tuple[Tensor, _Reference]:
        if len(payload) < 1 + _LEN.size:
            raise BitstreamError("intra frame payload is too short")
        (z_len,) = _LEN.unpack_from(payload, 1)
        if z_len > len(payload) - 1 - _LEN.size:
            raise BitstreamError("intra frame payload is malformed (z stream runs past the end)")
        z_bytes, y_bytes = payload[5:5 + z_len], payload[5 + z_len:]
        hp, wp = padded
        y_hat = self.intra.hyperprior.decompress([[y_bytes], [z_bytes]], (hp // STRIDE, wp // STRIDE))
        x_hat = self.intra.g_s(y_hat.to(q.device) * self.intra.gain.inverse_gain(q))
        return x_hat, self._intra_reference(x_hat)

    def _encode_inter(self, x: Tensor, q: Tensor, ref: _Reference) -> tuple[bytes, Tensor, _Reference]:
        p_index, ctx = self._contexts(ref, q, None)
        y = self.encoder(x, *ctx[:3]) * self.gain.gain(q)
        data, y_hat, sym = self.prior.compress_frame(y, ctx[3], ref.y_hat, ref.sym)
        x_hat, ref = self._reconstruct(ref, p_index, ctx, y_hat, sym, q)
        return bytes([INTER]) + data, x_hat, ref

    def _decode_inter(self, payload: bytes, q: Tensor, ref: _Reference) -> tuple[Tensor, _Reference]:
        p_index, ctx = self._contexts(ref, q, None)
        latent = (ref.y_hat.shape[-2], ref.y_hat.shape[-1])
        y_hat, sym = self.prior.decompress_frame(payload[1:], latent, ctx[3], ref.y_hat, ref.sym)
        return self._reconstruct(ref, p_index, ctx, y_hat, sym, q)

    # ----- coding: streams ----------------------------------------------------------------------
    def _check_options(self, quality: Any, gop: Any) -> tuple[float, int]:
        if quality is not None and not (isinstance(quality, (int, float)) and 1 <= quality <= self.num_qualities):
            raise NeuralCodecError(f"--quality must lie in 1..{self.num_qualities} (higher = better), got {quality}")
        if gop is not None and not (isinstance(gop, int) and 1 <= gop <= MAX_FRAMES):
            raise NeuralCodecError(f"--gop must be a positive number of frames, got {gop}")
        q = float(_format_quality(self.default_quality if quality is None else quality))
        return q, self.gop if gop is None else int(gop)

    @staticmethod
    def _check_frame_types(frame_types: Any) -> str:
        if frame_types is None:
            return "adaptive"
        if frame_types not in FRAME_TYPES:
            raise NeuralCodecError(f"--frame-types must be one of {', '.join(FRAME_TYPES)}, got {frame_types!r}")
        return str(frame_types)

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def encode_frames(self, frames: Iterable[Tensor], quality: float, gop: int, num_frames: int,
                      progress: bool = False, frame_types: str = "adaptive") -> Iterator[bytes]:
        """Lazily code RGB frames ``[3, H, W]`` in [0, 1] into one chunk per frame (bounded memory).

        An intra frame starts the stream and follows at most ``gop`` frames after the previous one.
        ``frame_types="adaptive"`` (an encoder decision; the decoder reads each frame's type from its
        chunk) codes every other frame both ways and keeps the intra frame when its rate-distortion
        cost ``bpp + lambda(q) 255^2 MSE`` (actual bytes, decoded pixels) is lower: the P-frame
        networks cannot always beat the intra coder (scene cuts, content they predict badly).
        """
        frame_types = self._check_frame_types(frame_types)
        self.prior.require_frozen()
        self.intra.hyperprior.require_frozen()
        device = self._device()
        q = torch.tensor([quality], dtype=torch.float32, device=device)
        weight = float(interpolate_lambdas(self.lambdas, q)[0]) * 255.0**2
        ref: _Reference | None = None
        since_intra = 0
        bar = _progress(num_frames, "encode", progress)
        try:
            for t, frame in enumerate(frames):
                if t >= num_frames:
                    raise MediaError(f"the video has more frames than the {num_frames} announced")
                height, width = frame.shape[-2:]
                x = pad_to_multiple(frame.to(device, torch.float32)[None], STRIDE)

                def cost(payload: bytes, reference: _Reference) -> float:
                    decoded = crop_to(reference.x_hat, height, width)  # what the decoder outputs
                    mse = float(torch.mean((decoded - crop_to(x, height, width).clamp(0, 1)) ** 2))
                    return 8 * len(payload) / (height * width) + weight * mse

                with torch.no_grad():
                    try:
                        if ref is None or since_intra >= gop:
                            payload, ref = self._encode_intra(x, q)
                        else:
                            payload, _, inter_ref = self._encode_inter(x, q, ref)
                            ref = inter_ref
                            if frame_types == "adaptive":
                                intra_payload, intra_ref = self._encode_intra(x, q)
                                if cost(intra_payload, intra_ref) < cost(payload, inter_ref):
                                    payload, ref = intra_payload, intra_ref
                    except ValueError as exc:
                        raise ModelError(f"cannot entropy-code frame {t} with model {self.model_id!r}: {exc}") from exc
                since_intra = 1 if payload[0] == INTRA else since_intra + 1
                bar.update(1)
                yield payload
        finally:
            bar.close()

    def decode_frames(self, metadata: Mapping[str, Any], chunks: Iterable[bytes], progress: bool = False,
                      limit: int | None = None) -> Iterator[Tensor]:
        """Lazily decode chunks into RGB frames ``[3, H, W]`` in [0, 1] (cropped, clamped, on the CPU).

        ``limit``: stop after that many frames (the caller reads the remaining chunks itself).
        """
        info = self._check_metadata(metadata)
        expected = info["num_frames"] if limit is None else min(int(limit), info["num_frames"])
        self.prior.require_frozen()
        self.intra.hyperprior.require_frozen()
        device = self._device()
        q = torch.tensor([info["quality"]], dtype=torch.float32, device=device)
        padded = padded_size(info["height"], info["width"], STRIDE)
        ref: _Reference | None = None
        count = 0
        bar = _progress(expected, "decode", progress)
        try:
            for payload in chunks:
                if limit is not None and count >= expected:
                    break
                payload = bytes(payload)
                if count >= info["num_frames"]:
                    raise BitstreamError(f"video stream has more than the {info['num_frames']} frames its header declares")
                if not payload or payload[0] not in (INTRA, INTER):
                    raise BitstreamError(f"frame {count}: unknown frame type")
                with torch.no_grad():
                    try:
                        if payload[0] == INTRA:
                            x_hat, ref = self._decode_intra(payload, q, padded)
                        elif ref is None:
                            raise BitstreamError(f"frame {count}: inter frame without a preceding intra frame")
                        else:
                            x_hat, ref = self._decode_inter(payload, q, ref)
                    except (ValueError, RuntimeError) as exc:
                        raise BitstreamError(f"frame {count}: corrupt payload ({exc})") from exc
                count += 1
                bar.update(1)
                yield crop_to(x_hat[0], info["height"], info["width"]).clamp(0.0, 1.0).cpu()
        finally:
            bar.close()
        if count != expected:
            raise BitstreamError(f"video stream has {count} frame(s) but its header declares {info['num_frames']}")

    def _metadata(self, width: int, height: int, num_frames: int, fps: tuple[int, int], chroma: str,
                  quality: float, gop: int, color_range: str = "limited") -> Metadata:
        return {"width": width, "height": height, "num_frames": num_frames, "fps_num": int(fps[0]),
                "fps_den": int(fps[1]), "chroma": chroma, "quality": _format_quality(quality), "gop": gop,
                "refresh_period": self.refresh_period, "color_range": color_range, "matrix": "bt601"}

    def _check_metadata(self, metadata: Mapping[str, Any]) -> dict[str, Any]:
        try:
            info = {"width": int(metadata["width"]), "height": int(metadata["height"]),
                    "num_frames": int(metadata["num_frames"]), "quality": float(metadata["quality"]),
                    "fps": (int(metadata.get("fps_num", 25)), int(metadata.get("fps_den", 1))),
                    "chroma": str(metadata.get("chroma", "420")),
                    "color_range": str(metadata.get("color_range", "limited")),
                    "refresh_period": int(metadata.get("refresh_period", self.refresh_period))}
        except (KeyError, TypeError, ValueError) as exc:
            raise BitstreamError(f"video stream metadata is missing or malformed: {exc}") from None
        if not (1 <= info["width"] <= MAX_SIDE and 1 <= info["height"] <= MAX_SIDE):
            raise BitstreamError(f"video stream has an invalid size {info['width']}x{info['height']}")
        if not 0 <= info["num_frames"] <= MAX_FRAMES:
            raise BitstreamError(f"video stream declares {info['num_frames']} frames")
        if not (math.isfinite(info["quality"]) and 1 <= info["quality"] <= self.num_qualities):
            raise BitstreamError(f"video stream quality {info['quality']} is outside 1..{self.num_qualities}")
        if info["chroma"] not in CHROMAS or info["color_range"] not in ("limited", "full"):
            raise BitstreamError("video stream has an unknown chroma format or colour range")
        if info["refresh_period"] != self.refresh_period:
            raise BitstreamError(f"video stream was coded with refresh period {info['refresh_period']}, "
                                 f"this model uses {self.refresh_period}")
        if min(info["fps"]) < 1:
            raise BitstreamError("video stream has an invalid frame rate")
        return info

    @torch.no_grad()
    def compress(self, x: Any, quality: float | int | None = None, gop: int | None = None,
                 fps: tuple[int, int] = (25, 1), frame_types: str | None = None,
                 **options: Any) -> tuple[Metadata, Iterator[bytes]]:
        """RGB clip ``[T, 3, H, W]`` in [0, 1] -> (metadata, lazily produced chunks, one per frame);
        ``frame_types``: see :meth:`encode_frames` (default ``"adaptive"``)."""
        _reject(options)
        q, gop = self._check_options(quality, gop)
        types = self._check_frame_types(frame_types)
        video = torch.as_tensor(x)
        if video.dim() != 4 or video.shape[1] != 3 or min(video.shape) < 1 or not torch.is_floating_point(video):
            raise MediaError(f"expected a float RGB clip [T, 3, H, W], got {tuple(video.shape)} {video.dtype}")
        if not bool(torch.isfinite(video).all()):
            raise MediaError("video contains non-finite values")
        t_len, _, height, width = video.shape
        if max(height, width) > MAX_SIDE:
            raise MediaError(f"frames of {width}x{height} are larger than this codec supports")
        metadata = self._metadata(width, height, t_len, fps, "444", q, gop)
        return metadata, self.encode_frames((f.clamp(0, 1) for f in video), q, gop, t_len, frame_types=types)

    @torch.no_grad()
    def decompress(self, metadata: Mapping[str, Any], chunks: Iterable[bytes]) -> Tensor:
        """(metadata, chunks) -> RGB clip ``[T, 3, H, W]`` (holds the whole clip: use :meth:`decode_frames` to stream)."""
        frames = list(self.decode_frames(metadata, chunks))
        if not frames:
            info = self._check_metadata(metadata)
            return torch.zeros(0, 3, info["height"], info["width"])
        return torch.stack(frames)

    # ----- files --------------------------------------------------------------------------------
    def compress_file(self, path: Any, quality: float | int | None = None, gop: int | None = None,
                      frame_types: str | None = None, **options: Any) -> tuple[Metadata, Iterator[bytes]]:
        """Stream an 8-bit y4m (4:2:0, 4:4:4 or mono) frame by frame into chunks, with a progress bar."""
        from neuralcodec.media import Y4MReader

        _reject(options)
        q, gop = self._check_options(quality, gop)
        types = self._check_frame_types(frame_types)
        reader = Y4MReader(path)
        try:
            n = reader.num_frames
            if n < 1:
                raise MediaError(f"{path}: the video has no frames")
            if max(reader.width, reader.height) > MAX_SIDE:
                raise MediaError(f"{path}: frames of {reader.width}x{reader.height} are larger than this codec supports")
            color = reader.header.color_range or "limited"
            metadata = self._metadata(reader.width, reader.height, n, reader.fps, reader.chroma, q, gop, color)
        except BaseException:
            reader.close()
            raise
        return metadata, self._file_chunks(reader, metadata, q, gop, types)

    def _file_chunks(self, reader, metadata: Metadata, quality: float, gop: int, frame_types: str) -> Iterator[bytes]:
        from neuralcodec.media import yuv_to_rgb

        full = metadata["color_range"] == "full"
        try:
            frames = (yuv_to_rgb(frame, "bt601", full) for frame in reader)
            yield from self.encode_frames(frames, quality, gop, int(metadata["num_frames"]), progress=True,
                                          frame_types=frame_types)
        finally:
            reader.close()

    def decompress_to_file(self, metadata: Mapping[str, Any], chunks: Iterable[bytes], path: Any,
                           frames: str | None = None, **options: Any) -> None:
        """Decode into a y4m file frame by frame (atomic: nothing is left on error).

        ``frames="A:B"`` writes only frames ``A <= t < B`` (decoding starts at the stream start;
        the rest of the stream is still read, so truncation is detected).
        """
        from neuralcodec.media import Y4MWriter, rgb_to_yuv

        _reject(options)
        info = self._check_metadata(metadata)
        start, stop = _frame_range(frames, info["num_frames"])
        if Path(path).suffix.lower() != ".y4m":
            raise NeuralCodecError(f"video can only be decoded to a .y4m file, not {Path(path).name}")
        chroma = info["chroma"]
        if chroma == "420" and (info["width"] % 2 or info["height"] % 2):
            chroma = "444"  # cannot happen for files made from y4m input; keeps API-made streams decodable
        it = iter(chunks)
        with Y4MWriter(path, info["width"], info["height"], info["fps"], chroma,
                       color_range=info["color_range"]) as writer:
            decoded = self.decode_frames(metadata, it, progress=True, limit=stop)
            for t, frame in enumerate(decoded):
                if t >= start:
                    writer.write(rgb_to_yuv(frame, chroma, "bt601", info["color_range"] == "full"))
            for _ in it:  # check the rest of the container (CRCs, trailer) without decoding
                pass


def _frame_range(frames: str | None, total: int) -> tuple[int, int]:
    if frames is None:
        return 0, total
    try:
        a, b = (frames.split(":") + [""])[:2] if ":" in frames else (frames, str(int(frames) + 1))
        start = int(a) if a.strip() else 0
        stop = int(b) if b.strip() else total
    except ValueError:
        raise NeuralCodecError(f"--frames must look like A:B (e.g. 10:20), got {frames!r}") from None
    if not 0 <= start < stop <= total:
        raise NeuralCodecError(f"--frames {frames} is outside the video's 0:{total}")
    return start, stop


def _reject(options: Mapping[str, Any]) -> None:
    unsupported = sorted(k for k, v in options.items() if v is not None)
    if unsupported:
        raise NeuralCodecError("option(s) not supported by the video codec: "
                               + ", ".join("--" + k.replace("_", "-") for k in unsupported))


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, what: str, enabled: bool):
    """A tqdm bar on stderr (only on a terminal), else a no-op."""
    if not enabled or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit="frame", leave=False, file=sys.stderr)


__all__ = ["FRAME_TYPES", "ConditionalVideoCodec", "VideoCodecOutput"]
