"""Name -> quantizer class registry, so configs can say ``name: rvq`` (Hydra ``_target_`` works too)."""

from __future__ import annotations

from typing import Any

from neuralcodec.quantizers.base import Quantizer
from neuralcodec.quantizers.fsq import FSQ, ResidualFSQ
from neuralcodec.quantizers.group import GroupResidualVQ
from neuralcodec.quantizers.residual import ResidualVQ
from neuralcodec.quantizers.vq import VectorQuantizer

QUANTIZERS: dict[str, type[Quantizer]] = {
    "vq": VectorQuantizer,
    "rvq": ResidualVQ,
    "grvq": GroupResidualVQ,
    "fsq": FSQ,
    "rfsq": ResidualFSQ,
}


def build_quantizer(name: str, **kwargs: Any) -> Quantizer:
    """Instantiate the quantizer registered as ``name`` (``vq``, ``rvq``, ``grvq``, ``fsq``, ``rfsq``)."""
    try:
        cls = QUANTIZERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown quantizer {name!r}; known: {sorted(QUANTIZERS)}") from None
    return cls(**kwargs)
