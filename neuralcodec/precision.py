"""Mixed-precision boundary shared by every layer: where autocast must not reach.

Trainers may run the transforms in bf16/fp16 (``trainer.precision=bf16-mixed``); quantizer
distances and code indices, entropy-model probabilities, rounding and code lengths must stay float32:
a bf16 latent of magnitude 20 has a step of 0.125, so its rounding residual, likelihoods and nearest
codeword would be meaningless. Wrap such regions in :func:`full_precision` and cast their inputs with
``.float()`` inside.
"""

from __future__ import annotations

import contextlib

import torch


def full_precision(where: torch.Tensor | torch.device) -> contextlib.AbstractContextManager:
    """Context in which autocast is off on the device of ``where`` (a tensor or a device)."""
    device = where.device if isinstance(where, torch.Tensor) else torch.device(where)
    return torch.autocast(device_type=device.type, enabled=False)


__all__ = ["full_precision"]
