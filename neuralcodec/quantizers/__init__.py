"""Quantizers: channels-first latents ``[B, D, ...]`` <-> int64 codes ``[B, Q, ...]``.

Every quantizer implements :class:`Quantizer`: ``forward(z) -> QuantizerOutput(quantized, codes,
loss, metrics)`` for training, ``encode`` / ``decode`` for coding, and ``num_codebooks``,
``codebook_sizes``, ``bits_per_frame``, ``codebook_step`` (``encode(z, num_codebooks=k)`` takes its
multiples: 1, or the number of groups of a group-residual VQ). In eval mode ``decode(encode(z))`` equals
``forward(z).quantized`` bit for bit (after casting to ``z.dtype``).
"""

from neuralcodec.quantizers.base import SUPPORTED_DTYPES, Quantizer, QuantizerOutput
from neuralcodec.quantizers.codebook import Codebook
from neuralcodec.quantizers.fsq import FSQ, ResidualFSQ
from neuralcodec.quantizers.group import GroupResidualVQ
from neuralcodec.quantizers.registry import QUANTIZERS, build_quantizer
from neuralcodec.quantizers.residual import ResidualQuantizer, ResidualVQ
from neuralcodec.quantizers.vq import VectorQuantizer

__all__ = [
    "FSQ",
    "QUANTIZERS",
    "SUPPORTED_DTYPES",
    "Codebook",
    "GroupResidualVQ",
    "Quantizer",
    "QuantizerOutput",
    "ResidualFSQ",
    "ResidualQuantizer",
    "ResidualVQ",
    "VectorQuantizer",
    "build_quantizer",
]
