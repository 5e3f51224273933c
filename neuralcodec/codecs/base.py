"""The codec contract shared by audio, image and video codecs.

A codec is an ``nn.Module`` that owns its transforms, quantizer and entropy model, and knows how
to turn a signal into container chunks and back. Bytes on disk are written by
:mod:`neuralcodec.bitstream`; codecs only produce/consume chunk payloads and header metadata.
"""

from __future__ import annotations

import abc
import copy
import hashlib
import json
from typing import Any, ClassVar, Iterable, Iterator, Mapping

import torch
from torch import nn

from neuralcodec.bitstream import Modality, StreamHeader

Metadata = dict[str, int | float | str | bytes]


def config_hash_bytes(config: Mapping[str, Any]) -> bytes:
    """Canonical JSON encoding of a config (sorted keys), the form hashed into fingerprints."""
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


class Codec(nn.Module, abc.ABC):
    """Base class: a trainable transform + quantizer/entropy model with a compress/decompress pair.

    Subclasses set ``modality`` and ``codec_id`` (the registry key written in the container) and
    are constructed from a plain, JSON-serialisable ``config`` dict that is stored with the weights,
    so a model rebuilds from its file alone.
    """

    modality: ClassVar[Modality]
    codec_id: ClassVar[str]
    #: Optional entropy models a codec may carry besides its own (config key == submodule name).
    #: They are left out of :meth:`fingerprint` (adding one to a shipped model keeps the files it
    #: wrote decodable) and identified instead by their own fingerprint inside their entropy-model id.
    optional_entropy_models: ClassVar[tuple[str, ...]] = ()
    #: entropy-model id prefix -> name, for the optional models (to explain a file this model cannot decode)
    optional_entropy_model_ids: ClassVar[dict[str, str]] = {}

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.config: dict[str, Any] = copy.deepcopy(dict(config))
        self.model_id: str = str(self.config.get("name", self.codec_id))
        self._fingerprint: bytes | None = None
        self._entropy_model: str | None = None  # None: the default (first of entropy_models)

    # ----- identity -------------------------------------------------------------------------
    def fingerprint(self) -> bytes:
        """16-byte BLAKE2b hash of the config and every tensor in the state dict.

        Optional entropy models (:attr:`optional_entropy_models`: their config entries and their
        tensors) are not hashed. Cached after the first call in eval mode; any training step or
        ``load_state_dict`` clears it.
        """
        if self._fingerprint is not None and not self.training:
            return self._fingerprint
        optional = self.optional_entropy_models
        digest = hashlib.blake2b(digest_size=16)
        digest.update(config_hash_bytes({k: v for k, v in self.config.items() if k not in optional}))
        for name, tensor in sorted(self.state_dict().items()):
            if name.split(".", 1)[0] in optional:
                continue
            t = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(name.encode())
            digest.update(str(t.dtype).encode())
            digest.update(str(tuple(t.shape)).encode())
            digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        value = digest.digest()
        if not self.training:
            self._fingerprint = value
        return value

    def train(self, mode: bool = True) -> "Codec":
        self._fingerprint = None
        return super().train(mode)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        self._fingerprint = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ----- coding ---------------------------------------------------------------------------
    def freeze_entropy_models(self) -> "Codec":
        """Turn every learned density into the integer tables the coder uses (before export/coding).

        The tables are buffers, so they are saved with the weights and enter the fingerprint.
        """
        from neuralcodec.entropy import EntropyModel

        for module in self.modules():
            if isinstance(module, EntropyModel):
                module.freeze()
        self._fingerprint = None
        return self

    @property
    @abc.abstractmethod
    def entropy_model_id(self) -> str:
        """Identifier of the entropy model/table version written in the container header."""

    @property
    @abc.abstractmethod
    def coder_precision(self) -> int:
        """Bits of probability precision used by the arithmetic coder."""

    @property
    def entropy_models(self) -> dict[str, str]:
        """The entropy models this codec can code with: name -> entropy-model id, the default first.
        Codecs with a single entropy model have ``{"default": entropy_model_id}``."""
        return {"default": self.entropy_model_id}

    @property
    def entropy_model(self) -> str:
        """Name of the entropy model that codes now (see :meth:`select_entropy_model`)."""
        return self._entropy_model or next(iter(self.entropy_models))

    def select_entropy_model(self, name: str | None) -> "Codec":
        """Code (and write headers) with the entropy model ``name`` from now on; ``None`` or
        ``"default"`` selects the default. :class:`UsageError` if this model does not carry it."""
        from neuralcodec.errors import UsageError

        models = self.entropy_models
        if name is None or name == "default":
            self._entropy_model = None
        elif name in models:
            self._entropy_model = name
        else:
            raise UsageError(f"model {self.model_id!r} carries no entropy model {name!r} "
                             f"(it has: {', '.join(models)})")
        return self

    def select_entropy_model_for(self, header: StreamHeader) -> "Codec":
        """Select the entropy model that coded a stream, by the header's entropy-model id.

        A file coded with an optional entropy model (:attr:`optional_entropy_model_ids`) that this
        model does not carry, or carries in another version, raises :class:`BitstreamError`; any
        other unknown id leaves the default selected for :meth:`StreamHeader.check_entropy_model`
        to report."""
        from neuralcodec.errors import BitstreamError

        models = self.entropy_models
        for name, model_id in models.items():
            if model_id == header.entropy_model_id:
                return self.select_entropy_model(name)
        self.select_entropy_model(None)
        for prefix, name in self.optional_entropy_model_ids.items():
            if header.entropy_model_id.startswith(prefix):
                message = f"file was coded with the {name!r} entropy model {header.entropy_model_id!r}, "
                if name in models:
                    message += f"but model {self.model_id!r} carries another one ({models[name]!r})"
                else:
                    message += (f"which model {self.model_id!r} does not carry (it has: {', '.join(models)}); "
                                "pass --model with the model file that wrote it")
                raise BitstreamError(message)
        return self

    def stream_header(self, metadata: Mapping[str, Any]) -> StreamHeader:
        """The container header ``codec encode`` writes for ``metadata`` (also used to measure file sizes)."""
        return StreamHeader(modality=self.modality, codec_id=self.codec_id, model_id=self.model_id,
                            fingerprint=self.fingerprint(), entropy_model_id=self.entropy_model_id,
                            coder_precision=self.coder_precision, metadata=dict(metadata))

    @abc.abstractmethod
    def compress(self, x: Any, **options: Any) -> tuple[Metadata, Iterator[bytes]]:
        """Signal -> (header metadata, iterator of chunk payloads). Chunks are produced lazily."""

    @abc.abstractmethod
    def decompress(self, metadata: Mapping[str, Any], chunks: Iterable[bytes]) -> Any:
        """Inverse of :meth:`compress` given the header metadata and the chunk payloads."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Codec":
        return cls(config)

    # ----- file-level hooks used by `codec encode` / `codec decode` -----------------------------
    #: lower-case input file extensions this codec family reads (used to pick a default model)
    input_extensions: ClassVar[tuple[str, ...]] = ()

    def compress_file(self, path: Any, **options: Any) -> tuple[Metadata, Iterator[bytes]]:
        """Read a media file and compress it; ``options`` are the CLI's (``None`` = not given).

        Codecs must reject options they do not support with a clear error rather than ignore them.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot read files")

    def decompress_to_file(self, metadata: Mapping[str, Any], chunks: Iterable[bytes], path: Any,
                           **options: Any) -> None:
        """Decode chunks and write the media file atomically (nothing is left on error)."""
        raise NotImplementedError(f"{type(self).__name__} cannot write files")
