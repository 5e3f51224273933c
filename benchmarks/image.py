"""Image codec rate-distortion benchmark: the learned codec vs JPEG, WebP and AVIF at matched bpp.

    python -m benchmarks.image [--model image] [--images DIR ...] [--qualities 1 2 ...] [--baseline-dir runs]
                               [--refine-steps N] [--no-write]

For every development photo and quality level: the actual file size of ``codec encode`` (container
included) in bits per pixel, PSNR over the 8-bit RGB (or gray) pixels and MS-SSIM of the decoded
image, and encode/decode wall time on 2 torch threads. For each such point, JPEG, WebP and AVIF
(through Pillow) are searched over their quality parameter for the file closest to the same bpp
on the same image. BD-rate (the PyPI ``bjontegaard`` package, Akima interpolation) is computed per
image against each codec and averaged; negative means fewer bits than the anchor at equal quality.
The scikit-image photos (the issue's reference set) are also reported separately.

Every photo is also coded without the per-image post-filter (``codec encode --no-postfilter``), and
the filter's BD-rate against that, how often it was sent and what it costs in encode time are reported.

``--refine-steps N`` also codes the photos of ``--refine-subset`` (default ``skimage``) with
encoder-side latent refinement (``codec encode --steps N``) and reports its gain over the plain
(amortized) encoder, with its encode time.

``--baseline-dir DIR`` adds the same-budget baseline: every CompressAI ``bmshj2018_hyperprior``
model trained by ``codec train experiment=image_bmshj2018`` under ``DIR`` (one run per lambda; see
that config) is measured on the same photos with CompressAI's own ``compress()``/``decompress()``
(real rANS bytes, plus a 9-byte size header), with its encode/decode time per megapixel, and the
learned codec's BD-rate is computed against it like against the classic codecs.
"""

from __future__ import annotations

import argparse
import io
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmarks.results import machine_line, update_section
from neuralcodec.eval.image_anchors import CLASSIC, classic_codec, match_bpp, psnr, to_uint8

DEV_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"


@dataclass
class Point:
    bpp: float
    psnr: float
    msssim: float


@dataclass
class ImageResult:
    name: str
    subset: str
    pixels: int
    neural: list[Point] = field(default_factory=list)
    classic: dict[str, list[Point]] = field(default_factory=dict)
    encode_s: list[float] = field(default_factory=list)
    decode_s: list[float] = field(default_factory=list)
    baseline: list[Point] = field(default_factory=list)  # one point per trained bmshj2018 model
    baseline_encode_s: list[float] = field(default_factory=list)
    baseline_decode_s: list[float] = field(default_factory=list)
    refined: list[Point] = field(default_factory=list)  # with --refine-steps, one point per quality
    refined_encode_s: list[float] = field(default_factory=list)
    unfiltered: list[Point] = field(default_factory=list)  # --no-postfilter, one point per quality
    unfiltered_encode_s: list[float] = field(default_factory=list)
    filters: list[int] = field(default_factory=list)  # post-filter size sent at each quality (0: none)


def msssim(ref: np.ndarray, test: np.ndarray) -> float:
    from pytorch_msssim import ms_ssim

    a = torch.from_numpy(ref).permute(2, 0, 1)[None].float()
    b = torch.from_numpy(test).permute(2, 0, 1)[None].float()
    return float(ms_ssim(a, b, data_range=255.0))


def measure(ref: np.ndarray, test: np.ndarray, bits: int) -> Point:
    return Point(bits / (ref.shape[0] * ref.shape[1]), psnr(ref, test), msssim(ref, test))


def neural_points(codec, image: torch.Tensor, ref: np.ndarray, qualities, result: ImageResult,
                  steps: int = 0, postfilter: bool = True) -> None:
    """Encode/decode ``image`` at each quality through the real container bytes (``steps`` > 0:
    with latent refinement, into ``result.refined``; ``postfilter=False``: into ``result.unfiltered``)."""
    from neuralcodec.bitstream import bitstream_to_bytes, read_bitstream

    for q in qualities:
        start = time.perf_counter()
        metadata, chunks = codec.compress(image, quality=q, steps=steps or None, postfilter=postfilter)
        data = bitstream_to_bytes(codec.stream_header(metadata), list(chunks))
        middle = time.perf_counter()
        header, payloads = read_bitstream(io.BytesIO(data))
        decoded = codec.decompress(header.metadata, payloads)
        end = time.perf_counter()
        point = measure(ref, to_uint8(decoded), 8 * len(data))
        if steps:
            result.refined_encode_s.append(middle - start)
            result.refined.append(point)
        elif not postfilter:
            result.unfiltered_encode_s.append(middle - start)
            result.unfiltered.append(point)
        else:
            result.filters.append(int(metadata.get("filter", 0)))
            result.encode_s.append(middle - start)
            result.decode_s.append(end - middle)
            result.neural.append(point)


def refinement_report(results: list[ImageResult], qualities, steps: int) -> list[str]:
    """Plain vs refined encoder on the photos coded both ways (empty list if none)."""
    both = [r for r in results if r.refined]
    if not both:
        return []
    subsets = ", ".join(sorted({r.subset for r in both}))
    lines = ["", f"Encoder-side latent refinement (`codec encode --steps {steps}`; same model and decoder) on the "
             f"{len(both)} {subsets} photos:", "",
             "| quality | plain bpp / PSNR | refined bpp / PSNR |", "|---|---|---|"]
    for i, q in enumerate(qualities):
        lines.append(f"| {q:g} | {mean(r.neural[i].bpp for r in both):.3f} / {mean(r.neural[i].psnr for r in both):.2f} | "
                     f"{mean(r.refined[i].bpp for r in both):.3f} / {mean(r.refined[i].psnr for r in both):.2f} |")
    cells = []
    for name, anchor in [("plain encoder", lambda r: r.neural)] + [(n, (lambda r, n=n: r.classic[n])) for n in CLASSIC]:
        values = [v for v in (bd_rate(anchor(r), r.refined, "psnr") for r in both) if v is not None]
        cells.append(f"vs {name} {mean(values):+.1f} % ({len(values)}/{len(both)})" if values else f"vs {name} n/a")
    megapixels = sum(r.pixels for r in both) / 1e6 * len(qualities)
    lines += ["", "BD-rate (PSNR) of the refined encoder: " + ", ".join(cells) + ". Refined encoding "
              f"{sum(sum(r.refined_encode_s) for r in both) / megapixels:.1f} s/megapixel (plain: "
              f"{sum(sum(r.encode_s) for r in both) / megapixels:.2f})."]
    return lines


def postfilter_report(results: list[ImageResult], qualities) -> list[str]:
    """The per-image post-filter against the same encoder without it (empty list if not measured)."""
    both = [r for r in results if r.unfiltered]
    if not both:
        return []
    lines = ["", "Per-image post-filter (sent where it lowers bits/px + lambda 255^2 MSE; `--no-postfilter` leaves it "
             "out): same model and latents, all photos:", "",
             "| quality | without: bpp / PSNR | with: bpp / PSNR | filter sent (1x1 / 3x3 / 5x5) |", "|---|---|---|---|"]
    for i, q in enumerate(qualities):
        sizes = [r.filters[i] for r in both]
        lines.append(f"| {q:g} | {mean(r.unfiltered[i].bpp for r in both):.3f} / {mean(r.unfiltered[i].psnr for r in both):.2f} | "
                     f"{mean(r.neural[i].bpp for r in both):.3f} / {mean(r.neural[i].psnr for r in both):.2f} | "
                     f"{sum(k > 0 for k in sizes)}/{len(sizes)} ({sizes.count(1)} / {sizes.count(3)} / {sizes.count(5)}) |")
    cells = []
    for group, label in ((both, "all photos"), ([r for r in both if r.subset == "skimage"], "scikit-image photos")):
        for metric in ("psnr", "msssim"):
            values = [v for v in (bd_rate(r.unfiltered, r.neural, metric) for r in group) if v is not None]
            if values:
                cells.append(f"{label} {'PSNR' if metric == 'psnr' else 'MS-SSIM'} {mean(values):+.1f} % "
                             f"({len(values)}/{len(group)})")
    megapixels = sum(r.pixels for r in both) / 1e6 * len(qualities)
    lines += ["", "BD-rate of the filtered files against the unfiltered ones: " + ", ".join(cells) + ". Encoding "
              f"{sum(sum(r.encode_s) for r in both) / megapixels:.2f} s/megapixel with the filter fit, "
              f"{sum(sum(r.unfiltered_encode_s) for r in both) / megapixels:.2f} without."]
    return lines


def baseline_points(baselines, image: torch.Tensor, ref: np.ndarray, result: ImageResult) -> None:
    """Code ``image`` with each trained bmshj2018 model through CompressAI's own entropy coder."""
    from neuralcodec.eval.bmshj2018 import decode_image, encode_image

    for baseline in baselines:
        start = time.perf_counter()
        data = encode_image(baseline.net, image)
        middle = time.perf_counter()
        decoded = decode_image(baseline.net, data)
        end = time.perf_counter()
        if decoded.shape != image.shape:
            raise RuntimeError(f"{baseline.source}: decoded {tuple(decoded.shape)} for {tuple(image.shape)}")
        result.baseline_encode_s.append(middle - start)
        result.baseline_decode_s.append(end - middle)
        result.baseline.append(measure(ref, to_uint8(decoded), 8 * len(data)))


def baseline_report(results: list[ImageResult], baselines, baseline_dir) -> list[str]:
    """The per-rate-point table of the trained bmshj2018 baseline (empty list if none was measured)."""
    if not baselines:
        return []
    lines = ["", f"Same-budget baseline: CompressAI `bmshj2018_hyperprior` (`compressai.models.ScaleHyperprior`) "
             f"trained by our trainer (`experiment=image_bmshj2018`: one run per lambda, same data, crops and "
             f"optimiser as the shipped model, float32, budget 21,000 steps per rate point; `steps` = what each run got), "
             f"{len(baselines)} models from "
             f"`{baseline_dir}`; actual bytes of CompressAI's `compress()` (its rANS coder) plus a 9-byte size "
             "header, decoded by its `decompress()`; same photos, 2 torch threads:", "",
             "| lambda | N / M | steps | bpp | PSNR | MS-SSIM | encode s/MP | decode s/MP |",
             "|---|---|---|---|---|---|---|---|"]
    megapixels = sum(r.pixels for r in results) / 1e6
    for i, b in enumerate(baselines):
        enc = sum(r.baseline_encode_s[i] for r in results) / megapixels
        dec = sum(r.baseline_decode_s[i] for r in results) / megapixels
        lines.append(f"| {b.config['lmbda']:g} | {b.config['N']} / {b.config['M']} | {b.steps if b.steps else '?'} | "
                     f"{mean(r.baseline[i].bpp for r in results):.3f} | {mean(r.baseline[i].psnr for r in results):.2f} | "
                     f"{mean(r.baseline[i].msssim for r in results):.4f} | {enc:.2f} | {dec:.2f} |")
    return lines


def classic_points(ref: np.ndarray, targets: list[Point], result: ImageResult) -> None:
    for name, (_, (lo, hi), _) in CLASSIC.items():
        encode = classic_codec(ref, name)
        points = []
        for target in targets:
            bits, decoded = encode(match_bpp(encode, lo, hi, target.bpp * ref.shape[0] * ref.shape[1]))
            points.append(measure(ref, decoded, bits))
        result.classic[name] = points


def msssim_db(value: float) -> float:
    return -10 * math.log10(max(1 - value, 1e-10))


def bd_rate(anchor: list[Point], test: list[Point], metric: str) -> float | None:
    """BD-rate (percent) of ``test`` against ``anchor`` on ``metric`` (``psnr`` or ``msssim``)."""
    import bjontegaard

    def curve(points):
        pairs = sorted({(p.bpp, p.psnr if metric == "psnr" else msssim_db(p.msssim)) for p in points})
        rates, dists = [], []
        for r, d in pairs:  # keep a strictly increasing curve (duplicates at clamped parameters)
            if not rates or (r > rates[-1] and d > dists[-1]):
                rates.append(r)
                dists.append(d)
        return np.array(rates), np.array(dists)

    ra, da = curve(anchor)
    rt, dt = curve(test)
    if len(ra) < 4 or len(rt) < 4:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(bjontegaard.bd_rate(ra, da, rt, dt, method="akima", require_matching_points=False))
    except (ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) else None  # nan: the two curves do not overlap in quality


def interp_at(points: list[Point], bpp: float) -> float:
    """PSNR at ``bpp`` by linear interpolation in log-rate (nan outside the measured range)."""
    pts = sorted((p.bpp, p.psnr) for p in points)
    rates = np.log([p[0] for p in pts])
    if not rates[0] <= math.log(bpp) <= rates[-1]:
        return float("nan")
    return float(np.interp(math.log(bpp), rates, [p[1] for p in pts]))


def mean(values) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def list_images(folders: list[Path]) -> list[tuple[Path, str]]:
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*.png")):
            found.append((path, folder.name))
    return found


def report(results: list[ImageResult], codec, qualities, model_name: str, baselines=(), baseline_dir=None,
           refine_steps: int = 0) -> str:
    lines = ["## Image codec vs JPEG / WebP / AVIF (`python -m benchmarks.image`)", "",
             f"Model `{model_name}` (fingerprint `{codec.fingerprint().hex()[:16]}`, N={codec.N}, M={codec.M}, "
             f"entropy model `{codec.entropy_model_id}`, {codec.num_qualities} quality levels); {len(results)} development photos; {machine_line()}.",
             "Actual file sizes (container included); PSNR on 8-bit RGB (gray for `camera.png`); JPEG/WebP/AVIF "
             "from Pillow, quality searched per image for the file closest to each neural point's bpp.", "",
             "| quality | bpp | PSNR | MS-SSIM | JPEG bpp / PSNR | WebP bpp / PSNR | AVIF bpp / PSNR |",
             "|---|---|---|---|---|---|---|"]
    for i, q in enumerate(qualities):
        row = [f"{q}", f"{mean(r.neural[i].bpp for r in results):.3f}", f"{mean(r.neural[i].psnr for r in results):.2f}",
               f"{mean(r.neural[i].msssim for r in results):.4f}"]
        for name in CLASSIC:
            row.append(f"{mean(r.classic[name][i].bpp for r in results):.3f} / "
                       f"{mean(r.classic[name][i].psnr for r in results):.2f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "BD-rate of the learned codec (mean over images of per-image BD-rate; negative = fewer bits):", "",
              "| anchor | all photos, PSNR | all, MS-SSIM | scikit-image photos, PSNR | scikit-image, MS-SSIM |",
              "|---|---|---|---|---|"]
    # the scikit-image photos are the reference set (its 0.5 bpp figures); which photos a model
    # saw in training is stated on its card (the v0.2 image model saw none of them)
    skimage = [r for r in results if r.subset == "skimage"]
    anchors = {name: (lambda r, name=name: r.classic[name]) for name in CLASSIC}
    if baselines:
        anchors["bmshj2018 (our trainer, same budget)"] = lambda r: r.baseline
    for name, points in anchors.items():
        cells = []
        for group in (results, skimage):
            for metric in ("psnr", "msssim"):
                values = [bd_rate(points(r), r.neural, metric) for r in group]
                ok = [v for v in values if v is not None]
                cells.append(f"{mean(ok):+.1f} % ({len(ok)}/{len(group)} images)" if ok else "n/a (no overlap)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if skimage:
        lines += ["", "PSNR at 0.5 bpp on the scikit-image photos (interpolated; nan = not reached):", ""]
        cells = [f"learned {mean(interp_at(r.neural, 0.5) for r in skimage):.2f} dB"]
        cells += [f"{name} {mean(interp_at(points(r), 0.5) for r in skimage):.2f} dB" for name, points in anchors.items()]
        lines.append(", ".join(cells) + ".")
    megapixels = sum(r.pixels for r in results) / 1e6 * len(qualities)
    enc = sum(sum(r.encode_s) for r in results) / megapixels
    dec = sum(sum(r.decode_s) for r in results) / megapixels
    lines += ["", f"Learned codec speed (2 torch threads, CPU): encode {enc:.2f} s/megapixel, decode {dec:.2f} s/megapixel "
              "(averaged over all images and qualities)."]
    lines += postfilter_report(results, qualities)
    lines += refinement_report(results, qualities, refine_steps)
    if baselines:
        lines += baseline_report(results, baselines, baseline_dir)
        if len(baselines) < 4:
            lines += ["", f"BD-rate against the baseline needs >= 4 of its rate points; {len(baselines)} trained so far."]
    else:
        where = f" (none found under `{baseline_dir}`)" if baseline_dir else " (no `--baseline-dir` given)"
        lines += ["", "Not measured here: CompressAI's `bmshj2018_hyperprior` trained by our trainer on the same data "
                  f"and step budget{where}; train it with `codec train experiment=image_bmshj2018 model.lmbda=...` "
                  "(commands in `configs/experiment/image_bmshj2018.yaml`)."]
    return "\n".join(lines)


def main(argv=None) -> int:
    from neuralcodec.codecs.registry import load_codec
    from neuralcodec.media import load_image

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="image", help="shipped model name or exported .safetensors path")
    parser.add_argument("--images", nargs="*", type=Path,
                        default=[DEV_IMAGES / "skimage", DEV_IMAGES / "mate"], help="folders of PNG photos")
    parser.add_argument("--qualities", nargs="*", type=float, help="quality levels (default: all)")
    parser.add_argument("--limit", type=int, help="use only the first N images of each folder")
    parser.add_argument("--baseline-dir", type=Path,
                        help="folder holding `codec train experiment=image_bmshj2018` runs (e.g. runs/): measure them")
    parser.add_argument("--refine-steps", type=int, default=0,
                        help="also code the --refine-subset photos with latent refinement of this many steps")
    parser.add_argument("--refine-subset", default="skimage", help="folder name of the photos to refine (default: skimage)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md unchanged")
    args = parser.parse_args(argv)

    torch.set_num_threads(2)
    codec = load_codec(args.model)
    baselines = []
    if args.baseline_dir is not None:
        from neuralcodec.eval.bmshj2018 import find_baselines

        baselines = find_baselines(args.baseline_dir)
        print(f"bmshj2018 baselines: {len(baselines)} under {args.baseline_dir}"
              + "".join(f"\n  lambda {b.config['lmbda']:g}: {b.source} ({b.steps or '?'} steps)" for b in baselines))
    qualities = args.qualities or list(range(1, codec.num_qualities + 1))
    images = []
    for folder in args.images:
        found = list_images([folder])
        images += found[: args.limit] if args.limit else found
    results = []
    for path, subset in images:
        image = load_image(path)
        ref = to_uint8(image)
        result = ImageResult(path.name, subset, ref.shape[0] * ref.shape[1])
        neural_points(codec, image, ref, qualities, result)
        neural_points(codec, image, ref, qualities, result, postfilter=False)
        classic_points(ref, result.neural, result)
        baseline_points(baselines, image, ref, result)
        if args.refine_steps and subset == args.refine_subset:
            neural_points(codec, image, ref, qualities, result, steps=args.refine_steps)
        results.append(result)
        best = result.neural[-1]
        print(f"{subset}/{path.name}: " + ", ".join(f"q{q:g} {p.bpp:.3f} bpp {p.psnr:.2f} dB"
                                                     for q, p in zip(qualities, result.neural))
              + f" | JPEG at {best.bpp:.3f} bpp: {result.classic['JPEG'][-1].psnr:.2f} dB"
              + "".join(f" | bmshj2018 {p.bpp:.3f} bpp {p.psnr:.2f} dB" for p in result.baseline)
              + "".join(f" | no filter q{q:g} {p.bpp:.3f} bpp {p.psnr:.2f} dB" for q, p in zip(qualities, result.unfiltered))
              + "".join(f" | refined q{q:g} {p.bpp:.3f} bpp {p.psnr:.2f} dB" for q, p in zip(qualities, result.refined)),
              flush=True)
    markdown = report(results, codec, qualities, str(args.model), baselines, args.baseline_dir, args.refine_steps)
    print(markdown)
    if not args.no_write:
        update_section("image", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
