"""``codec train [overrides]``: Hydra-configured Lightning training (see :mod:`neuralcodec.train.run`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a codec from a Hydra experiment config",
        description="Train a codec. Arguments are Hydra overrides, e.g. "
        "'codec train experiment=speech_rvq data.train_dir=/data/speech trainer.max_steps=20000'. "
        "Multi-GPU/multi-node: trainer.devices=N trainer.num_nodes=M trainer.strategy=ddp.",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (key=value)")
    parser.add_argument("--print-config", action="store_true", help="print the composed config and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from neuralcodec.train.run import compose, train

    cfg = compose(args.overrides)
    if args.print_config:
        print(OmegaConf.to_yaml(cfg))
        return 0
    path = train(cfg)
    if path is not None:
        print(f"exported model: {path}")
    return 0
