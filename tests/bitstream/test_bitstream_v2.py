"""Format version 2: compact framing (varints, coded metadata keys, 8-byte fingerprint).

Crafted byte-level cases for the parts of the layout that version 2 changed; everything the two
versions share is covered, for both versions, by the round-trip, golden and fuzz tests.
"""

from __future__ import annotations

import re
import struct
import zlib

import pytest

from neuralcodec.bitstream import Modality, StreamHeader, bitstream_to_bytes, fingerprint_bytes, read_bitstream
from neuralcodec.bitstream import layout, scan_bitstream
from neuralcodec.bitstream.header import encode_header_body
from neuralcodec.errors import BitstreamError

from conftest import build_header

AUDIO_META = {"sample_rate": 22050, "channels": 1, "num_samples": 113_318, "num_codebooks": 3,
              "chunk_frames": 500, "nominal_bps": 1500}


def v2(**overrides) -> StreamHeader:
    overrides.setdefault("version", 2)
    return build_header(**overrides)


def frame(body: bytes) -> bytes:
    head = layout.PREAMBLE.pack(layout.MAGIC, 2, len(body)) + body
    return head + struct.pack("<I", zlib.crc32(head))


def body_v2(meta: bytes) -> bytes:
    """A version-2 header body with the given metadata section (count byte included)."""
    ids = b"".join(bytes([len(x)]) + x for x in (b"codec", b"model", b"prior"))
    return bytes([1, 16]) + bytes(8) + ids + meta


def trailer(count: int, total: int) -> bytes:
    return layout.pack_trailer(count, total, 2)


def fails(data: bytes, pattern: str) -> None:
    for call in (read_bitstream, scan_bitstream):
        with pytest.raises(BitstreamError, match=pattern):
            call(data)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31, 2**63 - 1, 2**64 - 1])
def test_varint_round_trip(value):
    data = layout.pack_varint(value)
    assert layout.unpack_varint(data) == (value, len(data))
    assert len(data) == max(1, -(-value.bit_length() // 7))


@pytest.mark.parametrize("value", [0, 1, -1, 63, -64, 64, 2**63 - 1, -(2**63)])
def test_zigzag_round_trip(value):
    assert layout.unzigzag(layout.zigzag(value)) == value
    assert layout.zigzag(value) >= 0


def test_varint_rejects_non_canonical_and_overlong():
    with pytest.raises(ValueError, match="non-canonical"):
        layout.unpack_varint(b"\x81\x00")
    with pytest.raises(ValueError, match="longer than 10"):
        layout.unpack_varint(b"\xff" * 11)
    with pytest.raises(IndexError):
        layout.unpack_varint(b"\x80")
    with pytest.raises(ValueError):
        layout.pack_varint(-1)


def test_v2_is_much_smaller_than_v1_for_an_audio_file():
    """The point of version 2: container overhead on a one-chunk audio file."""
    fp = fingerprint_bytes(b"w", b"c")
    sizes = {}
    for version in (1, 2):
        header = StreamHeader(Modality.AUDIO, "audio", "speech", fp, "token-prior/causal/tables-v1", 24,
                              AUDIO_META, version=version)
        sizes[version] = len(bitstream_to_bytes(header, [bytes(900)])) - 900
    assert sizes[1] - sizes[2] >= 100, sizes
    assert sizes[2] <= 120, sizes


def test_fingerprint_is_kept_as_an_8_byte_prefix():
    fp = fingerprint_bytes(b"weights", b"config")
    header = v2(fingerprint=fp)
    assert header.fingerprint == fp[:8]
    assert read_bitstream(bitstream_to_bytes(header, []))[0].fingerprint == fp[:8]
    header.check_model("audio-test", "tiny-v1", fp)  # the full fingerprint of the loaded model matches
    with pytest.raises(BitstreamError, match="same name, different weights"):
        header.check_model("audio-test", "tiny-v1", fingerprint_bytes(b"other", b"config"))
    with pytest.raises(BitstreamError, match=re.escape("fingerprint is 5 bytes (it must be 8 or 16)")):
        v2(fingerprint=b"12345")


def test_metadata_keys_are_coded_or_spelled():
    header = v2(metadata={"sample_rate": 16000, "my_key": -5, "zeta": "z"})
    body = encode_header_body(header)
    assert b"sample_rate" not in body and b"my_key" in body
    assert read_bitstream(bitstream_to_bytes(header, []))[0].metadata == header.metadata


def test_extreme_ints_and_every_type():
    meta = {"a": -(2**63), "b": 2**63 - 1, "c": 0.25, "d": "text", "e": b"\x00\xff"}
    header = v2(metadata=meta)
    assert dict(read_bitstream(bitstream_to_bytes(header, []))[0].metadata) == meta


@pytest.mark.parametrize(
    "meta, pattern",
    [
        (b"\x01\x00\x0bsample_rate\x05\x02", "well-known metadata key 'sample_rate' is spelled out"),
        (b"\x01\xfa\x05\x02", "unknown metadata key code 250"),
        (b"\x01\x01\x01" + bytes(8), "unknown type tag 1"),           # int64 is version 1 only
        (b"\x01\x01\x05\x80\x00", r"not a valid varint \(non-canonical"),
        (b"\x01\x01\x05\x80", "runs past the end of the header"),
        (b"\x01\x01\x05" + b"\xff" * 9 + b"\x7f", "does not fit in int64"),
        (b"\x02\x01\x05\x02\x02\x05\x02", "duplicated or out of order"),
        (b"\x01\x00\x03a b\x05\x02", "has characters outside"),
    ],
)
def test_malformed_v2_metadata(meta, pattern):
    fails(frame(body_v2(meta)) + trailer(0, 0), pattern)


def test_v2_chunks_and_trailer_errors():
    head = frame(body_v2(b"\x00"))
    payload = b"hello"
    good_chunk = layout.pack_chunk_prefix(2, 0, payload) + payload
    assert read_bitstream(head + good_chunk + trailer(1, 5))[1] == [payload]
    fails(head + good_chunk, re.escape("missing end marker: the file ends after 1 chunk(s)"))
    fails(head + good_chunk + trailer(2, 5), re.escape("records 2 chunk(s) but 1 were found"))
    fails(head + good_chunk + trailer(1, 6), re.escape("records 6 payload bytes but 5 were found"))
    fails(head + good_chunk + trailer(1, 5) + b"x", "unexpected byte")
    bad_trailer = bytearray(trailer(1, 5))
    bad_trailer[-1] ^= 1
    fails(head + good_chunk + bytes(bad_trailer), "end marker CRC mismatch")
    # a non-canonical length (6 + 1 spelled in two bytes) and a length above the chunk limit
    crc = struct.pack("<I", layout.chunk_crc(0, payload))
    fails(head + b"\x86\x00" + crc + payload + trailer(1, 5), "chunk 0 length is not a valid varint")
    huge = layout.pack_varint(layout.MAX_CHUNK_BYTES + 2)
    fails(head + huge + crc + trailer(1, 5), "above the 268435456-byte chunk limit")
    fails(head + b"\xff" * 11, "not a valid varint")
    damaged = bytearray(good_chunk)
    damaged[-1] ^= 0x20
    with pytest.raises(BitstreamError, match="CRC mismatch in chunk 0"):
        read_bitstream(head + bytes(damaged) + trailer(1, 5))


def test_every_v2_truncation_is_detected():
    header = v2(metadata=AUDIO_META)
    data = bitstream_to_bytes(header, [b"first payload", b"", bytes(300)])
    for cut in range(len(data)):
        for call in (read_bitstream, scan_bitstream):
            with pytest.raises(BitstreamError):
                call(data[:cut])
