"""Lossless image coding with a probabilistic-circuit entropy model (codec id ``lossless-pc``).

Shipped models: ``pc-digits`` (8x8, 17 levels) and ``pc-gray16`` (16x16 patches, 8-bit gray, the
circuit over median-edge prediction residuals); refit them with
``python -m neuralcodec.codecs.lossless.train NAME``.
"""

from neuralcodec.codecs.lossless.codec import CircuitLosslessCodec

__all__ = ["CircuitLosslessCodec"]
