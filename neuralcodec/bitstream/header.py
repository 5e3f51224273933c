"""Stream header: what a decoder must know before the first chunk, and its byte encoding.

A :class:`StreamHeader` names the modality, the codec and model that wrote the stream (with a
fingerprint of the model's weights and configuration), the entropy model and coder precision,
and a small typed metadata map describing the signal. Construction validates every field
against the format limits, so an invalid header can neither be written nor parsed.
"""

from __future__ import annotations

import enum
import hashlib
import numbers
import re
import struct
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Union

from neuralcodec.bitstream import layout
from neuralcodec.errors import BitstreamError

#: A metadata value: int64, float64, short UTF-8 string or short byte string.
MetadataValue = Union[int, float, str, bytes]

_KEY_RE = re.compile(r"[A-Za-z0-9_.\-]{1,%d}" % layout.MAX_KEY_BYTES)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class Modality(enum.IntEnum):
    """Kind of signal in a stream (a u8 in the header; 4..255 are reserved for later kinds)."""

    AUDIO = 1
    IMAGE = 2
    VIDEO = 3

    @classmethod
    def parse(cls, value: object) -> "Modality":
        """The modality for ``value`` (an int or a Modality); :class:`BitstreamError` if unknown."""
        if isinstance(value, Modality):
            return value
        known = ", ".join(f"{m.value}={m.name.lower()}" for m in cls)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise BitstreamError(f"invalid header: modality must be an integer ({known}), not {value!r}")
        try:
            return cls(int(value))
        except ValueError:
            raise BitstreamError(f"unknown modality {int(value)} (this build knows {known})") from None


class _Tag(enum.IntEnum):
    """Type tag (u8) written before each metadata value."""

    INT64 = 1   # version 1 only: fixed 8-byte int64
    FLOAT64 = 2
    STR = 3
    BYTES = 4
    VARINT = 5  # version 2 only: zigzag LEB128 int64 (1 byte for 0..63)


_WELL_KNOWN_CODES = {key: code for code, key in enumerate(layout.WELL_KNOWN_KEYS, start=1)}


def fingerprint_bytes(*parts: bytes | bytearray | memoryview) -> bytes:
    """16-byte blake2b digest of ``parts`` (e.g. serialized weights, then config bytes).

    Each part is length-prefixed, so ``(b"ab", b"c")`` and ``(b"a", b"bc")`` differ.
    """
    digest = hashlib.blake2b(digest_size=layout.FINGERPRINT_BYTES, person=b"neuralcodec.fp")
    for part in parts:
        if not isinstance(part, (bytes, bytearray, memoryview)):
            raise TypeError(f"fingerprint parts must be bytes-like, not {type(part).__name__}")
        view = memoryview(part).cast("B")
        digest.update(struct.pack("<Q", view.nbytes))
        digest.update(view)
    return digest.digest()


def _check_text(name: str, value: object, *, allow_empty: bool) -> str:
    """An identifier field: printable text of at most MAX_STRING_BYTES bytes of UTF-8."""
    if not isinstance(value, str):
        raise BitstreamError(f"invalid header: {name} must be a str, not {type(value).__name__}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise BitstreamError(f"invalid header: {name} is not encodable as UTF-8") from None
    if size > layout.MAX_STRING_BYTES:
        raise BitstreamError(
            f"invalid header: {name} is {size} bytes of UTF-8 (the limit is {layout.MAX_STRING_BYTES})"
        )
    if not value and not allow_empty:
        raise BitstreamError(f"invalid header: {name} is empty")
    if not value.isprintable():
        raise BitstreamError(f"invalid header: {name} {value!r} contains control or non-printable characters")
    return value


def _check_metadata_value(key: str, value: object) -> MetadataValue:
    """Normalize one metadata value to int, float, str or bytes, enforcing the size limits."""
    if isinstance(value, bool):
        raise BitstreamError(f"invalid header: metadata {key!r} is a bool; store it as an int (0 or 1)")
    if isinstance(value, numbers.Integral):
        number = int(value)
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise BitstreamError(f"invalid header: metadata {key!r} = {number} does not fit in int64")
        return number
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise BitstreamError(f"invalid header: metadata {key!r} is not encodable as UTF-8") from None
        if size > layout.MAX_STRING_BYTES:
            raise BitstreamError(
                f"invalid header: metadata {key!r} is {size} bytes of UTF-8 (the limit is {layout.MAX_STRING_BYTES})"
            )
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if len(data) > layout.MAX_STRING_BYTES:
            raise BitstreamError(
                f"invalid header: metadata {key!r} is {len(data)} bytes (the limit is {layout.MAX_STRING_BYTES})"
            )
        return data
    raise BitstreamError(
        f"invalid header: metadata {key!r} has unsupported type {type(value).__name__} (use int, float, str or bytes)"
    )


def _check_metadata(metadata: object) -> Mapping[str, MetadataValue]:
    """Validated, key-sorted, read-only copy of a metadata mapping."""
    if not isinstance(metadata, Mapping):
        raise BitstreamError(f"invalid header: metadata must be a mapping, not {type(metadata).__name__}")
    if len(metadata) > layout.MAX_METADATA_ENTRIES:
        raise BitstreamError(
            f"invalid header: {len(metadata)} metadata entries (the limit is {layout.MAX_METADATA_ENTRIES})"
        )
    clean: dict[str, MetadataValue] = {}
    for key in metadata:
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise BitstreamError(
                f"invalid header: metadata key {key!r} must be 1..{layout.MAX_KEY_BYTES} characters "
                "from A-Z a-z 0-9 _ . -"
            )
    for key in sorted(metadata):
        clean[key] = _check_metadata_value(key, metadata[key])
    return MappingProxyType(clean)


@dataclass(frozen=True)
class StreamHeader:
    """Everything before the first chunk. Fields are validated on construction.

    ``fingerprint`` is the model's 16-byte :func:`fingerprint_bytes`; format version 2 keeps its
    first 8 bytes (enough to tell models apart; :meth:`check_model` compares that prefix).
    ``metadata`` describes the signal with a few typed values; conventional keys are
    ``sample_rate``/``channels``/``num_samples`` (audio), ``width``/``height``/``channels``/``quality``
    (images) and ``width``/``height``/``fps_num``/``fps_den``/``num_frames`` (video).
    """

    modality: Modality
    codec_id: str
    model_id: str
    fingerprint: bytes
    entropy_model_id: str
    coder_precision: int
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)
    version: int = layout.FORMAT_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise BitstreamError(f"invalid header: version must be an int, not {self.version!r}")
        if self.version not in layout.SUPPORTED_VERSIONS:
            raise BitstreamError(unsupported_version_message(self.version))
        object.__setattr__(self, "modality", Modality.parse(self.modality))
        _check_text("codec_id", self.codec_id, allow_empty=False)
        _check_text("model_id", self.model_id, allow_empty=False)
        _check_text("entropy_model_id", self.entropy_model_id, allow_empty=True)
        if not isinstance(self.fingerprint, (bytes, bytearray, memoryview)):
            raise BitstreamError(f"invalid header: fingerprint must be bytes, not {type(self.fingerprint).__name__}")
        fingerprint = bytes(self.fingerprint)
        if self.version >= 2 and len(fingerprint) == layout.FINGERPRINT_BYTES:
            fingerprint = fingerprint[: layout.FINGERPRINT_BYTES_V2]  # version 2 stores the first 8 bytes
        size = layout.FINGERPRINT_BYTES if self.version == 1 else layout.FINGERPRINT_BYTES_V2
        if len(fingerprint) != size:
            allowed = f"{size}" if self.version == 1 else f"{size} or {layout.FINGERPRINT_BYTES}"
            raise BitstreamError(f"invalid header: fingerprint is {len(fingerprint)} bytes (it must be {allowed})")
        object.__setattr__(self, "fingerprint", fingerprint)
        precision = self.coder_precision
        if isinstance(precision, bool) or not isinstance(precision, numbers.Integral) or not (
            layout.MIN_CODER_PRECISION <= int(precision) <= layout.MAX_CODER_PRECISION
        ):
            raise BitstreamError(
                f"invalid header: coder_precision must be an integer in "
                f"{layout.MIN_CODER_PRECISION}..{layout.MAX_CODER_PRECISION}, not {precision!r}"
            )
        object.__setattr__(self, "coder_precision", int(precision))
        object.__setattr__(self, "metadata", _check_metadata(self.metadata))

    def __hash__(self) -> int:
        return hash((self.version, self.modality, self.codec_id, self.model_id, self.fingerprint,
                     self.entropy_model_id, self.coder_precision, tuple(self.metadata.items())))

    def check_model(self, codec_id: str, model_id: str, fingerprint: bytes) -> None:
        """Raise :class:`BitstreamError` unless the loaded codec/model is the one that wrote the stream."""
        if codec_id != self.codec_id:
            raise BitstreamError(
                f"file was encoded with codec {self.codec_id!r} (model {self.model_id!r}, "
                f"fingerprint {self.fingerprint.hex()}) but codec {codec_id!r} is loaded"
            )
        loaded = bytes(fingerprint)[: len(self.fingerprint)]  # version 2 keeps a prefix of the fingerprint
        if model_id != self.model_id or loaded != self.fingerprint:
            message = (
                f"file was encoded with model {self.model_id!r} (fingerprint {self.fingerprint.hex()}) "
                f"but model {model_id!r} (fingerprint {loaded.hex()}) is loaded"
            )
            if model_id == self.model_id:
                message += " (same name, different weights or configuration)"
            raise BitstreamError(message)

    def check_entropy_model(self, entropy_model_id: str, coder_precision: int) -> None:
        """Raise :class:`BitstreamError` unless the loaded codec codes with the entropy model (its
        table/coder version) and precision that wrote the stream: same weights but another coder
        version would mis-decode."""
        if (entropy_model_id, int(coder_precision)) != (self.entropy_model_id, self.coder_precision):
            raise BitstreamError(
                f"file was coded with entropy model {self.entropy_model_id!r} ({self.coder_precision}-bit) but the "
                f"loaded codec codes with {entropy_model_id!r} ({coder_precision}-bit): the entropy coder changed "
                "since the file was written; decode it with the neuralcodec version that wrote it"
            )


def unsupported_version_message(version: int) -> str:
    """The one message for a version this build cannot read (or write)."""
    low, high = min(layout.SUPPORTED_VERSIONS), max(layout.SUPPORTED_VERSIONS)
    message = f"unsupported format version {version} (this build reads {low}..{high})"
    if version > high:
        message += "; the file was written by a newer neuralcodec"
    return message


# --- version 1 body encoding -----------------------------------------------------------------


def _pack_str8(data: bytes) -> bytes:
    return struct.pack("<B", len(data)) + data


def encode_header_body(header: StreamHeader) -> bytes:
    """The header body (between the preamble and the header CRC) in ``header.version``'s layout."""
    body = _encode_body(header)
    if len(body) > layout.MAX_HEADER_BYTES:  # cannot happen with the per-field limits; kept as a guard
        raise BitstreamError(f"header is {len(body)} bytes (the limit is {layout.MAX_HEADER_BYTES})")
    return body


def _encode_body(header: StreamHeader) -> bytes:
    """Both versions share the field order. Version 1: 16-byte fingerprint, keys spelled out, fixed
    int64. Version 2: 8-byte fingerprint, one-byte codes for the well-known metadata keys
    (:data:`~neuralcodec.bitstream.layout.WELL_KNOWN_KEYS`), zigzag-varint integers."""
    v1 = header.version == 1
    parts = [
        struct.pack("<BB", int(header.modality), header.coder_precision),
        header.fingerprint,
        _pack_str8(header.codec_id.encode("utf-8")),
        _pack_str8(header.model_id.encode("utf-8")),
        _pack_str8(header.entropy_model_id.encode("utf-8")),
        struct.pack("<B", len(header.metadata)),
    ]
    for key, value in header.metadata.items():  # already sorted by key
        code = 0 if v1 else _WELL_KNOWN_CODES.get(key, 0)
        spelled = _pack_str8(key.encode("ascii"))
        parts.append(spelled if v1 else struct.pack("<B", code) if code else b"\x00" + spelled)
        if isinstance(value, int):
            parts.append(struct.pack("<Bq", _Tag.INT64, value) if v1 else
                         struct.pack("<B", _Tag.VARINT) + layout.pack_varint(layout.zigzag(value)))
        elif isinstance(value, float):
            parts.append(struct.pack("<Bd", _Tag.FLOAT64, value))
        elif isinstance(value, str):
            parts.append(struct.pack("<B", _Tag.STR) + _pack_str8(value.encode("utf-8")))
        else:
            parts.append(struct.pack("<B", _Tag.BYTES) + _pack_str8(value))
    return b"".join(parts)


class _Cursor:
    """Reads fields from a header body, failing with the name of the field that runs out."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int, what: str) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise BitstreamError(f"malformed header: {what} runs past the end of the header")
        out = self.data[self.pos:end]
        self.pos = end
        return out

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))

    def varint(self, what: str) -> int:
        try:
            value, self.pos = layout.unpack_varint(self.data, self.pos)
        except IndexError:
            raise BitstreamError(f"malformed header: {what} runs past the end of the header") from None
        except ValueError as exc:
            raise BitstreamError(f"malformed header: {what} is not a valid varint ({exc})") from None
        return value

    def str8(self, what: str) -> str:
        (size,) = self.unpack("<B", f"length of {what}")
        raw = self.take(size, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BitstreamError(f"malformed header: {what} is not valid UTF-8") from None


def decode_header_body(body: bytes, version: int) -> StreamHeader:
    """Parse a version-1 or version-2 header body into a validated :class:`StreamHeader`."""
    cursor = _Cursor(body)
    modality, precision = cursor.unpack("<BB", "modality and coder precision")
    fingerprint = cursor.take(layout.FINGERPRINT_BYTES if version == 1 else layout.FINGERPRINT_BYTES_V2,
                              "fingerprint")
    codec_id = cursor.str8("codec_id")
    model_id = cursor.str8("model_id")
    entropy_model_id = cursor.str8("entropy_model_id")
    (count,) = cursor.unpack("<B", "metadata count")
    if count > layout.MAX_METADATA_ENTRIES:
        raise BitstreamError(
            f"invalid header: {count} metadata entries (the limit is {layout.MAX_METADATA_ENTRIES})"
        )
    metadata: dict[str, MetadataValue] = {}
    previous = ""
    for index in range(count):
        key = cursor.str8(f"metadata key {index}") if version == 1 else _key_v2(cursor, index)
        if key <= previous:
            raise BitstreamError(f"malformed header: metadata key {key!r} is duplicated or out of order")
        previous = key
        (tag,) = cursor.unpack("<B", f"type of metadata {key!r}")
        if tag == _Tag.INT64 and version == 1:
            metadata[key] = cursor.unpack("<q", f"metadata {key!r}")[0]
        elif tag == _Tag.VARINT and version >= 2:
            value = layout.unzigzag(cursor.varint(f"metadata {key!r}"))
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise BitstreamError(f"malformed header: metadata {key!r} does not fit in int64")
            metadata[key] = value
        elif tag == _Tag.FLOAT64:
            metadata[key] = cursor.unpack("<d", f"metadata {key!r}")[0]
        elif tag == _Tag.STR:
            metadata[key] = cursor.str8(f"metadata {key!r}")
        elif tag == _Tag.BYTES:
            (size,) = cursor.unpack("<B", f"length of metadata {key!r}")
            metadata[key] = cursor.take(size, f"metadata {key!r}")
        else:
            raise BitstreamError(f"malformed header: metadata {key!r} has unknown type tag {tag}")
    if cursor.pos != len(body):
        raise BitstreamError(f"malformed header: {len(body) - cursor.pos} unexpected bytes after the last field")
    return StreamHeader(
        modality=Modality.parse(modality),
        codec_id=codec_id,
        model_id=model_id,
        fingerprint=fingerprint,
        entropy_model_id=entropy_model_id,
        coder_precision=precision,
        metadata=metadata,
        version=version,
    )


def _key_v2(cursor: _Cursor, index: int) -> str:
    """A version-2 metadata key: a one-byte well-known code, or 0 followed by the key spelled out."""
    (code,) = cursor.unpack("<B", f"metadata key {index}")
    if code == 0:
        key = cursor.str8(f"metadata key {index}")
        if key in _WELL_KNOWN_CODES:
            raise BitstreamError(f"malformed header: well-known metadata key {key!r} is spelled out instead of coded")
        if not _KEY_RE.fullmatch(key):
            raise BitstreamError(f"malformed header: metadata key {key!r} has characters outside A-Z a-z 0-9 _ . -")
        return key
    if code > len(layout.WELL_KNOWN_KEYS):
        raise BitstreamError(f"malformed header: unknown metadata key code {code}")
    return layout.WELL_KNOWN_KEYS[code - 1]


__all__ = ["MetadataValue", "Modality", "StreamHeader", "fingerprint_bytes"]
