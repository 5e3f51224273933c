"""neuralcodec: neural audio, image and video compression with real entropy coding.

Layers (each depends only on the ones above it):

    media        audio files, images, y4m video  <->  float tensors
    quantizers   latent  <->  integer codes (VQ, RVQ, GRVQ, FSQ)
    entropy      probability models + constriction coder: integer symbols <-> bytes
    bitstream    versioned container: header + CRC-checked chunks
    codecs       transforms composed with a quantizer and an entropy model
    train        Lightning modules, losses, discriminators, data modules
    cli          the ``codec`` command
"""

from neuralcodec.errors import BitstreamError, MediaError, NeuralCodecError

__version__ = "0.1.0"

__all__ = ["__version__", "NeuralCodecError", "BitstreamError", "MediaError", "load_codec"]


def __getattr__(name: str):
    # ``from neuralcodec import load_codec`` without importing torch for ``codec --help``.
    if name == "load_codec":
        from neuralcodec.codecs.registry import load_codec

        return load_codec
    raise AttributeError(f"module 'neuralcodec' has no attribute {name!r}")
