"""The NeRV video codec: fit a network per group of frames, entropy-code its quantized weights.

Encode (:meth:`NervVideoCodec.compress`): the video is split into NIRVANA-style groups of
``group_size`` frames; one :class:`~.network.NervNet` architecture, sized from the target bits per
pixel, is fitted to each group in turn (each group starts from the previous group's fitted
weights), quantized per channel and coded by :mod:`.weightcoding`. Each group is one chunk, so a
decoder can decode frames ``A:B`` from the groups that hold them and skip the others' chunks.

Decode (:meth:`NervVideoCodec.iter_frames`): rebuild the architecture from the header, decode a
group's integers, :func:`~.quant.dequantize` them and run the network one frame at a time; the
encoder produces its reference reconstruction through the very same functions, so decoded frames
equal the fitted, quantized model's output exactly.

The codec itself has no weights: ``load_codec("nerv")`` builds it from its default config
(see :data:`neuralcodec.codecs.registry.CONFIG_ONLY_MODELS`). Layout: ``docs/bitstream.md``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch

from neuralcodec.bitstream import Modality
from neuralcodec.codecs.base import Codec, Metadata
from neuralcodec.codecs.video.nerv import weightcoding as wc
from neuralcodec.codecs.video.nerv.fit import FitConfig, bits_for, fit_group
from neuralcodec.codecs.video.nerv.network import NervArch, NervNet, arch_bits, count_params, size_arch
from neuralcodec.codecs.video.nerv.planes import MAX_FRAMES, MAX_PIXELS_PER_FRAME, VideoPlanes, read_y4m, to_yuv_frames
from neuralcodec.codecs.video.nerv.quant import dequantize, qmax, quantize
from neuralcodec.entropy.tables import PRECISION, TABLE_VERSION
from neuralcodec.errors import BitstreamError, MediaError, ModelError, UsageError
from neuralcodec.media.video import YUVFrame

#: version of the NeRV payload layout (metadata key ``nerv_version``)
NERV_VERSION = 1
#: decoder limits checked before anything is allocated
MAX_PARAMS = 1 << 26
MAX_ACTIVATION = 1 << 28

DEFAULT_CONFIG: dict[str, Any] = {
    "codec": "video-nerv",
    "name": "nerv",
    "embed_dim": 2,
    "weight_bits": 8,
    "embed_bits": 6,
    "group_size": 64,
    "steps": 300,
    "lr": 1e-2,
    "batch_size": 2,
    "qat_fraction": 0.3,
    "target_bpp": 0.1,
    "weight_bits_per_param": 6.8,
    "embed_bits_per_value": 4.5,
    "seed": 0,
    "progress": True,
}


@dataclass
class GroupResult:
    """What the encoder knows about one coded group (kept for tests and benchmarks)."""

    start: int
    stop: int
    net: NervNet  # the quantized network (dequantized integer weights), what the decoder rebuilds
    fit_psnr: float
    estimate_bytes: float
    payload_bytes: int
    fit_seconds: float


@dataclass
class EncodeReport:
    arch: NervArch
    groups: list[GroupResult] = field(default_factory=list)
    container_bytes: int = 0
    #: the sizer's estimate of the network's bits per pixel (above the target when even the
    #: narrowest network exceeds it: small frames, short groups, very low rates)
    planned_bpp: float = 0.0

    @property
    def estimate_bytes(self) -> float:
        """Estimated file size: exact container framing + side information + ideal code lengths."""
        return self.container_bytes + sum(g.estimate_bytes for g in self.groups)

    @property
    def fit_seconds(self) -> float:
        return sum(g.fit_seconds for g in self.groups)


def parse_frames(spec: str | None, num_frames: int) -> tuple[int, int]:
    """``"A:B"`` (either side may be empty) -> ``(A, B)`` with ``0 <= A < B <= num_frames``."""
    if spec is None:
        return 0, num_frames
    parts = str(spec).split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        a = int(parts[0]) if parts[0].strip() else 0
        b = int(parts[1]) if parts[1].strip() else num_frames
    except ValueError:
        raise UsageError(f"--frames must look like A:B (e.g. 10:20), got {spec!r}") from None
    if not 0 <= a < b <= num_frames:
        raise UsageError(f"--frames {spec} is outside the video's frames 0:{num_frames}")
    return a, b


def _ints(values: str, name: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in values.split(","))
    except (ValueError, AttributeError):
        raise BitstreamError(f"NeRV stream metadata {name!r} is malformed") from None
    return out


@dataclass(frozen=True)
class StreamLayout:
    """The validated contents of a NeRV stream header."""

    width: int
    height: int
    num_frames: int
    fps: tuple[int, int]
    chroma: str
    color_range: str | None
    group_size: int
    arch: NervArch
    weight_bits: int
    embed_bits: int

    @property
    def num_groups(self) -> int:
        return -(-self.num_frames // self.group_size)

    def group_span(self, g: int) -> tuple[int, int]:
        return g * self.group_size, min(self.num_frames, (g + 1) * self.group_size)


class NervVideoCodec(Codec):
    """NeRV/HNeRV-style implicit video codec with an entropy-coded weight bitstream.

    ``config`` keys (defaults in :data:`DEFAULT_CONFIG`): ``embed_dim`` (embedding channels),
    ``weight_bits``/``embed_bits`` (quantization bit depths), ``group_size`` (frames per fitted
    group), ``steps`` (optimiser steps per group), ``lr``, ``batch_size`` (frames per step),
    ``qat_fraction``, ``target_bpp`` (default rate), ``weight_bits_per_param`` /
    ``embed_bits_per_value`` (coded-size guesses used to size the network), ``seed``,
    ``progress`` (progress bar with the running PSNR on stderr).
    """

    modality = Modality.VIDEO
    codec_id = "video-nerv"
    input_extensions = (".y4m",)

    def __init__(self, config: Mapping[str, Any]) -> None:
        merged = {**DEFAULT_CONFIG, **dict(config)}
        unknown = set(merged) - set(DEFAULT_CONFIG)
        if unknown:
            raise ModelError(f"unknown NeRV codec config key(s): {', '.join(sorted(unknown))}")
        super().__init__(merged)
        cfg = self.config
        try:
            qmax(int(cfg["weight_bits"]))
            qmax(int(cfg["embed_bits"]))
        except ValueError as exc:
            raise ModelError(str(exc)) from None
        if int(cfg["group_size"]) < 1 or int(cfg["steps"]) < 1 or int(cfg["embed_dim"]) < 1:
            raise ModelError("group_size, steps and embed_dim must be positive")
        self.last_encode: EncodeReport | None = None

    # ----- identity ---------------------------------------------------------------------------
    @property
    def entropy_model_id(self) -> str:
        return (f"nerv-weights/{'+'.join(wc.FAMILY_IDS)}/grid{wc.SCALE_MIN:g}-{wc.SCALE_MAX:g}x{wc.NUM_SCALES}"
                f"/tail{wc.TAIL_MASS:g}/tables-v{TABLE_VERSION}")

    @property
    def coder_precision(self) -> int:
        return PRECISION

    def fit_config(self, steps: int | None = None) -> FitConfig:
        c = self.config
        return FitConfig(steps=int(steps if steps is not None else c["steps"]), lr=float(c["lr"]),
                         batch_size=int(c["batch_size"]), qat_fraction=float(c["qat_fraction"]),
                         weight_bits=int(c["weight_bits"]), embed_bits=int(c["embed_bits"]),
                         seed=int(c["seed"]), progress=bool(c["progress"]))

    # ----- encoding ---------------------------------------------------------------------------
    def plan(self, video: VideoPlanes, target_bpp: float, group_size: int) -> NervArch:
        """The architecture whose estimated coded size per full group matches ``target_bpp``."""
        frames = min(group_size, video.num_frames)
        budget = target_bpp * video.height * video.width * frames
        return size_arch(video.height, video.width, frames, budget, embed_dim=int(self.config["embed_dim"]),
                         weight_bits_per_param=float(self.config["weight_bits_per_param"]),
                         embed_bits_per_value=float(self.config["embed_bits_per_value"]),
                         out_channels=video.out_channels)

    def planned_bpp(self, arch: NervArch, video: VideoPlanes, group_size: int) -> float:
        """The sizer's estimated bits per pixel of ``arch`` (per full group of ``group_size`` frames)."""
        frames = min(group_size, video.num_frames)
        bits = arch_bits(arch, frames, float(self.config["weight_bits_per_param"]),
                         float(self.config["embed_bits_per_value"]))
        return bits / (video.height * video.width * frames)

    @staticmethod
    def _check_options(options: Mapping[str, Any]) -> None:
        unsupported = sorted(k for k, v in options.items() if v is not None)
        if unsupported:
            raise UsageError("option(s) not supported by the NeRV codec: "
                             + ", ".join("--" + k.replace("_", "-") for k in unsupported))

    def compress(self, x: Any, target_bpp: float | None = None, steps: int | None = None,
                 gop: int | None = None, **options: Any) -> tuple[Metadata, Iterator[bytes]]:
        """Video planes -> (metadata, one chunk per group). Fitting runs as the chunks are consumed.

        ``gop`` sets the group size (frames per fitted network), ``steps`` the optimiser steps
        per group. :attr:`last_encode` holds the quantized networks and size estimates afterwards.
        """
        self._check_options(options)
        if not isinstance(x, VideoPlanes):
            raise MediaError(f"the NeRV codec compresses VideoPlanes, not {type(x).__name__}")
        if x.num_frames > MAX_FRAMES or x.height * x.width > MAX_PIXELS_PER_FRAME:
            raise MediaError("video too large for the NeRV codec")
        bpp = float(self.config["target_bpp"] if target_bpp is None else target_bpp)
        if not (math.isfinite(bpp) and 0 < bpp <= 64):
            raise UsageError(f"--target-bpp must be a positive number (at most 64), got {target_bpp}")
        if steps is not None and not (isinstance(steps, int) and 1 <= steps <= 1_000_000):
            raise UsageError(f"--steps must be a positive integer, got {steps}")
        if gop is not None and not (isinstance(gop, int) and 1 <= gop):
            raise UsageError(f"--gop must be a positive integer, got {gop}")
        group_size = min(int(gop if gop is not None else self.config["group_size"]), x.num_frames)
        if x.chroma == "420" and (x.height % 2 or x.width % 2):
            raise MediaError("4:2:0 video needs an even width and height")
        arch = self.plan(x, bpp, group_size)
        planned = self.planned_bpp(arch, x, group_size)
        if planned > 1.1 * bpp:
            warnings.warn(f"--target-bpp {bpp:g} is below the smallest NeRV network for {x.width}x{x.height} "
                          f"in groups of {group_size} frames (about {planned:.3g} bpp); encoding with that network",
                          stacklevel=2)
        fit_cfg = self.fit_config(steps)
        metadata: Metadata = {
            "width": x.width, "height": x.height, "num_frames": x.num_frames,
            "fps_num": int(x.fps[0]), "fps_den": int(x.fps[1]), "chroma": x.chroma,
            "color_range": x.color_range or "", "nerv_version": NERV_VERSION, "group_size": group_size,
            "strides": ",".join(map(str, arch.strides)), "channels": ",".join(map(str, arch.channels)),
            "embed_dim": arch.embed_dim, "embed_h": arch.embed_h, "embed_w": arch.embed_w,
            "weight_bits": fit_cfg.weight_bits, "embed_bits": fit_cfg.embed_bits,
            "target_bpp": round(bpp, 6), "steps": fit_cfg.steps,
        }
        layout = self.parse_metadata(metadata)
        report = EncodeReport(arch, planned_bpp=planned)
        self.last_encode = report
        return metadata, self._encode_groups(x, layout, fit_cfg, report, metadata)

    def _encode_groups(self, video: VideoPlanes, layout: StreamLayout, fit_cfg: FitConfig,
                       report: EncodeReport, metadata: Metadata) -> Iterator[bytes]:
        from neuralcodec.bitstream import bitstream_to_bytes

        previous: NervNet | None = None
        for g in range(layout.num_groups):
            start, stop = layout.group_span(g)
            torch.manual_seed(fit_cfg.seed + g)
            net = NervNet(layout.arch, stop - start)
            if previous is not None:  # NIRVANA: start from the previous group's fitted weights
                state = {k: v.clone() for k, v in previous.state_dict().items() if k != "embed"}
                state["embed"] = previous.embed.detach()[: stop - start].clone()
                if state["embed"].shape[0] < stop - start:
                    state["embed"] = net.embed.detach().clone()
                net.load_state_dict(state)
            began = time.perf_counter()
            psnr = fit_group(net, video.frames(start, stop), fit_cfg,
                             desc=f"NeRV group {g + 1}/{layout.num_groups}")
            fit_s = time.perf_counter() - began
            tensors = []
            for name, p in net.state_dict().items():
                q, step = quantize(p, bits_for(name, fit_cfg))
                tensors.append(wc.fit_distribution(wc.CodedTensor(q.numpy(), step.numpy())))
            payload = wc.encode_tensors(tensors)
            qnet = build_quantized_net(layout.arch, stop - start, net.state_dict().keys(),
                                       [(t.q, t.step) for t in tensors])
            report.groups.append(GroupResult(start, stop, qnet, psnr, wc.estimate_bytes(tensors), len(payload), fit_s))
            previous = net
            yield payload
        report.container_bytes = len(bitstream_to_bytes(self.stream_header(metadata), [b""] * layout.num_groups))

    # ----- decoding ---------------------------------------------------------------------------
    def parse_metadata(self, metadata: Mapping[str, Any]) -> StreamLayout:
        """Validate a NeRV stream header (every size is bounded before anything is allocated)."""
        try:
            version = int(metadata["nerv_version"])
            if version != NERV_VERSION:
                raise BitstreamError(f"NeRV stream version {version} is not supported (this build reads {NERV_VERSION})")
            width, height, frames = int(metadata["width"]), int(metadata["height"]), int(metadata["num_frames"])
            fps = (int(metadata["fps_num"]), int(metadata["fps_den"]))
            chroma, color_range = str(metadata["chroma"]), str(metadata.get("color_range", "")) or None
            group_size = int(metadata["group_size"])
            weight_bits, embed_bits = int(metadata["weight_bits"]), int(metadata["embed_bits"])
            strides, channels = _ints(metadata["strides"], "strides"), _ints(metadata["channels"], "channels")
            embed = (int(metadata["embed_dim"]), int(metadata["embed_h"]), int(metadata["embed_w"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BitstreamError(f"NeRV stream metadata is missing or malformed: {exc}") from None
        if not (1 <= width and 1 <= height and width * height <= MAX_PIXELS_PER_FRAME and 1 <= frames <= MAX_FRAMES):
            raise BitstreamError(f"NeRV stream has an invalid size {width}x{height}x{frames}")
        if chroma not in ("420", "444", "mono") or (chroma == "420" and (width % 2 or height % 2)):
            raise BitstreamError(f"NeRV stream has an invalid chroma format {chroma!r}")
        if color_range not in (None, "limited", "full"):
            raise BitstreamError(f"NeRV stream has an invalid colour range {color_range!r}")
        if not (1 <= group_size <= frames) or fps[0] < 1 or fps[1] < 1:
            raise BitstreamError("NeRV stream has an invalid group size or frame rate")
        try:
            qmax(weight_bits), qmax(embed_bits)
            arch = NervArch(embed[0], embed[1], embed[2], strides, channels, 1 if chroma == "mono" else 3)
        except ValueError as exc:
            raise BitstreamError(f"NeRV stream describes an invalid network: {exc}") from None
        if not (0 <= arch.height - height < arch.stride and 0 <= arch.width - width < arch.stride):
            raise BitstreamError("NeRV stream network does not match the frame size")
        weights, embeds = count_params(arch, group_size)
        res = arch.embed_h * arch.embed_w
        peak = 0
        for c_in, c_out, s in zip(channels, channels[1:], strides):
            peak = max(peak, res * c_in, res * c_out * s * s)
            res *= s * s
        if weights + embeds > MAX_PARAMS or peak > MAX_ACTIVATION:
            raise BitstreamError("NeRV stream describes a network larger than this decoder accepts")
        return StreamLayout(width, height, frames, fps, chroma, color_range, group_size, arch, weight_bits, embed_bits)

    def _decode_group(self, layout: StreamLayout, g: int, payload: bytes) -> NervNet:
        start, stop = layout.group_span(g)
        with torch.device("meta"):
            template = NervNet(layout.arch, stop - start)
        names = list(template.state_dict().keys())
        shapes = [tuple(t.shape) for t in template.state_dict().values()]
        channels = [s[0] if len(s) >= 2 else 1 for s in shapes]
        bounds = [qmax(layout.embed_bits if n == "embed" else layout.weight_bits) for n in names]
        decoded = wc.decode_tensors(payload, shapes, channels, bounds)
        return build_quantized_net(layout.arch, stop - start, names, decoded)

    @torch.no_grad()
    def iter_frames(self, metadata: Mapping[str, Any], chunks: Iterable[bytes],
                    frames: str | tuple[int, int] | None = None) -> Iterator[YUVFrame]:
        """Decode frames ``A:B`` (all by default), one at a time; groups outside the range are skipped."""
        layout = self.parse_metadata(metadata)
        a, b = frames if isinstance(frames, tuple) else parse_frames(frames, layout.num_frames)
        if not 0 <= a < b <= layout.num_frames:
            raise UsageError(f"frames {a}:{b} are outside 0:{layout.num_frames}")
        g = 0
        for payload in chunks:
            if g >= layout.num_groups:
                raise BitstreamError(f"NeRV stream has more chunks than its {layout.num_groups} groups")
            start, stop = layout.group_span(g)
            if stop > a and start < b:
                net = self._decode_group(layout, g, bytes(payload))
                for i in range(max(a, start), min(b, stop)):
                    yield render_frame(net, i - start, layout.height, layout.width, layout.chroma)
            g += 1
            if stop >= b:
                return
        raise BitstreamError(f"NeRV stream is truncated: {g} of {layout.num_groups} group chunks")

    def decompress(self, metadata: Mapping[str, Any], chunks: Iterable[bytes],
                   frames: str | tuple[int, int] | None = None) -> list[YUVFrame]:
        """(metadata, chunks) -> the decoded 8-bit frames (``frames="A:B"`` for a range)."""
        return list(self.iter_frames(metadata, chunks, frames))

    # ----- files ------------------------------------------------------------------------------
    def compress_file(self, path: Any, target_bpp: float | None = None, steps: int | None = None,
                      gop: int | None = None, **options: Any) -> tuple[Metadata, Iterator[bytes]]:
        """Read a ``.y4m`` video and compress it (fitting happens while the chunks are written)."""
        self._check_options(options)
        if Path(path).suffix.lower() != ".y4m":
            raise MediaError(f"the NeRV codec reads .y4m videos, not {Path(path).name}")
        return self.compress(read_y4m(path), target_bpp=target_bpp, steps=steps, gop=gop)

    def decompress_to_file(self, metadata: Mapping[str, Any], chunks: Iterable[bytes], path: Any,
                           frames: str | None = None, **options: Any) -> None:
        """Decode (frames ``A:B`` if given) and write a ``.y4m`` atomically (nothing is left on error)."""
        from neuralcodec.media.video import Y4MWriter

        self._check_options(options)
        if Path(path).suffix.lower() != ".y4m":
            raise UsageError(f"the NeRV codec writes .y4m videos, not {Path(path).name}")
        layout = self.parse_metadata(metadata)
        span = parse_frames(frames, layout.num_frames)
        with Y4MWriter(path, layout.width, layout.height, layout.fps, layout.chroma,  # type: ignore[arg-type]
                       color_range=layout.color_range) as writer:  # type: ignore[arg-type]
            for frame in self.iter_frames(metadata, chunks, span):
                writer.write(frame)


def build_quantized_net(arch: NervArch, num_frames: int, names: Iterable[str],
                        tensors: list[tuple[np.ndarray, np.ndarray]]) -> NervNet:
    """A network whose parameters are ``dequantize(q, step)`` (the decoder's exact weights)."""
    net = NervNet(arch, num_frames)
    state = {name: dequantize(torch.from_numpy(np.asarray(q)), torch.from_numpy(np.asarray(step)))
             for name, (q, step) in zip(names, tensors, strict=True)}
    net.load_state_dict(state)
    return net.eval()


@torch.no_grad()
def render_frame(net: NervNet, index: int, height: int, width: int, chroma: str) -> YUVFrame:
    """Frame ``index`` of ``net`` as an 8-bit frame (batch of one, so every frame decodes alike)."""
    out = net.decode_embedding(net.embed[index : index + 1])
    return to_yuv_frames(out, height, width, chroma)[0]
