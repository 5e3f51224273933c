"""CompressAI's ``bmshj2018_hyperprior`` (``compressai.models.ScaleHyperprior``) as a same-budget baseline.

The architecture is CompressAI's own class, unchanged; this module only adds what our training
machinery and the image benchmark need around it:

* :class:`BMSHJ2018Baseline` -- the trainable model for :class:`~neuralcodec.train.image_module.SingleRateImageRDModule`:
  ``config`` (stored in checkpoints and in the exported ``.safetensors``), a per-image estimated
  ``bpp`` from CompressAI's likelihoods, the auxiliary loss and its parameters (the
  ``EntropyBottleneck`` quantiles), and ``freeze_entropy_models()`` = CompressAI's ``update(force=True)``
  so ``codec train``'s export writes the CDF tables. Loading resizes CompressAI's dynamically sized
  table buffers first, so resuming from ``last.ckpt`` works after a validation filled them.
* :func:`load_baseline` / :func:`find_baselines` -- a plain ``compressai.models.ScaleHyperprior`` from an
  exported ``model.safetensors`` or a Lightning ``.ckpt`` of such a run (``update(force=True)`` done).
* :func:`encode_image` / :func:`decode_image` -- real bytes from CompressAI's own ``compress()`` /
  ``decompress()`` (its rANS coder). The stream is a 9-byte header (height, width, channels,
  length of the ``y`` string) followed by the ``y`` and ``z`` strings; images are edge-padded to a
  multiple of 64 and cropped back; grayscale is replicated to RGB and decoded as the channel mean
  (as our image codec does).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from neuralcodec.codecs.image.padding import crop_to, pad_to_multiple
from neuralcodec.errors import ModelError

CODEC_ID = "compressai-bmshj2018"
STRIDE = 64
#: CompressAI's zoo settings for bmshj2018-hyperprior: quality -> (lambda for MSE, N, M)
ZOO_POINTS = {1: (0.0018, 128, 192), 2: (0.0035, 128, 192), 3: (0.0067, 128, 192), 4: (0.0130, 128, 192),
              5: (0.0250, 128, 192), 6: (0.0483, 192, 320), 7: (0.0932, 192, 320), 8: (0.1800, 192, 320)}
_HEADER = struct.Struct(">HHBI")  # height, width, channels, len(y string)
_TABLE_BUFFERS = {"EntropyBottleneck": ["_quantized_cdf", "_offset", "_cdf_length"],
                  "GaussianConditional": ["_quantized_cdf", "_offset", "_cdf_length", "scale_table"]}


class BMSHJ2018Baseline(nn.Module):
    """``compressai.models.ScaleHyperprior(N, M)`` trained at one ``lmbda`` (held in ``self.model``)."""

    modality = "image-baseline"  # not a registered codec: `codec encode` cannot use it

    def __init__(self, N: int = 128, M: int = 192, lmbda: float = 0.0067, name: str = "image_bmshj2018") -> None:
        super().__init__()
        from compressai.models import ScaleHyperprior

        self.model = ScaleHyperprior(int(N), int(M))
        self.lmbda = float(lmbda)
        self.config = {"codec": CODEC_ID, "name": str(name), "N": int(N), "M": int(M), "lmbda": float(lmbda)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "BMSHJ2018Baseline":
        config = dict(config)
        if config.pop("codec", CODEC_ID) != CODEC_ID:
            raise ModelError(f"not a {CODEC_ID} config: {config}")
        steps = config.pop("trained_steps", None)  # written at the end of training (informative)
        model = cls(**config)
        if steps is not None:
            model.config["trained_steps"] = int(steps)
        return model

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """``x_hat`` and the estimated ``bpp [B]`` (CompressAI's likelihoods of ``y`` and ``z``)."""
        out = self.model(x)
        pixels = x.shape[-2] * x.shape[-1]
        bits = sum(-torch.log2(lik).flatten(1).sum(dim=1) for lik in out["likelihoods"].values())
        return {"x_hat": out["x_hat"], "bpp": bits / pixels}

    def aux_loss(self) -> Tensor:
        return self.model.aux_loss()

    def aux_parameters(self) -> list[Tensor]:
        """The ``EntropyBottleneck`` quantiles: fitted only by :meth:`aux_loss`."""
        return [p for name, p in self.model.named_parameters() if name.endswith("quantiles")]

    def freeze_entropy_models(self) -> "BMSHJ2018Baseline":
        """CompressAI's ``update(force=True)``: CDF tables from the current weights (before coding/export)."""
        self.model.update(force=True)
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # CompressAI's table buffers change size in update(); resize ours to the stored ones before
        # the children copy them (nn.Module visits a parent before its children).
        resize_table_buffers(self.model, state_dict, prefix + "model.")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def resize_table_buffers(net: nn.Module, state_dict: Mapping[str, Tensor], prefix: str = "") -> None:
    """Resize ``net``'s CompressAI CDF buffers to the shapes stored in ``state_dict`` (keys ``prefix + name``)."""
    from compressai.models.utils import update_registered_buffers

    for name, module in net.named_modules():
        buffers = _TABLE_BUFFERS.get(type(module).__name__)
        if not buffers:
            continue
        key = f"{prefix}{name}"
        present = [b for b in buffers if f"{key}.{b}" in state_dict]
        if present:
            update_registered_buffers(module, key, present, state_dict, policy="resize")


# ----- loading trained baselines ------------------------------------------------------------------
@dataclass
class LoadedBaseline:
    net: nn.Module           # compressai.models.ScaleHyperprior, eval mode, tables updated
    config: dict[str, Any]   # N, M, lmbda, name
    source: Path
    steps: int | None        # optimiser steps of the run (export's trained_steps, else its checkpoint), if known


def _build_plain(config: Mapping[str, Any], state: Mapping[str, Tensor], source: Path) -> nn.Module:
    from compressai.models import ScaleHyperprior

    if config.get("codec") != CODEC_ID:
        raise ModelError(f"{source} is a {config.get('codec')!r} model, not {CODEC_ID}")
    net = ScaleHyperprior(int(config["N"]), int(config["M"]))
    inner = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    if not inner:
        raise ModelError(f"{source} holds no bmshj2018 weights")
    try:
        net.load_state_dict(inner)  # CompressAI's own load: resizes its table buffers
    except RuntimeError as exc:
        raise ModelError(f"{source} does not match its config: {exc}") from exc
    net.update(force=True)
    return net.eval()


def _checkpoint_steps(path: Path) -> int | None:
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - a step count is informative only
        return None
    return int(ckpt.get("global_step", 0)) or None


def load_baseline(path: str | Path) -> LoadedBaseline:
    """A trained baseline from an exported ``.safetensors``, a ``.ckpt``, or a run dir holding either."""
    path = Path(path)
    if path.is_dir():
        exported, last = path / "model.safetensors", path / "checkpoints" / "last.ckpt"
        if exported.is_file():
            loaded = load_baseline(exported)
            if loaded.steps is None and last.is_file():
                loaded.steps = _checkpoint_steps(last)
            return loaded
        if last.is_file():
            return load_baseline(last)
        raise ModelError(f"{path} holds neither model.safetensors nor checkpoints/last.ckpt")
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        from neuralcodec.codecs.registry import CONFIG_KEY

        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        if CONFIG_KEY not in meta:
            raise ModelError(f"{path} has no embedded neuralcodec config")
        config = json.loads(meta[CONFIG_KEY])
        steps = config.get("trained_steps")
        return LoadedBaseline(_build_plain(config, load_file(str(path)), path), config, path,
                              int(steps) if steps else None)
    if path.suffix == ".ckpt":
        ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
        config = dict(ckpt.get("hyper_parameters", {}).get("codec", {}))
        state = {k[len("codec."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("codec.")}
        return LoadedBaseline(_build_plain(config, state, path), config, path, int(ckpt.get("global_step", 0)) or None)
    raise ModelError(f"{path}: expected a run dir, a .safetensors or a .ckpt file")


def _embedded_codec_id(file: Path) -> str | None:
    """The ``codec`` id in an exported ``.safetensors`` file's config (None if unreadable)."""
    from safetensors import safe_open

    from neuralcodec.codecs.registry import CONFIG_KEY

    try:
        with safe_open(str(file), framework="pt") as handle:
            return json.loads((handle.metadata() or {}).get(CONFIG_KEY, "{}")).get("codec")
    except Exception:  # noqa: BLE001 - not a model file of ours
        return None


def _is_baseline_run(path: Path) -> bool:
    """A run dir of ``experiment=image_bmshj2018`` (by its export, else by its resolved config.yaml)."""
    if (path / "model.safetensors").is_file():
        return _embedded_codec_id(path / "model.safetensors") == CODEC_ID
    if (path / "config.yaml").is_file():
        from omegaconf import OmegaConf

        try:
            return OmegaConf.load(path / "config.yaml").model.codec.codec == CODEC_ID
        except Exception:  # noqa: BLE001 - another kind of run
            return False
    return False


def find_baselines(root: str | Path) -> list[LoadedBaseline]:
    """Every trained bmshj2018 model under ``root``, sorted by lambda: run dirs of ``codec train
    experiment=image_bmshj2018`` (export preferred, else ``checkpoints/last.ckpt``; runs with no
    weights yet are skipped) and loose exported ``.safetensors`` files."""
    root = Path(root)
    if not root.is_dir():
        raise ModelError(f"baseline folder not found: {root}")
    runs = [p for p in [root, *sorted(root.rglob("*"))] if p.is_dir() and _is_baseline_run(p)]
    found = [load_baseline(run) for run in runs
             if (run / "model.safetensors").is_file() or (run / "checkpoints" / "last.ckpt").is_file()]
    in_runs = {(run / "model.safetensors").resolve() for run in runs}
    for file in sorted(root.rglob("*.safetensors")):
        if file.resolve() not in in_runs and _embedded_codec_id(file) == CODEC_ID:
            found.append(load_baseline(file))
    return sorted(found, key=lambda b: float(b.config["lmbda"]))


# ----- real coding --------------------------------------------------------------------------------
@torch.no_grad()
def encode_image(net: nn.Module, image: Tensor) -> bytes:
    """``image [C, H, W]`` in [0, 1] (C = 1 or 3) -> bytes from CompressAI's ``compress()``."""
    channels, height, width = image.shape
    if channels not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got {channels}")
    if height > 0xFFFF or width > 0xFFFF:
        raise ValueError("image too large for the baseline stream header")
    rgb = image.expand(3, -1, -1) if channels == 1 else image
    out = net.compress(pad_to_multiple(rgb[None].float(), STRIDE))
    (y_string,), (z_string,) = out["strings"]
    return _HEADER.pack(height, width, channels, len(y_string)) + y_string + z_string


@torch.no_grad()
def decode_image(net: nn.Module, data: bytes) -> Tensor:
    """Inverse of :func:`encode_image`: ``[C, H, W]`` in [0, 1]."""
    if len(data) < _HEADER.size:
        raise ValueError("baseline stream too short")
    height, width, channels, y_len = _HEADER.unpack_from(data)
    body = data[_HEADER.size:]
    if y_len > len(body):
        raise ValueError("baseline stream truncated")
    z_shape = (-(-height // STRIDE), -(-width // STRIDE))
    x_hat = net.decompress([[body[:y_len]], [body[y_len:]]], z_shape)["x_hat"][0]
    x_hat = crop_to(x_hat, height, width).clamp(0, 1)
    return x_hat.mean(dim=0, keepdim=True) if channels == 1 else x_hat


__all__ = ["BMSHJ2018Baseline", "CODEC_ID", "LoadedBaseline", "ZOO_POINTS", "decode_image", "encode_image",
           "find_baselines", "load_baseline", "resize_table_buffers"]
