"""Speech and music codecs (WavTokenizer- and HiFi-Codec-style)."""

from neuralcodec.codecs.audio.codec import AudioCodec, AudioCodecOutput

__all__ = ["AudioCodec", "AudioCodecOutput"]
