"""Training throughput of an experiment at several precisions: seconds per training iteration here.

``python -m benchmarks.training_speed experiment=speech_continue data_root=DIR [--iterations 20]
[--warmup 5] [--precision 32-true bf16-mixed] [--section NAME]`` (Hydra overrides as for ``codec train``).

Runs the experiment's real LightningModule and data module through a Lightning ``Trainer`` (no
validation, checkpoints or loggers) for ``warmup + iterations`` training batches per precision and
reports the wall time of the timed ``training_step`` calls (for GAN modules one iteration is a
discriminator step plus a generator step). Measure before choosing model sizes and step budgets,
on an otherwise idle machine: two jobs sharing the cores halve each other's figures.
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning.pytorch as pl
import torch

from benchmarks.results import machine_line, update_section


class StepTimer(pl.Callback):
    """Records the wall time of every training batch."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter() - self._start)


def measure(overrides: list[str], precision: str, iterations: int, warmup: int) -> list[float]:
    """Seconds per training iteration (after ``warmup`` untimed ones) of the composed experiment."""
    from hydra.utils import instantiate

    from neuralcodec.train.run import compose

    cfg = compose(overrides)
    torch.manual_seed(0)
    module = instantiate(cfg.model, _convert_="all")
    datamodule = instantiate(cfg.data, _convert_="all")
    timer = StepTimer()
    trainer = instantiate(cfg.trainer, precision=precision, max_steps=-1, max_epochs=1,
                          limit_train_batches=warmup + iterations, limit_val_batches=0, val_check_interval=None,
                          logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False, callbacks=[timer])
    trainer.fit(module, datamodule=datamodule)
    return timer.times[warmup:]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="+", help="Hydra overrides, e.g. experiment=speech_continue data_root=DIR")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--precision", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--section", default=None, help="RESULTS.md section to write (default: print only)")
    args = parser.parse_args(argv)

    rows = []
    for precision in args.precision:
        times = measure(args.overrides, precision, args.iterations, args.warmup)
        mean, median = statistics.fmean(times), statistics.median(times)
        print(f"{precision}: {mean:.3f} s/iteration (median {median:.3f}, {len(times)} timed)", flush=True)
        rows.append((precision, mean, median, len(times)))
    base = rows[0][1]
    lines = [f"## Training speed (`python -m benchmarks.training_speed {' '.join(args.overrides)}`)", "",
             machine_line() + ".", "",
             "| precision | s / iteration (mean) | median | iterations/s | vs first |", "|---|---|---|---|---|"]
    lines += [f"| {p} | {m:.3f} | {md:.3f} | {1 / m:.2f} | {base / m:.2f}x |" for p, m, md, _ in rows]
    print("\n".join(lines))
    if args.section:
        update_section(args.section, "\n".join(lines))


if __name__ == "__main__":
    main()
