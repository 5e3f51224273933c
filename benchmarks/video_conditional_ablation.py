"""Ablations of the conditional video codec: motion alignment, and PSNR drift with / without refresh.

Alignment (equal training budget, same seed and data, validation on the held-out clip)::

    python -m benchmarks.video_conditional_ablation align --steps 2000 [--experiment video_debug]
        [--init-from MODEL] [--runs-dir runs] [hydra overrides]

trains one run per ``model.codec.inter.alignment`` value (``none``, ``extrapolated``) under
``RUNS_DIR/ablation-align-*`` and prints the validation bpp / PSNR (inter frames) of each. With
``--init-from`` (an exported model without alignment, e.g. the shipped ``video``) both runs start from
its weights and the alignment network starts at zero flow (= no alignment), so the two arms differ
only in what the extra ``--steps`` make of the alignment network.

Drift over a long prediction chain (one intra frame, then P-frames only; eval forward == decode)::

    python -m benchmarks.video_conditional_ablation drift MODEL [--video bbb_640x360_25fps_132f.y4m] [--frames 132]

prints the per-frame PSNR (and mean of the first / last 20 P-frames) with the model's context
refresh and with refresh disabled (``refresh_period = 0``), frame by frame with bounded memory.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

DEV_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video"


def drift(model: str, video: Path, frames: int, quality: float, crop: int) -> dict[str, list[float]]:
    """Per-frame PSNR of one intra + ``frames - 1`` P-frames, with and without context refresh."""
    from neuralcodec.codecs.image.padding import pad_to_multiple
    from neuralcodec.codecs.image.transforms import STRIDE
    from neuralcodec.codecs.registry import load_codec
    from neuralcodec.media import Y4MReader, yuv_to_rgb

    codec = load_codec(model)
    q = torch.tensor([quality])
    out: dict[str, list[float]] = {}
    for label, period in (("refresh", codec.refresh_period), ("no refresh", 0)):
        psnrs, bits, ref = [], [], None
        with Y4MReader(video) as reader, torch.no_grad():
            for t, frame in enumerate(reader):
                if t >= frames:
                    break
                x = yuv_to_rgb(frame)[None]
                if crop:
                    h, w = x.shape[-2:]
                    top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
                    x = x[..., top:top + crop, left:left + crop]
                xp = pad_to_multiple(x, STRIDE)
                if ref is None:
                    res = codec.intra(xp, q)
                    x_hat, b = res.x_hat, res.bits
                    ref = codec._intra_reference(x_hat)
                else:
                    x_hat, b, ref = codec._inter_step(xp, q, ref, period)
                mse = (x_hat[..., :x.shape[-2], :x.shape[-1]].clamp(0, 1) - x).pow(2).mean()
                psnrs.append(float(10 * torch.log10(1 / mse)))
                bits.append(float(b[0]) / (x.shape[-1] * x.shape[-2]))
        out[label] = psnrs
        out[label + " bpp"] = bits
    return out


def align(steps: int, experiment: str, overrides: list[str], init_from: str | None = None,
          runs_dir: str = "runs") -> None:
    """Train one run per alignment with the same budget; print their validation R-D figures."""
    import csv

    from neuralcodec.train.run import compose, train

    for alignment in ("none", "extrapolated"):
        run_dir = Path(runs_dir) / f"ablation-align-{alignment}"
        warm = [f"init_from={init_from}", "init_from_new_modules=[context.flow]"] if init_from else []
        cfg = compose([f"experiment={experiment}", f"run_dir={run_dir}", f"trainer.max_steps={steps}",
                       f"trainer.val_check_interval={steps}", f"model.codec.inter.alignment={alignment}",
                       "trainer.accelerator=cpu", *warm, *overrides])
        train(cfg)
        rows = [r for p in (run_dir / "csv").rglob("metrics.csv") for r in csv.DictReader(p.open())]
        last = {k: v for r in rows for k, v in r.items() if v and k.startswith("val/")}
        print(alignment, {k: round(float(v), 4) for k, v in sorted(last.items())})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    a = sub.add_parser("align")
    a.add_argument("--steps", type=int, default=2000)
    a.add_argument("--experiment", default="video_debug")
    a.add_argument("--init-from", help="exported model (no alignment) both arms start from")
    a.add_argument("--runs-dir", default="runs")
    a.add_argument("overrides", nargs="*")
    d = sub.add_parser("drift")
    d.add_argument("model")
    d.add_argument("--video", default="bbb_640x360_25fps_132f.y4m")
    d.add_argument("--frames", type=int, default=132)
    d.add_argument("--quality", type=float, default=4.0)
    d.add_argument("--crop", type=int, default=256, help="centre crop side (0: whole frame)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.what == "align":
        align(args.steps, args.experiment, args.overrides, args.init_from, args.runs_dir)
        return 0
    video = Path(args.video) if Path(args.video).is_file() else DEV_VIDEOS / args.video
    res = drift(args.model, video, args.frames, args.quality, args.crop)
    for label in ("refresh", "no refresh"):
        p = res[label][1:]
        k = min(20, len(p))
        print(f"{label:>10}: P-frames {len(p)}, mean PSNR first {k} {sum(p[:k]) / k:.3f} dB, last {k} "
              f"{sum(p[-k:]) / k:.3f} dB, drift {sum(p[-k:]) / k - sum(p[:k]) / k:+.3f} dB, "
              f"mean bpp {sum(res[label + ' bpp'][1:]) / max(1, len(p)):.4f}")
    print("per-frame PSNR (refresh / no refresh):")
    print(" ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(res["refresh"], res["no refresh"])))
    return 0 if all(math.isfinite(v) for v in res["refresh"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
