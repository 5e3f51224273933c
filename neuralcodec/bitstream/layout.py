"""Byte layout of the container: magic, version numbers, field structs and size limits.

Everything that fixes how bytes sit in a file lives here, so a layout change is one visible
edit (and must come with a ``FORMAT_VERSION`` bump, see ``docs/bitstream.md``). Fixed-width
integers are little-endian; version 2 adds unsigned LEB128 varints for lengths and metadata.
"""

from __future__ import annotations

import struct
import zlib

#: First 8 bytes of every file. ``\\x89`` catches 7-bit transfers, ``\\r\\n`` and ``\\n``
#: catch newline translation, ``\\x1a`` stops ``type`` on Windows (the PNG trick).
MAGIC = b"\x89NCB\r\n\x1a\n"

#: Version this build writes by default (a header may ask for an older supported version).
FORMAT_VERSION = 2
#: Versions this build reads and writes (old versions stay here while their code is kept).
SUPPORTED_VERSIONS: tuple[int, ...] = (1, 2)

# --- preamble: fixed for every version, so any build can read the version number ---------
#: magic (8 bytes), format version (u16), header body length (u32)
PREAMBLE = struct.Struct("<8sHI")
#: CRC32 that follows the header body; it covers preamble + body.
HEADER_CRC = struct.Struct("<I")

# --- version 1 -----------------------------------------------------------------------------
#: chunk prefix: payload length (u32), CRC32 (u32) of ``u32 index | u32 length | payload``
CHUNK_PREFIX = struct.Struct("<II")
#: what the chunk CRC is seeded with: chunk index and payload length
CHUNK_CRC_SEED = struct.Struct("<II")
#: a chunk-length value that can never be a real length: marks the end of the chunk sequence
END_MARKER = 0xFFFFFFFF
#: end trailer after the marker: chunk count (u32), total payload bytes (u64)
TRAILER_BODY = struct.Struct("<IQ")
#: CRC32 over ``marker | count | payload bytes``
TRAILER_CRC = struct.Struct("<I")
#: whole end trailer as it sits in the file: marker (u32), count (u32), payload bytes (u64), CRC (u32)
TRAILER_BYTES = 4 + TRAILER_BODY.size + TRAILER_CRC.size

# --- version 2: compact framing (about 110 bytes less than version 1 on a typical audio file) ---
#: fingerprint bytes stored by version 2 (the first 8 bytes of the 16-byte model fingerprint)
FINGERPRINT_BYTES_V2 = 8
#: chunk prefix: varint ``L + 1`` (0 is the end marker), then this CRC32 (same seed as version 1)
CHUNK_CRC_V2 = struct.Struct("<I")
#: the varint value that ends the chunk sequence in version 2
END_MARKER_V2 = 0
#: longest varint accepted anywhere (enough for any uint64)
MAX_VARINT_BYTES = 10
#: metadata keys written as one byte in version 2: code ``i + 1`` is ``WELL_KNOWN_KEYS[i]``.
#: This table is part of the version-2 format: entries are only ever appended with a version bump.
WELL_KNOWN_KEYS: tuple[str, ...] = (
    "sample_rate", "channels", "num_samples", "width", "height", "quality", "fps_num", "fps_den",
    "num_frames", "num_codebooks", "chunk_frames", "nominal_bps", "gop", "colorspace", "bit_depth",
    "chroma", "patch_size", "levels", "chunk_patches", "frames_per_chunk", "group_size", "target_bpp",
)

# --- limits --------------------------------------------------------------------------------
#: largest header body (bytes between the preamble and the header CRC)
MAX_HEADER_BYTES = 64 * 1024
#: largest chunk payload; codecs split their output into chunks below this size
MAX_CHUNK_BYTES = 256 * 1024 * 1024
#: most chunks one stream may hold (the count is a u32)
MAX_CHUNKS = 0xFFFFFFFF
#: codec id, model id, entropy-model id and string/bytes metadata values (u8 length prefix)
MAX_STRING_BYTES = 255
#: metadata keys: 1..64 ASCII characters from ``[A-Za-z0-9_.-]``
MAX_KEY_BYTES = 64
#: metadata entries per header
MAX_METADATA_ENTRIES = 64
#: model fingerprint size (blake2b-128 of weights + config)
FINGERPRINT_BYTES = 16
#: entropy-coder precision range, in bits
MIN_CODER_PRECISION = 1
MAX_CODER_PRECISION = 64


def chunk_crc(index: int, payload: bytes | bytearray | memoryview) -> int:
    """CRC32 of one chunk, seeded with its index and length so reordered or cut chunks fail."""
    seed = zlib.crc32(CHUNK_CRC_SEED.pack(index & 0xFFFFFFFF, len(payload)))
    return zlib.crc32(payload, seed)


def pack_varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, low bits first, high bit set on every byte but the last."""
    if value < 0:
        raise ValueError(f"varints are unsigned, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def unpack_varint(data: bytes | bytearray | memoryview, pos: int = 0) -> tuple[int, int]:
    """``(value, next position)`` of the varint at ``pos``.

    Raises ``IndexError`` if ``data`` ends inside the varint and ``ValueError`` if it is longer
    than :data:`MAX_VARINT_BYTES` or not canonical (a final ``0x00`` byte after the first), so
    every value has exactly one encoding.
    """
    value = shift = 0
    for count in range(MAX_VARINT_BYTES):
        byte = data[pos + count]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte == 0 and count > 0:
                raise ValueError("non-canonical varint (trailing zero byte)")
            return value, pos + count + 1
    raise ValueError(f"varint longer than {MAX_VARINT_BYTES} bytes")


def zigzag(value: int) -> int:
    """Signed -> unsigned so that small magnitudes stay short: 0, -1, 1, -2 ... -> 0, 1, 2, 3 ..."""
    return (value << 1) if value >= 0 else ((-value << 1) - 1)


def unzigzag(value: int) -> int:
    """Inverse of :func:`zigzag`."""
    return (value >> 1) if not value & 1 else -((value + 1) >> 1)


def pack_chunk_prefix(version: int, index: int, payload: bytes | bytearray | memoryview) -> bytes:
    """The bytes written before a chunk payload in format ``version``."""
    crc = chunk_crc(index, payload)
    size = memoryview(payload).nbytes
    if version == 1:
        return CHUNK_PREFIX.pack(size, crc)
    return pack_varint(size + 1) + CHUNK_CRC_V2.pack(crc)


def pack_trailer(num_chunks: int, payload_bytes: int, version: int = 1) -> bytes:
    """The end trailer: marker, chunk count, payload byte count and their CRC.

    Version 1: ``u32 0xFFFFFFFF | u32 count | u64 bytes | u32 CRC``. Version 2: ``varint 0 |
    varint count | varint bytes | u32 CRC`` (the CRC covers the bytes before it in both).
    """
    if version == 1:
        body = struct.pack("<I", END_MARKER) + TRAILER_BODY.pack(num_chunks, payload_bytes)
    else:
        body = pack_varint(END_MARKER_V2) + pack_varint(num_chunks) + pack_varint(payload_bytes)
    return body + TRAILER_CRC.pack(zlib.crc32(body))
