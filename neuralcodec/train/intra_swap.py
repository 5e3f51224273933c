"""Give a conditional video model the intra coder of an image model (a newer ``image`` training run).

``python -m neuralcodec.train.intra_swap VIDEO IMAGE OUT.safetensors [--name video] [--half]``

The video model's ``intra`` config becomes the image model's (sizes and entropy model, e.g. a
checkerboard context); ``intra.*`` takes the image model's weights *and* integer tables as stored,
so an intra frame is coded exactly as ``codec encode`` codes that picture with the image model. The
P-frame networks are kept unchanged (they were trained on the old intra coder's reconstructions:
retrain them on the new one for the full gain). Both models must share their quality lambdas.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from neuralcodec.codecs.registry import build_codec, load_codec, save_codec
from neuralcodec.errors import ModelError

#: Image-config keys the video codec sets itself for its intra coder.
_VIDEO_OWNED = ("codec", "name", "lambdas", "default_quality")


def swap_intra(video: str | Path, image: str | Path, output: str | Path, name: str | None = None,
               half: bool = False) -> Path:
    """Write ``video`` with ``image``'s intra coder to ``output``; returns the path."""
    source, intra = load_codec(video), load_codec(image)
    if source.config.get("codec") != "video-conditional":
        raise ModelError(f"{video} is a {source.config.get('codec')!r} model, not a conditional video model")
    if intra.config.get("codec") != "image":
        raise ModelError(f"{image} is a {intra.config.get('codec')!r} model, not an image model")
    if [float(v) for v in intra.lambdas] != [float(v) for v in source.lambdas]:
        raise ModelError(f"{image} has quality lambdas {intra.lambdas}, the video model {source.lambdas}: "
                         "an intra coder must code the video's quality levels")
    config = dict(source.config)
    config["intra"] = {k: v for k, v in intra.config.items() if k not in _VIDEO_OWNED}
    if name:
        config["name"] = name
    codec = build_codec(config)
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("intra.")}
    state.update({f"intra.{k}": v for k, v in intra.state_dict().items()})
    codec.load_state_dict(state)
    codec.eval()  # no freeze: both parts keep the integer tables they were shipped with
    return save_codec(codec, output, float_dtype=torch.float16 if half else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", help="conditional video model (.safetensors or shipped name)")
    parser.add_argument("image", help="image model whose weights become the intra coder")
    parser.add_argument("output")
    parser.add_argument("--name", help="model name recorded in the config and in every file it writes")
    parser.add_argument("--half", action="store_true", help="store float weights as float16 (half the size)")
    args = parser.parse_args(argv)
    print(f"exported {swap_intra(args.video, args.image, args.output, args.name, args.half)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
