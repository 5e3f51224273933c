"""The one training entry point: ``codec train [hydra overrides]`` == ``python -m neuralcodec.train ...``.

Composes ``configs/train.yaml`` with the given overrides (``experiment=speech_rvq``,
``data.train_dir=...``, ``trainer.max_steps=...``), instantiates the data module, the
LightningModule and the Trainer from their config groups, resumes from ``<run_dir>/checkpoints/last.ckpt``
when it exists, and exports the trained codec (weights + config) to ``<run_dir>/model.safetensors``.
Scale-out (GPUs, nodes, strategy) is only ever Lightning's: ``trainer.devices=8 trainer.num_nodes=2
trainer.strategy=ddp``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from neuralcodec.errors import NeuralCodecError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def config_dir() -> Path:
    """Where the Hydra configs live (``$NEURALCODEC_CONFIGS`` or the repository's ``configs/``)."""
    path = Path(os.environ.get("NEURALCODEC_CONFIGS", CONFIG_DIR))
    if not (path / "train.yaml").is_file():
        raise NeuralCodecError(f"Hydra configs not found at {path}; set NEURALCODEC_CONFIGS to the configs/ folder")
    return path


def compose(overrides: Sequence[str] = ()):
    """The composed training config for ``overrides`` (a DictConfig)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return hydra_compose(config_name="train", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        detail = " ".join(str(e).strip() for e in (exc, exc.__cause__) if e is not None and str(e).strip())
        raise NeuralCodecError(f"bad training config: {detail or type(exc).__name__}") from exc


def train(cfg) -> Path | None:
    """Run one training job described by a composed config; returns the exported model path."""
    import lightning as L
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from omegaconf import OmegaConf

    import torch

    from neuralcodec.codecs.registry import save_codec

    L.seed_everything(int(cfg.seed), workers=True)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    datamodule = instantiate(cfg.data, _convert_="all")
    module = instantiate(cfg.model, _convert_="all")
    # One rolling last.ckpt per run dir (no "-v1" copies): resume always finds the newest state.
    checkpoints = ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0,
                                  every_n_train_steps=int(cfg.checkpoint_every_n_steps), enable_version_counter=False)
    callbacks = [checkpoints, LearningRateMonitor(logging_interval="step")]
    loggers = [CSVLogger(str(run_dir), name="csv"), TensorBoardLogger(str(run_dir), name="tensorboard")]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers, default_root_dir=str(run_dir))

    last = run_dir / "checkpoints" / "last.ckpt"
    resume = str(last) if (cfg.resume and last.is_file()) else None
    if resume is None and cfg.get("init_from"):
        _warm_start(module.codec, cfg.init_from, cfg.get("init_from_new_modules") or (),
                    cfg.get("init_from_skip_modules") or ())
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)

    if trainer.is_global_zero and cfg.export:
        half = torch.float16 if cfg.get("export_half") else None
        return save_codec(module.export_codec(), run_dir / "model.safetensors", float_dtype=half)
    return None


def _warm_start(codec, path: str, new_modules: Sequence[str] = (), skip_modules: Sequence[str] = ()) -> None:
    """Initialise a fresh run's codec from an exported model (e.g. a shipped one) with the same config.

    ``new_modules``: parameter-name prefixes the source may lack (modules this config adds); they
    keep their fresh initialisation. ``skip_modules``: prefixes of the source's parameters to leave
    out (e.g. entropy models that continued training makes stale and that are refitted afterwards);
    the run's own modules under them keep their fresh initialisation too. Anything else missing or
    unexpected is an error.
    """
    from neuralcodec.codecs.registry import load_codec

    def under(name: str, prefixes: Sequence[str]) -> bool:
        return any(name == p or name.startswith(p.rstrip(".") + ".") for p in prefixes)

    source = load_codec(path)
    if source.config.get("codec") != codec.config.get("codec"):
        raise NeuralCodecError(f"init_from={path} is a {source.config.get('codec')!r} model, not {codec.config.get('codec')!r}")
    state = {k: v for k, v in source.state_dict().items() if not under(k, skip_modules)}
    try:
        missing, unexpected = codec.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches (strict=False still refuses those)
        lines = str(exc).strip().splitlines()  # "Error(s) in loading ...", then one line per tensor
        raise NeuralCodecError(f"init_from={path} does not fit this config: {lines[min(1, len(lines) - 1)].strip()}") from exc
    missing = [k for k in missing if not under(k, tuple(new_modules) + tuple(skip_modules))]
    if missing or unexpected:
        raise NeuralCodecError(f"init_from={path} does not fit this config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    codec.train()


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    overrides = list(sys.argv[1:] if argv is None else argv)
    cfg = compose(overrides)
    path = train(cfg)
    if path is not None:
        print(f"exported model: {path}")
    return 0
