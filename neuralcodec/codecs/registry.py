"""Codec classes by id, shipped models by name, and the exported-model file format.

An exported model is one ``.safetensors`` file: the weights, plus the codec config as JSON in the
safetensors metadata (key ``neuralcodec_config``), so it rebuilds from the file alone. Shipped
models live in ``neuralcodec/pretrained/<name>.safetensors`` next to ``<name>.md`` (model card).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Mapping

import torch

from neuralcodec.errors import ModelError

#: codec id (``config["codec"]``, also written in the container header) -> "module:Class"
CODEC_CLASSES: dict[str, str] = {
    "audio": "neuralcodec.codecs.audio.codec:AudioCodec",
    "image": "neuralcodec.codecs.image.codec:ImageCodec",
    "video-conditional": "neuralcodec.codecs.video.conditional:ConditionalVideoCodec",
    "video-nerv": "neuralcodec.codecs.video.nerv:NervVideoCodec",
    "lossless-pc": "neuralcodec.codecs.lossless.codec:CircuitLosslessCodec",
}

#: models that are a config and no weights (fitted per input, e.g. NeRV): name -> config
CONFIG_ONLY_MODELS: dict[str, dict[str, Any]] = {
    "nerv": {"codec": "video-nerv", "name": "nerv"},
}

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
CONFIG_KEY = "neuralcodec_config"
FORMAT_KEY = "neuralcodec_format"
EXPORT_FORMAT = "1"


def codec_class(codec_id: str):
    """The class registered for ``codec_id``."""
    try:
        module_name, class_name = CODEC_CLASSES[codec_id].split(":")
    except KeyError:
        raise ModelError(f"unknown codec {codec_id!r} (known: {', '.join(sorted(CODEC_CLASSES))})") from None
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"codec {codec_id!r} is not available in this build ({exc})") from exc


def build_codec(config: Mapping[str, Any]):
    """Instantiate an untrained codec from its config (``config["codec"]`` picks the class)."""
    config = dict(config)
    if "codec" not in config:
        raise ModelError("codec config has no 'codec' key naming the codec class")
    return codec_class(str(config["codec"])).from_config(config)


def available_models() -> list[str]:
    """Names of the models shipped inside the package."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.safetensors"))


def save_codec(codec, path: str | Path, float_dtype: torch.dtype | None = None) -> Path:
    """Export weights + config to one ``.safetensors`` file (atomically).

    ``float_dtype=torch.float16`` stores floating-point weights at half size (shipped models: the
    40 MB budget); they are cast back to the model's dtype on load. Integer entropy tables are
    always stored exactly. A model's fingerprint is that of the loaded file, so code with a loaded
    model, not with the in-memory one that was exported.
    """
    from safetensors.torch import save_file

    from neuralcodec.fileio import atomic_path

    path = Path(path)
    state = {}
    for key, value in codec.state_dict().items():
        value = value.detach().cpu().contiguous()
        if float_dtype is not None and value.is_floating_point():
            value = value.to(float_dtype)
        state[key] = value
    metadata = {CONFIG_KEY: json.dumps(codec.config, sort_keys=True), FORMAT_KEY: EXPORT_FORMAT}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return path


def load_codec(name_or_path: str | Path, device: str | torch.device = "cpu"):
    """Load a shipped model by name (``"speech"``) or an exported ``.safetensors`` file, in eval mode.

    Names in :data:`CONFIG_ONLY_MODELS` build a weightless codec from its config (``"nerv"``).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    candidate = Path(name_or_path)
    if str(name_or_path) in CONFIG_ONLY_MODELS and not candidate.exists():
        return build_codec(CONFIG_ONLY_MODELS[str(name_or_path)]).to(device).eval()
    if not candidate.suffix and not candidate.exists():
        candidate = PRETRAINED_DIR / f"{name_or_path}.safetensors"
        if not candidate.is_file():
            known = ", ".join(available_models()) or "none"
            raise ModelError(f"no shipped model named {name_or_path!r} (shipped: {known}); pass a .safetensors path")
    if not candidate.is_file():
        raise ModelError(f"model file not found: {candidate}")
    try:
        with safe_open(str(candidate), framework="pt") as handle:
            meta = handle.metadata() or {}
        state = load_file(str(candidate))
    except Exception as exc:
        raise ModelError(f"cannot read model file {candidate}: {exc}") from exc
    if CONFIG_KEY not in meta:
        raise ModelError(f"{candidate} is not a neuralcodec model (no embedded config)")
    if meta.get(FORMAT_KEY) != EXPORT_FORMAT:
        raise ModelError(f"{candidate} uses model file format {meta.get(FORMAT_KEY)!r}; this build reads {EXPORT_FORMAT}")
    codec = build_codec(json.loads(meta[CONFIG_KEY]))
    missing, unexpected = codec.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(f"{candidate} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return codec.to(device).eval()
