"""Byte layout of the container: magic, version numbers, field structs and size limits.

Everything that fixes how bytes sit in a file lives here, so a layout change is one visible
edit (and must come with a ``FORMAT_VERSION`` bump, see ``docs/bitstream.md``). All integers
are little-endian and fixed-width.
"""

from __future__ import annotations

import struct
import zlib

#: First 8 bytes of every file. ``\\x89`` catches 7-bit transfers, ``\\r\\n`` and ``\\n``
#: catch newline translation, ``\\x1a`` stops ``type`` on Windows (the PNG trick).
MAGIC = b"\x89NCB\r\n\x1a\n"

#: Version this build writes.
FORMAT_VERSION = 1
#: Versions this build reads (old versions stay here while their readers are kept).
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

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


def pack_trailer(num_chunks: int, payload_bytes: int) -> bytes:
    """The end trailer: marker, chunk count, payload byte count and their CRC."""
    body = struct.pack("<I", END_MARKER) + TRAILER_BODY.pack(num_chunks, payload_bytes)
    return body + TRAILER_CRC.pack(zlib.crc32(body))
