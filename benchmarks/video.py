"""Video rate-distortion benchmark: our video codecs vs x264 / x265 (low-delay P) at matched bpp.

    python -m benchmarks.video [--sequences bbb ...] [--frames 32] [--rates 0.05 0.1 0.2]
                               [--steps 300] [--gop N] [--quick] [--no-write]
                               [--codecs NAME ...] [--section video]

For every development sequence (first ``--frames`` frames): RD points (actual bits per pixel of
the whole file, PSNR-RGB and PSNR-YUV computed here on the decoded 8-bit frames), encode and
decode frames per second on 2 threads, and BD-rate (PyPI ``bjontegaard``, Akima) of each of our
codecs against each anchor.

* Anchors: ffmpeg's libx264 / libx265, presets medium and veryslow, low-delay P (no B-frames,
  ``keyint = min-keyint = GOP``, no scene-cut intra), several CRFs; size = the elementary stream
  without its SEI NAL units (``filter_units``): the encoders' informational SEI (x264 ~0.6 kB,
  x265 ~2.3 kB of option text) is not needed to decode and would dominate small clips' streams.
* PSNR-YUV = (6 PSNR-Y + PSNR-U + PSNR-V) / 8 per frame; PSNR-RGB on BT.601 limited-range RGB
  rounded to 8 bits (the same conversion for every codec); both averaged over frames.
* Our codecs are :data:`RUNNERS` entries (a name and a function clip -> points). The NeRV
  runner fits one network per group of ``GOP`` frames (``--steps`` per group); the conditional
  (DCVC-style) runner uses ``load_codec("video")`` through the file hooks of ``codec encode`` and
  is reported as skipped while that model is not shipped. Add a codec by appending a
  :class:`Runner` to :data:`RUNNERS`.
"""

from __future__ import annotations

import argparse
import functools
import math
import shlex
import shutil
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from benchmarks.results import machine_line, update_section
from neuralcodec.media.video import YUVFrame, Y4MReader, Y4MWriter, yuv420_to_rgb_tensor

DEV_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video"
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
THREADS = 2


@dataclass
class Point:
    """One rate point: actual bpp, quality, speed (frames per second), and a free-form note."""

    bpp: float
    psnr_rgb: float
    psnr_yuv: float
    encode_fps: float
    decode_fps: float
    note: str = ""


@dataclass
class Clip:
    """The first ``num_frames`` frames of a sequence, cut into ``path`` (a y4m in a temp folder)."""

    name: str
    path: Path
    frames: list[YUVFrame]
    width: int
    height: int
    fps: tuple[int, int]
    gop: int

    @property
    def pixels(self) -> int:
        return self.width * self.height * len(self.frames)


@dataclass
class Settings:
    rates: list[float]  # target bpp of our codecs
    crfs: list[int]  # anchors' CRFs
    steps: int  # NeRV fit steps per group
    command: str = ""  # the arguments, quoted in the report
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="nc-video-bench-")))


class Skip(Exception):
    """A runner cannot run here (e.g. its model is not shipped); the message goes in the report."""


@dataclass
class Runner:
    name: str
    run: Callable[[Clip, Settings], list[Point]]
    anchor: bool = False


# ----- metrics ----------------------------------------------------------------------------------
def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _rgb8(frame: YUVFrame) -> np.ndarray:
    y = torch.from_numpy(frame.y.astype(np.float32) / 255)[None, None]
    uv = torch.from_numpy(np.stack([frame.u, frame.v]).astype(np.float32) / 255)[None]
    return yuv420_to_rgb_tensor(y, uv, "bt601").mul(255).round().to(torch.uint8).numpy()


def quality(ref: list[YUVFrame], dec: list[YUVFrame]) -> tuple[float, float]:
    """(PSNR-RGB, PSNR-YUV), each the mean over frames."""
    if len(ref) != len(dec):
        raise RuntimeError(f"decoded {len(dec)} frames, expected {len(ref)}")
    rgb, yuv = [], []
    for r, d in zip(ref, dec):
        yuv.append((6 * _psnr(r.y, d.y) + _psnr(r.u, d.u) + _psnr(r.v, d.v)) / 8)
        rgb.append(_psnr(_rgb8(r), _rgb8(d)))
    return float(np.mean(rgb)), float(np.mean(yuv))


def read_frames(path: Path, limit: int | None = None) -> list[YUVFrame]:
    with Y4MReader(path) as reader:
        out = []
        for frame in reader:
            if limit is not None and len(out) >= limit:
                break
            out.append(frame)
    return out


# ----- anchors ----------------------------------------------------------------------------------
def ffmpeg_runner(encoder: str, preset: str) -> Runner:
    """x264/x265 low-delay P at each CRF of the settings."""

    def run(clip: Clip, settings: Settings) -> list[Point]:
        ext = "h264" if encoder == "libx264" else "hevc"
        if encoder == "libx264":
            params = ["-x264-params", f"keyint={clip.gop}:min-keyint={clip.gop}:scenecut=0:bframes=0",
                      "-bsf:v", "filter_units=remove_types=6"]  # SEI
        else:
            params = ["-x265-params", f"keyint={clip.gop}:min-keyint={clip.gop}:scenecut=0:bframes=0:"
                                      f"pools={THREADS}:frame-threads=1:log-level=error",
                      "-bsf:v", "filter_units=remove_types=39|40"]  # prefix / suffix SEI
        points = []
        for crf in settings.crfs:
            stream = settings.workdir / f"{clip.name}-{encoder}-{preset}-{crf}.{ext}"
            decoded = stream.with_suffix(".y4m")
            began = time.perf_counter()
            subprocess.run([FFMPEG, "-y", "-v", "error", "-i", str(clip.path), "-threads", str(THREADS),
                            "-c:v", encoder, "-preset", preset, "-crf", str(crf), *params, "-f", ext, str(stream)],
                           check=True)
            enc_s = time.perf_counter() - began
            began = time.perf_counter()
            subprocess.run([FFMPEG, "-y", "-v", "error", "-threads", str(THREADS), "-i", str(stream),
                            "-f", "yuv4mpegpipe", "-pix_fmt", "yuv420p", str(decoded)], check=True)
            dec_s = time.perf_counter() - began
            psnr_rgb, psnr_yuv = quality(clip.frames, read_frames(decoded))
            n = len(clip.frames)
            points.append(Point(stream.stat().st_size * 8 / clip.pixels, psnr_rgb, psnr_yuv, n / enc_s, n / dec_s,
                                f"crf {crf}"))
        return points

    name = {"libx264": "x264", "libx265": "x265"}[encoder]
    return Runner(f"{name} {preset}", run, anchor=True)


# ----- our codecs -------------------------------------------------------------------------------
def run_nerv(clip: Clip, settings: Settings) -> list[Point]:
    """NeRV: fit per group (``GOP`` frames), code, decode; checks file size <= estimate + 1 %."""
    from neuralcodec.bitstream import bitstream_to_bytes, read_bitstream
    from neuralcodec.codecs.registry import load_codec
    from neuralcodec.codecs.video.nerv.planes import read_y4m

    codec = load_codec("nerv")
    planes = read_y4m(clip.path)
    points = []
    for bpp in settings.rates:
        began, cpu = time.perf_counter(), time.process_time()
        metadata, chunks = codec.compress(planes, target_bpp=bpp, steps=settings.steps, gop=clip.gop)
        data = bitstream_to_bytes(codec.stream_header(metadata), list(chunks))
        enc_s, enc_cpu = time.perf_counter() - began, time.process_time() - cpu
        report = codec.last_encode
        began, cpu = time.perf_counter(), time.process_time()
        header, chunk_list = read_bitstream(data)  # decode from the bytes, as `codec decode` does
        decoded = codec.decompress(header.metadata, chunk_list)
        dec_s, dec_cpu = time.perf_counter() - began, time.process_time() - cpu
        psnr_rgb, psnr_yuv = quality(clip.frames, decoded)
        n = len(clip.frames)
        ratio = len(data) / report.estimate_bytes
        floor = f" (smallest network: ~{report.planned_bpp:.3g})" if report.planned_bpp > 1.1 * bpp else ""
        bound = "" if ratio <= 1.01 else " ABOVE the 1 % bound"
        points.append(Point(len(data) * 8 / clip.pixels, psnr_rgb, psnr_yuv, n / enc_s, n / dec_s,
                            f"target {bpp:g}{floor}, strides {','.join(map(str, report.arch.strides))}, "
                            f"channels {','.join(map(str, report.arch.channels))}, "
                            f"fit {report.fit_seconds / n:.2f} s/frame, CPU-s/frame enc {enc_cpu / n:.2f} dec {dec_cpu / n:.3f}, "
                            f"file/estimate {ratio:.4f}{bound}"))
        print(f"  nerv target {bpp:g}: {points[-1].bpp:.4f} bpp, {psnr_yuv:.2f} dB YUV, {psnr_rgb:.2f} dB RGB, "
              f"file/estimate {ratio:.4f}, fit {report.fit_seconds:.0f} s", flush=True)
    return points


def run_conditional(clip: Clip, settings: Settings, frame_types: str = "adaptive") -> list[Point]:
    """The conditional (DCVC-style) codec through the same file hooks as ``codec encode``/``decode``
    (``frame_types``: the encoder's frame-type decision, ``--frame-types``; the note counts intra frames)."""
    from neuralcodec.bitstream import read_bitstream
    from neuralcodec.cli.coding import decode_to_file, encode_to_file
    from neuralcodec.codecs.registry import load_codec
    from neuralcodec.errors import ModelError

    try:
        codec = load_codec("video")
    except ModelError as exc:
        raise Skip(f"model `video` not available ({exc})") from None
    qualities = list(range(1, int(getattr(codec, "num_qualities", 4)) + 1))
    points = []
    for q in qualities:
        out, dec_path = settings.workdir / f"{clip.name}-video-q{q}.bin", settings.workdir / f"{clip.name}-video-q{q}.y4m"
        began = time.perf_counter()
        encode_to_file(codec, clip.path, out, quality=q, gop=clip.gop, frame_types=frame_types)  # = `codec encode`
        enc_s = time.perf_counter() - began
        began = time.perf_counter()
        decode_to_file(codec, out, dec_path)
        dec_s = time.perf_counter() - began
        psnr_rgb, psnr_yuv = quality(clip.frames, read_frames(dec_path))
        n = len(clip.frames)
        intra = sum(chunk[0] == 0 for chunk in read_bitstream(out)[1])  # frame type byte 0 = intra
        points.append(Point(out.stat().st_size * 8 / clip.pixels, psnr_rgb, psnr_yuv, n / enc_s, n / dec_s,
                            f"q {q}, {intra}/{n} intra"))
    return points


#: every codec in the table; the colleague's conditional codec is the last of ours
RUNNERS: list[Runner] = [
    ffmpeg_runner("libx264", "medium"),
    ffmpeg_runner("libx264", "veryslow"),
    ffmpeg_runner("libx265", "medium"),
    ffmpeg_runner("libx265", "veryslow"),
    Runner("nerv", run_nerv),
    Runner("video (conditional)", run_conditional),
    Runner("video (conditional, fixed GOP)", functools.partial(run_conditional, frame_types="fixed")),
]


# ----- report -----------------------------------------------------------------------------------
@dataclass
class BDRate:
    """BD-rate (%) of a test curve against an anchor, or why there is none (``value`` None)."""

    value: float | None
    reason: str = ""  # why value is None
    overlap: tuple[float, float] | None = None  # PSNR interval (dB) the rates are averaged over
    share: float = 0.0  # overlap / union of the two PSNR ranges

    def cell(self) -> str:
        if self.value is None:
            return f"n/a ({self.reason})"
        lo, hi = self.overlap  # type: ignore[misc]
        flag = ", small overlap" if self.share < MIN_OVERLAP else ""
        return f"{self.value:+.1f} % ({lo:.1f}-{hi:.1f} dB{flag})"


#: overlaps below this share of the union of both PSNR ranges are flagged in the report
MIN_OVERLAP = 0.25


def bd_rate(anchor: list[Point], test: list[Point], metric: str) -> BDRate:
    """BD-rate of ``test`` against ``anchor`` on ``metric`` (PyPI ``bjontegaard``, Akima), averaged over
    the PSNR interval both curves cover; a :class:`BDRate` with a reason instead when there is none
    (fewer than 2 points, no overlap, a curve whose PSNR does not rise with rate, a failed fit)."""
    import bjontegaard

    def curve(points: list[Point]) -> tuple[np.ndarray, np.ndarray]:
        pts = sorted(points, key=lambda p: p.bpp)
        pts = [p for i, p in enumerate(pts) if i == 0 or p.bpp != pts[i - 1].bpp]  # e.g. two targets, one network
        return np.array([p.bpp for p in pts]), np.array([getattr(p, metric) for p in pts])

    ra, da = curve(anchor)
    rt, dt = curve(test)
    if len(ra) < 2 or len(rt) < 2:
        return BDRate(None, "fewer than 2 distinct points")
    for name, d in (("anchor", da), ("our", dt)):
        if np.any(np.diff(d) <= 0):
            return BDRate(None, f"{name} PSNR does not rise with rate")
    lo, hi = max(da.min(), dt.min()), min(da.max(), dt.max())
    if lo >= hi:
        return BDRate(None, f"no PSNR overlap: ours {dt.min():.1f}-{dt.max():.1f} dB, anchor {da.min():.1f}-{da.max():.1f} dB")
    share = (hi - lo) / (max(da.max(), dt.max()) - min(da.min(), dt.min()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = float(bjontegaard.bd_rate(ra, da, rt, dt, method="akima", require_matching_points=False))
        except Exception as exc:  # noqa: BLE001 - the interpolation can fail on degenerate curves
            return BDRate(None, f"BD-rate failed: {type(exc).__name__}")
    if not math.isfinite(value):
        return BDRate(None, "BD-rate not finite")
    return BDRate(value, overlap=(float(lo), float(hi)), share=float(share))


def psnr_at_rate(anchor: list[Point], bpp: float, metric: str) -> float | None:
    """The anchor's PSNR at ``bpp`` (linear in log-rate between its points); None outside its range."""
    pts = sorted(anchor, key=lambda p: p.bpp)
    rates = np.log([p.bpp for p in pts])
    if not rates[0] <= math.log(bpp) <= rates[-1]:
        return None
    return float(np.interp(math.log(bpp), rates, [getattr(p, metric) for p in pts]))


def report(clips: list[Clip], results: dict[str, dict[str, list[Point] | str]], settings: Settings,
           title: str = "Video codecs vs x264 / x265") -> str:
    ran = {name for per_clip in results.values() for name in per_clip}
    nerv, conditional = "nerv" in ran, "video (conditional)" in ran
    lines = [f"## {title} (`python -m benchmarks.video`)", "",
             f"Command: `python -m benchmarks.video {settings.command}`.", "",
             f"{machine_line()}. Low-delay P anchors (ffmpeg libx264/libx265, `bframes=0`, keyint = GOP, "
             f"no scene-cut; size = elementary stream without the encoders' informational SEI), "
             f"CRFs {', '.join(map(str, settings.crfs))}; "
             + (f"NeRV at target bpp {', '.join(f'{r:g}' for r in settings.rates)} ({settings.steps} fit steps per "
                "group); " if nerv else "")
             + ("the conditional codec at each of its qualities; " if conditional else "")
             + "bpp = whole file (container included) / pixels; PSNR-YUV = (6Y+U+V)/8, PSNR-RGB on BT.601 RGB, "
             "both averaged over frames; fps = wall clock on 2 threads"
             + (" (NeRV encode fps = fitting; its note adds the process CPU seconds per frame, which a busy or "
                "paused machine does not inflate)." if nerv else "."), ""]
    for clip in clips:
        lines += [f"### {clip.name} ({clip.width}x{clip.height}, {len(clip.frames)} frames, GOP {clip.gop})", "",
                  "| codec | bpp | PSNR-RGB | PSNR-YUV | enc fps | dec fps | note |", "|---|---|---|---|---|---|---|"]
        ours = {}
        anchors = {}
        for runner in RUNNERS:
            res = results[clip.name].get(runner.name)
            if isinstance(res, str):
                lines.append(f"| {runner.name} | - | - | - | - | - | skipped: {res} |")
                continue
            if res is None:
                continue
            (anchors if runner.anchor else ours)[runner.name] = res
            for p in res:
                lines.append(f"| {runner.name} | {p.bpp:.4f} | {p.psnr_rgb:.2f} | {p.psnr_yuv:.2f} | "
                             f"{p.encode_fps:.3g} | {p.decode_fps:.3g} | {p.note} |")
        if ours and anchors:
            lines += ["", "BD-rate (negative = fewer bits than the anchor at equal PSNR), over the PSNR interval "
                      "both curves cover (shown; outside it nothing is compared):", "",
                      "| codec | anchor | BD-rate PSNR-YUV | BD-rate PSNR-RGB |", "|---|---|---|---|"]
            for name, pts in ours.items():
                for aname, apts in anchors.items():
                    cells = [bd_rate(apts, pts, metric).cell() for metric in ("psnr_yuv", "psnr_rgb")]
                    lines.append(f"| {name} | {aname} | {cells[0]} | {cells[1]} |")
            lines += ["", "PSNR-YUV difference at matched bpp (ours minus the anchor's curve at the same bpp, "
                      "linear in log-rate; n/a outside the anchor's bpp range):", "",
                      "| codec | bpp | " + " | ".join(anchors) + " |", "|---|---|" + "---|" * len(anchors)]
            for name, pts in ours.items():
                for p in sorted(pts, key=lambda p: p.bpp):
                    cells = []
                    for apts in anchors.values():
                        ref = psnr_at_rate(apts, p.bpp, "psnr_yuv")
                        cells.append("n/a" if ref is None else f"{p.psnr_yuv - ref:+.2f} dB")
                    lines.append(f"| {name} | {p.bpp:.4f} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def make_clip(path: Path, frames: int, gop: int | None, workdir: Path, scale: float = 1.0) -> Clip:
    """Cut the first ``frames`` frames (area-downscaled by ``scale``, even sizes) into the work folder."""
    name = path.stem.split("_")[0]
    cut = workdir / f"{name}.y4m"
    if scale != 1.0:
        with Y4MReader(path) as reader:
            w, h = (2 * max(1, round(reader.width * scale / 2)), 2 * max(1, round(reader.height * scale / 2)))
        subprocess.run([FFMPEG, "-y", "-v", "error", "-i", str(path), "-frames:v", str(frames),
                        "-vf", f"scale={w}:{h}:flags=area", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(cut)],
                       check=True)
    else:
        source = read_frames(path, frames)
        with Y4MReader(path) as reader:
            width, height, fps = reader.width, reader.height, reader.fps
        with Y4MWriter(cut, width, height, fps, "420", color_range=None) as writer:
            for f in source:
                writer.write(f)
    frames_used = read_frames(cut)  # what every codec actually sees
    with Y4MReader(cut) as reader:
        width, height, fps = reader.width, reader.height, reader.fps
    return Clip(name, cut, frames_used, width, height, fps, min(gop or len(frames_used), len(frames_used)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", nargs="*", default=None,
                        help="name prefixes (bbb, cisco, mobile, office) or .y4m paths (default: all dev clips)")
    parser.add_argument("--frames", type=int, default=32, help="frames per sequence (default 32)")
    parser.add_argument("--rates", nargs="*", type=float, default=[0.05, 0.1, 0.2], help="our target bpp values")
    parser.add_argument("--crfs", nargs="*", type=int, default=[24, 28, 32, 36, 40, 44], help="x264/x265 CRFs")
    parser.add_argument("--steps", type=int, default=300, help="NeRV fit steps per group")
    parser.add_argument("--gop", type=int, help="frames per GOP / NeRV group (default: all frames)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="area-downscale every sequence by this factor first (CPU budget; default 1)")
    parser.add_argument("--codecs", nargs="*", help="only these runners (names as in the table)")
    parser.add_argument("--quick", action="store_true", help="8 frames, 2 rates, 3 CRFs, 100 steps")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md unchanged")
    parser.add_argument("--section", default="video",
                        help="RESULTS.md section to write (default `video`); e.g. `video-conditional` for a run of "
                             "the anchors and one codec that leaves the other codecs' section as measured")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.rates, args.crfs, args.steps = 8, args.rates[:2], [28, 36, 44], 100
    torch.set_num_threads(THREADS)
    import sys

    settings = Settings(args.rates, args.crfs, args.steps, shlex.join(sys.argv[1:] if argv is None else argv))
    print(f"python -m benchmarks.video {settings.command}", flush=True)
    available = sorted(DEV_VIDEOS.glob("*.y4m"))
    if args.sequences:
        paths = [Path(s) if s.endswith(".y4m") else next(p for p in available if p.name.startswith(s))
                 for s in args.sequences]
    else:
        paths = available
    clips = [make_clip(p, args.frames, args.gop, settings.workdir, args.scale) for p in paths]
    results: dict[str, dict[str, list[Point] | str]] = {}
    for clip in clips:
        print(f"{clip.name}: {clip.width}x{clip.height}, {len(clip.frames)} frames", flush=True)
        results[clip.name] = {}
        for runner in RUNNERS:
            if args.codecs and runner.name not in args.codecs:
                continue
            try:
                results[clip.name][runner.name] = runner.run(clip, settings)
            except Skip as exc:
                results[clip.name][runner.name] = str(exc)
                print(f"  {runner.name}: skipped ({exc})", flush=True)
                continue
            pts = results[clip.name][runner.name]
            print(f"  {runner.name}: " + ", ".join(f"{p.bpp:.4f} bpp {p.psnr_yuv:.2f} dB" for p in pts), flush=True)  # type: ignore[union-attr]
    ours = [r.name for r in RUNNERS if not r.anchor and (not args.codecs or r.name in args.codecs)]
    title = "Video codecs vs x264 / x265" + ("" if args.section == "video" else f": {', '.join(ours)}")
    markdown = report(clips, results, settings, title)
    print(markdown)
    if not args.no_write:
        update_section(args.section, markdown)
    shutil.rmtree(settings.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
