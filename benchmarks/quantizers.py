"""Quantizer throughput against vector-quantize-pytorch, same configurations, 2 CPU threads.

Run from the repo root: ``python -m benchmarks.quantizers [--reps N] [--no-write]``.

Latent ``[16, 512, 750]`` (12000 frames). For each quantizer and mode the two implementations are
timed alternately (interleaved repetitions, so background load hits both alike); the table gives
best-of-runs frames/s and the ratio ours / theirs (> 1: ours is faster) from best-of-runs and
from medians.

Modes: ``eval fwd`` (eval-mode forward, no grad), ``train step`` (train-mode forward with EMA and
dead-code updates + backward of a loss on the output), ``encode`` (ours: ``encode``; theirs has no
encode-only path, so its eval forward, which also returns the indices).

vector-quantize-pytorch is only needed here: ``.venv/bin/pip install vector-quantize-pytorch``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from benchmarks.results import machine_line, update_section
from neuralcodec.quantizers import FSQ, ResidualVQ, VectorQuantizer

SHAPE = (16, 512, 750)
FRAMES = SHAPE[0] * SHAPE[2]
DECAY = 0.99
COMMITMENT = 0.25
DEAD_ABS = 2.0  # theirs: absolute EMA count; ours: the same count relative to uniform usage
FSQ_LEVELS = (7, 5, 5, 5, 5)  # 4375 codes, the FSQ paper's stand-in for a 2^12 codebook


@dataclass
class Case:
    name: str
    ours: nn.Module
    theirs: nn.Module | None
    theirs_layout: str  # "channels_first" (module handles [B, D, T]) or "channels_last"


def fmt(value: float | None, spec: str) -> str:
    """Format ``value`` with ``spec``, or ``n/a`` when the comparison side is missing."""
    return "n/a" if value is None else format(value, spec)


def build_cases() -> tuple[list[Case], str | None]:
    """Both sides of every comparison with matching settings (theirs is None if not installed)."""
    try:
        import vector_quantize_pytorch as vqp
    except ImportError:
        vqp = None
        note = (
            "vector-quantize-pytorch is not installed: comparison skipped "
            "(install it with `.venv/bin/pip install vector-quantize-pytorch`)."
        )
    else:
        note = None
    d, k = SHAPE[1], 4096
    rel_dead = DEAD_ABS / (FRAMES / k)
    cases = []
    for grad in ("ste", "rotation"):
        ours = VectorQuantizer(
            d, k, decay=DECAY, commitment_weight=COMMITMENT, dead_code_threshold=rel_dead, gradient=grad
        )
        theirs = None
        if vqp is not None:
            theirs = vqp.VectorQuantize(
                dim=d,
                codebook_size=k,
                decay=DECAY,
                commitment_weight=COMMITMENT,
                threshold_ema_dead_code=DEAD_ABS,
                rotation_trick=grad == "rotation",
                channel_last=False,
            )
        cases.append(Case(f"VQ 4096x512 ({grad})", ours, theirs, "channels_first"))
    k_rvq = 1024
    ours = ResidualVQ(
        d, 8, k_rvq, decay=DECAY, commitment_weight=COMMITMENT, dead_code_threshold=DEAD_ABS / (FRAMES / k_rvq)
    )
    theirs = None
    if vqp is not None:
        theirs = vqp.ResidualVQ(
            dim=d,
            num_quantizers=8,
            codebook_size=k_rvq,
            decay=DECAY,
            commitment_weight=COMMITMENT,
            threshold_ema_dead_code=DEAD_ABS,
            rotation_trick=False,
        )
    cases.append(Case("RVQ 8x1024 (ste)", ours, theirs, "channels_last"))
    ours = FSQ(FSQ_LEVELS, d)
    theirs = vqp.FSQ(levels=list(FSQ_LEVELS), dim=d, channel_first=True) if vqp is not None else None
    if theirs is not None:
        theirs.project_in.load_state_dict(ours.project_in.state_dict())
        theirs.project_out.load_state_dict(ours.project_out.state_dict())
    cases.append(Case(f"FSQ {'x'.join(map(str, FSQ_LEVELS))}", ours, theirs, "channels_first"))
    return cases, note


def ours_fns(q: nn.Module, z: Tensor, zg: Tensor, g: Tensor) -> dict[str, Callable[[], object]]:
    def eval_fwd() -> object:
        q.eval()
        with torch.no_grad():
            return q(z).quantized

    def train_step() -> object:
        q.train()
        zg.grad = None
        out = q(zg)
        ((out.quantized * g).sum() + out.loss).backward()
        return zg.grad

    def encode() -> object:
        q.eval()
        return q.encode(z)

    return {"eval fwd": eval_fwd, "train step": train_step, "encode": encode}


def theirs_fns(q: nn.Module, layout: str, z: Tensor, zg: Tensor, g: Tensor) -> dict[str, Callable[[], object]]:
    def run(x: Tensor) -> tuple[Tensor, Tensor]:
        if layout == "channels_last":
            x = x.transpose(1, 2)
        out = q(x)
        quantized, loss = out[0], (out[2].sum() if len(out) > 2 else x.new_zeros(()))
        if layout == "channels_last":
            quantized = quantized.transpose(1, 2)
        return quantized, loss

    def eval_fwd() -> object:
        q.eval()
        with torch.no_grad():
            return run(z)[0]

    def train_step() -> object:
        q.train()
        zg.grad = None
        quantized, loss = run(zg)
        ((quantized * g).sum() + loss).backward()
        return zg.grad

    return {"eval fwd": eval_fwd, "train step": train_step, "encode": eval_fwd}


def interleaved(
    a: Callable[[], object], b: Callable[[], object] | None, reps: int, min_seconds: float = 3.0, max_reps: int = 200
) -> tuple[list[float], list[float]]:
    """Seconds per call of ``a`` and ``b``, timed alternately after one warm-up each.

    At least ``reps`` repetitions, more (up to ``max_reps``) until each side has run ``min_seconds``.
    """
    a()
    if b is not None:
        b()
    ta: list[float] = []
    tb: list[float] = []
    while len(ta) < reps or (len(ta) < max_reps and min(sum(ta), sum(tb) if b else float("inf")) < min_seconds):
        t0 = time.perf_counter()
        a()
        ta.append(time.perf_counter() - t0)
        if b is not None:
            t0 = time.perf_counter()
            b()
            tb.append(time.perf_counter() - t0)
    return ta, tb


def run_table(threads: int, reps: int, only: str) -> tuple[list[tuple], str | None, str]:
    """Time every case at ``threads`` intra-op threads; returns (rows, skip note, load averages)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    z = torch.randn(*SHAPE)
    zg = z.clone().requires_grad_()
    g = torch.randn(*SHAPE) / FRAMES
    cases, note = build_cases()
    if only:
        cases = [c for c in cases if only.lower() in c.name.lower()]
    if note:
        print(note)
    load_before = os.getloadavg()[0]
    rows = []
    for case in cases:
        mine = ours_fns(case.ours, z, zg, g)
        other = theirs_fns(case.theirs, case.theirs_layout, z, zg, g) if case.theirs is not None else None
        for mode, fn in mine.items():
            ta, tb = interleaved(fn, other[mode] if other else None, reps)
            best_ours = FRAMES / min(ta)
            best_theirs = FRAMES / min(tb) if tb else None
            ratio_best = min(tb) / min(ta) if tb else None
            ratio_median = statistics.median(tb) / statistics.median(ta) if tb else None
            rows.append((case.name, mode, len(ta), best_ours, best_theirs, ratio_best, ratio_median))
            print(
                f"[{threads} thr] {case.name:24s} {mode:10s} runs {len(ta):3d}  ours {best_ours:9.0f} f/s  "
                f"theirs {fmt(best_theirs, '9.0f')} f/s  ratio best {fmt(ratio_best, '5.2f')}  "
                f"median {fmt(ratio_median, '5.2f')}",
                flush=True,
            )
    load = f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    return rows, note, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="minimum timed repetitions per side")
    parser.add_argument("--only", default="", help="run only cases whose name contains this text (implies --no-write)")
    parser.add_argument("--threads", default="2", help="comma-separated thread counts, one table each (e.g. 2,1)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    try:
        version = importlib.metadata.version("vector-quantize-pytorch")
    except importlib.metadata.PackageNotFoundError:
        version = "(not installed)"
    threads = [int(t) for t in args.threads.split(",")]
    lines = [
        "## Quantizers (`python -m benchmarks.quantizers`)",
        "",
        f"Latent `[16, 512, 750]` (12000 frames); ours and vector-quantize-pytorch {version} (theirs) timed "
        f"alternately, >= {args.reps} runs each (more for fast cases, until each side has run 3 s). "
        f"Machine: {machine_line()} (thread count per table below); benchmark process niceness {os.nice(0)}.",
        "",
        "Throughput is best-of-runs (the least disturbed by other load on the machine); ratio = ours / theirs "
        "throughput (>= 1: ours at least as fast), from best-of-runs and from medians. "
        "`train step` = train-mode forward (EMA + dead-code updates) + backward; "
        "`encode` for theirs is its eval forward (it has no encode-only path). "
        f"Same settings on both sides: EMA decay {DECAY}, commitment weight {COMMITMENT}, dead-code threshold "
        f"{DEAD_ABS:g} expected uses per batch, no k-means, no quantizer dropout. The 1-minute load average "
        "(shown) says how busy the shared machine was: with more runnable processes than cores, every "
        "multi-threaded op can wait a scheduler slice for its second thread, which swamps millisecond-scale ops.",
        "",
    ]
    for n in threads:
        rows, note, load = run_table(n, args.reps, args.only)
        if note:
            lines += [f"**{note}**", ""]
        lines += [
            f"**{n} thread{'s' if n > 1 else ''}** (load average {load})",
            "",
            "| quantizer | mode | runs | ours (frames/s) | theirs (frames/s) | ratio (best) | ratio (median) |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for name, mode, runs, fo, ft, rb, rm in rows:
            lines.append(
                f"| {name} | {mode} | {runs} | {fo:,.0f} | {fmt(ft, ',.0f')} | {fmt(rb, '.2f')} | {fmt(rm, '.2f')} |"
            )
        lines.append("")
    markdown = "\n".join(lines) + "\n"
    if not args.no_write and not args.only:
        update_section("quantizers", markdown)
        print("wrote the 'quantizers' section of benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
