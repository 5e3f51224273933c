"""Export a training checkpoint as a shipped/exported model (``.safetensors`` with its config).

``python -m neuralcodec.train.export RUN/checkpoints/last.ckpt OUT.safetensors [--name speech]``
keeps only the codec's weights (no discriminators or optimiser state), freezes the entropy models'
integer tables, and embeds the codec config so :func:`~neuralcodec.codecs.load_codec` rebuilds it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from neuralcodec.codecs.registry import build_codec, save_codec
from neuralcodec.errors import ModelError


def export_checkpoint(checkpoint: str | Path, output: str | Path, name: str | None = None,
                      half: bool = False) -> Path:
    """Write the codec of a Lightning checkpoint to ``output``; returns the path."""
    ckpt = torch.load(str(checkpoint), map_location="cpu", weights_only=False)
    try:
        config = dict(ckpt["hyper_parameters"]["codec"])
    except KeyError:
        raise ModelError(f"{checkpoint} is not a neuralcodec training checkpoint (no codec config)") from None
    if name:
        config["name"] = name
    codec = build_codec(config)
    prefix = "codec."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    codec.load_state_dict(state)
    hp = ckpt["hyper_parameters"]
    if "circuit" in hp and "source_fingerprint" in hp:
        # a circuit-prior fit (CircuitPriorModule.export_codec): everything but the circuit is the source
        # model as loaded; freezing again would rebuild the token prior's tables from the stored
        # (float16) weights and could change them, the fingerprint, and so every file the model wrote
        codec.eval()
    else:
        codec.eval().freeze_entropy_models()
    return save_codec(codec, output, float_dtype=torch.float16 if half else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("output")
    parser.add_argument("--name", help="model name recorded in the config and in every file it writes")
    parser.add_argument("--half", action="store_true", help="store float weights as float16 (half the size)")
    args = parser.parse_args(argv)
    path = export_checkpoint(args.checkpoint, args.output, args.name, args.half)
    print(f"exported {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
