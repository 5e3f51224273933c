"""NeRV-style video codec: a network fitted per video whose quantized weights are the bitstream.

* :mod:`.network` - embeddings + conv/PixelShuffle decoder (NeRV++ blocks), sizing for a target bpp.
* :mod:`.quant` - per-channel scalar quantization of weights (STE for quantization-aware fitting).
* :mod:`.weightcoding` - entropy coding of integer tensors under per-tensor fitted distributions.
* :mod:`.planes` - video planes for fitting and the network-output -> 8-bit frame mapping.
* :mod:`.fit` - the fitting loop.
* :mod:`.codec` - :class:`NervVideoCodec`, groups of frames, bitstream and files.
"""

from neuralcodec.codecs.video.nerv.codec import DEFAULT_CONFIG, NervVideoCodec

__all__ = ["DEFAULT_CONFIG", "NervVideoCodec"]
