"""Learned image codec: mean-scale hyperprior with variable rate (per-quality latent gains) in one model.

Reusable blocks for the video codecs' intra frames: :class:`AnalysisTransform`,
:class:`SynthesisTransform`, :class:`QualityGain`, padding helpers, and :class:`ImageCodec` itself.
"""

from neuralcodec.codecs.image.codec import DEFAULT_LAMBDAS, ImageCodec, ImageCodecOutput
from neuralcodec.codecs.image.gain import QualityGain, interpolate_lambdas, interpolate_levels
from neuralcodec.codecs.image.padding import crop_to, pad_to_multiple, padded_size
from neuralcodec.codecs.image.transforms import LATENT_STRIDE, STRIDE, AnalysisTransform, SynthesisTransform

__all__ = [
    "AnalysisTransform",
    "DEFAULT_LAMBDAS",
    "ImageCodec",
    "ImageCodecOutput",
    "LATENT_STRIDE",
    "QualityGain",
    "STRIDE",
    "SynthesisTransform",
    "crop_to",
    "interpolate_lambdas",
    "interpolate_levels",
    "pad_to_multiple",
    "padded_size",
]
