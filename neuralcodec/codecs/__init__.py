"""Codecs: transforms composed with a quantizer and an entropy model (audio, image, video)."""

from neuralcodec.codecs.registry import available_models, build_codec, load_codec, save_codec

__all__ = ["available_models", "build_codec", "load_codec", "save_codec"]
