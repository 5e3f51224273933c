"""Figures of the demo site (matplotlib, Agg backend): spectrograms and rate-distortion plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from neuralcodec.fileio import atomic_output


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def spectrogram_png(wav: torch.Tensor, rate: int, path: Path, title: str = "") -> None:
    """Log-magnitude spectrogram (dB, 0-rate/2 Hz) of a mono ``[T]`` signal as a small PNG."""
    plt = _pyplot()
    n_fft = 512 if rate <= 24000 else 1024
    x = wav.detach().float().reshape(-1)
    if x.numel() < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - x.numel()))
    spec = torch.stft(x, n_fft, hop_length=n_fft // 4, window=torch.hann_window(n_fft), return_complex=True).abs()
    db = 20 * torch.log10(spec + 1e-5)
    db = db.clamp(min=float(db.max()) - 80).numpy()
    fig, ax = plt.subplots(figsize=(6.0, 2.2), dpi=80)
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma",
              extent=(0, x.numel() / rate, 0, rate / 2000))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("kHz")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_output(path) as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)


def rd_plot_png(series: dict[str, Sequence[tuple[float, float]]], path: Path, xlabel: str, ylabel: str,
                title: str = "", log_x: bool = False) -> None:
    """One line (or marker, for a single point) per series of ``(rate, quality)`` points, as a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=80)
    for label, points in series.items():
        pts = sorted((r, q) for r, q in points if not (math.isnan(r) or math.isnan(q)))
        if not pts:
            continue
        xs, ys = np.array(pts).T
        ax.plot(xs, ys, marker="o", linestyle="-" if len(pts) > 1 else "none", label=label)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)
