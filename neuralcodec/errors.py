"""Exception types shared by every layer.

Anything raised as a :class:`NeuralCodecError` is a user-facing problem (bad input, corrupt
file, wrong model) and is printed by the CLI as one clear line; anything else is a bug.
"""


class NeuralCodecError(Exception):
    """Base class for errors caused by the user's input rather than by a bug."""


class BitstreamError(NeuralCodecError):
    """A compressed file is malformed, truncated, corrupt, or belongs to another model."""


class MediaError(NeuralCodecError):
    """A media file (audio, image, video) cannot be read or written as asked."""


class ModelError(NeuralCodecError):
    """A model cannot be found, loaded or used with the given input."""


class UsageError(NeuralCodecError):
    """An option or argument is not valid for the chosen codec or model."""
