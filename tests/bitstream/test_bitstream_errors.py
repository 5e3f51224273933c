"""Every way a stream can be wrong gives a BitstreamError with a precise message.

The streams here are crafted byte by byte in the version-1 layout (version 2's framing has its
own crafted cases in ``test_bitstream_v2.py``).
"""

from __future__ import annotations

import io
import re
import struct
import tracemalloc
import zlib

import pytest

from neuralcodec.bitstream import Modality, StreamHeader, bitstream_to_bytes, read_bitstream, scan_bitstream
from neuralcodec.bitstream import layout
from neuralcodec.bitstream.header import encode_header_body
from neuralcodec.errors import BitstreamError, NeuralCodecError

from conftest import build_header


class NonSeekable(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        return self._stream.readinto(buffer)


def frame_header(body: bytes, version: int = 1) -> bytes:
    """Preamble + body + a correct header CRC (so only the body content is under test)."""
    head = layout.PREAMBLE.pack(layout.MAGIC, version, len(body)) + body
    return head + struct.pack("<I", zlib.crc32(head))


def raw_body(modality: int = 1, precision: int = 16, fingerprint: bytes = bytes(16),
             ids: tuple[bytes, bytes, bytes] = (b"codec", b"model", b"prior"), meta: bytes = b"\x00") -> bytes:
    out = struct.pack("<BB", modality, precision) + fingerprint
    for item in ids:
        out += struct.pack("<B", len(item)) + item
    return out + meta


@pytest.fixture
def make_header():
    """Version-1 headers only: the byte offsets below are those of the version-1 layout."""
    def make(**overrides):
        overrides.setdefault("version", 1)
        return build_header(**overrides)
    return make


READS = f"this build reads {min(layout.SUPPORTED_VERSIONS)}..{max(layout.SUPPORTED_VERSIONS)}"


def chunk(index: int, payload: bytes) -> bytes:
    return layout.CHUNK_PREFIX.pack(len(payload), layout.chunk_crc(index, payload)) + payload


def all_readers(data: bytes) -> list:
    """Read fully and scan, from bytes and from a non-seekable stream."""
    return [
        lambda: read_bitstream(data),
        lambda: scan_bitstream(data),
        lambda: read_bitstream(NonSeekable(data)),
        lambda: scan_bitstream(NonSeekable(data)),
    ]


def assert_fails(data: bytes, pattern: str, *, scan: bool = True) -> None:
    readers = all_readers(data) if scan else all_readers(data)[::2]
    for call in readers:
        with pytest.raises(BitstreamError, match=pattern):
            call()


@pytest.fixture
def valid(make_header) -> tuple[bytes, int]:
    """A valid stream with three chunks, and the offset where its chunks start."""
    header = make_header()
    head_size = layout.PREAMBLE.size + len(encode_header_body(header)) + 4
    return bitstream_to_bytes(header, [b"alpha", b"bravo", b"charlie!"]), head_size


# --- preamble and header ----------------------------------------------------------------------


def test_empty_and_bad_magic():
    assert_fails(b"", re.escape("not a neuralcodec file (empty)"))
    assert_fails(b"RIFF\x00\x00\x00\x00WAVEfmt ", re.escape("not a neuralcodec file (bad magic)"))
    assert_fails(b"\x89PNG\r\n\x1a\n" + bytes(30), re.escape("not a neuralcodec file (bad magic)"))
    assert_fails(b"x", re.escape("bad magic"))


def test_newline_translation_is_bad_magic(valid):
    data, _ = valid
    assert_fails(data.replace(b"\r\n", b"\n", 1), "bad magic")


@pytest.mark.parametrize("version", [0, 3, 99, 65535])
def test_unsupported_version(valid, version):
    data = bytearray(valid[0])
    struct.pack_into("<H", data, 8, version)
    message = f"unsupported format version {version} ({READS})"
    assert_fails(bytes(data), re.escape(message))
    with pytest.raises(BitstreamError) as excinfo:
        read_bitstream(bytes(data))
    assert ("written by a newer neuralcodec" in str(excinfo.value)) == (version > max(layout.SUPPORTED_VERSIONS))


def test_truncated_in_header(valid):
    data, head_size = valid
    for cut in range(1, head_size):
        assert_fails(data[:cut], "truncated in header")


def test_header_length_over_limit(valid):
    data = bytearray(valid[0])
    struct.pack_into("<I", data, 10, layout.MAX_HEADER_BYTES + 1)
    assert_fails(bytes(data), re.escape("header declares 65537 bytes, above the 65536-byte limit"))


def test_header_crc_mismatch(valid):
    data, head_size = valid
    for offset in (14, 20, head_size - 5, head_size - 1):
        corrupt = bytearray(data)
        corrupt[offset] ^= 0x40
        assert_fails(bytes(corrupt), re.escape("header CRC mismatch"))


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (raw_body(modality=9), r"unknown modality 9 \(this build knows 1=audio, 2=image, 3=video\)"),
        (raw_body(modality=0), r"unknown modality 0"),
        (raw_body(precision=0), r"coder_precision must be an integer in 1\.\.64"),
        (raw_body() + b"\x00\x00", r"malformed header: 2 unexpected bytes after the last field"),
        (raw_body()[:-1], r"malformed header: metadata count runs past the end of the header"),
        (raw_body()[:10], r"malformed header: fingerprint runs past the end of the header"),
        (raw_body(ids=(b"\xff\xfe", b"m", b"e")), r"malformed header: codec_id is not valid UTF-8"),
        (raw_body(ids=(b"", b"m", b"e")), r"invalid header: codec_id is empty"),
        (raw_body(ids=(b"c", b"a\x1b[31m", b"e")), r"invalid header: model_id .* control"),
        (raw_body(meta=b"\x41"), r"invalid header: 65 metadata entries \(the limit is 64\)"),
        (raw_body(meta=b"\x01\x01k\x07" + bytes(8)), r"malformed header: metadata 'k' has unknown type tag 7"),
        (raw_body(meta=b"\x01\x01k\x01" + bytes(4)), r"malformed header: metadata 'k' runs past the end"),
        (raw_body(meta=b"\x01\x01k\x03\x09abc"), r"malformed header: metadata 'k' runs past the end"),
        (raw_body(meta=b"\x02\x01k\x01" + bytes(8) + b"\x01k\x01" + bytes(8)),
         r"malformed header: metadata key 'k' is duplicated or out of order"),
        (raw_body(meta=b"\x02\x01k\x01" + bytes(8) + b"\x01a\x01" + bytes(8)),
         r"malformed header: metadata key 'a' is duplicated or out of order"),
        (raw_body(meta=b"\x01\x03a b\x01" + bytes(8)), r"invalid header: metadata key 'a b' must be"),
    ],
)
def test_malformed_header_body(body, pattern):
    data = frame_header(body) + layout.pack_trailer(0, 0)
    assert_fails(data, pattern)


def test_well_formed_crafted_body_is_accepted():
    body = raw_body(meta=b"\x01\x01k\x01" + struct.pack("<q", -5))
    header, chunks = read_bitstream(frame_header(body) + chunk(0, b"p") + layout.pack_trailer(1, 1))
    assert header.codec_id == "codec" and dict(header.metadata) == {"k": -5} and chunks == [b"p"]


# --- chunks and trailer -----------------------------------------------------------------------


def test_truncated_in_chunk(valid):
    data, head_size = valid
    first = head_size
    # inside chunk 0's prefix, inside chunk 0's payload, inside chunk 2's payload
    assert_fails(data[: first + 3], re.escape("truncated in chunk 0 (its length/CRC prefix is cut short)"))
    assert_fails(data[: first + 8 + 2], re.escape("truncated in chunk 0: it declares 5 bytes but only 2 remain"))
    third = first + 2 * 8 + 10
    assert_fails(data[: third + 8 + 7], re.escape("truncated in chunk 2: it declares 8 bytes but only 7 remain"))


def test_truncated_at_chunk_boundary_is_missing_end_marker(valid):
    data, head_size = valid
    boundaries = [head_size, head_size + 13, head_size + 26, head_size + 42]
    assert boundaries[-1] == len(data) - layout.TRAILER_BYTES
    for count, cut in enumerate(boundaries):
        assert_fails(data[:cut], re.escape(f"missing end marker: the file ends after {count} chunk(s)"))


def test_truncated_in_end_marker(valid):
    data, _ = valid
    for cut in range(1, layout.TRAILER_BYTES):
        pattern = "truncated in end marker" if cut >= 4 else "truncated in chunk 3"
        assert_fails(data[: len(data) - layout.TRAILER_BYTES + cut], pattern)


def test_crc_mismatch_in_chunk(valid):
    data, head_size = valid
    corrupt = bytearray(data)
    corrupt[head_size + 13 + 8 + 2] ^= 1  # a payload byte of chunk 1
    with pytest.raises(BitstreamError, match=re.escape("CRC mismatch in chunk 1")):
        read_bitstream(bytes(corrupt))
    info = scan_bitstream(bytes(corrupt))  # scanning does not read payloads
    assert info.num_chunks == 3


def test_reordered_chunks_fail_crc(make_header):
    head = bitstream_to_bytes(make_header(), [])[: -layout.TRAILER_BYTES]
    swapped = head + chunk(1, b"bbbb") + chunk(0, b"aaaa") + layout.pack_trailer(2, 8)
    assert_fails(swapped, re.escape("CRC mismatch in chunk 0"), scan=False)


def test_chunk_length_over_limit_allocates_nothing(valid):
    data, head_size = valid
    corrupt = bytearray(data)
    struct.pack_into("<I", corrupt, head_size, layout.MAX_CHUNK_BYTES + 1)
    pattern = re.escape(f"chunk 0 declares {layout.MAX_CHUNK_BYTES + 1} bytes, above the "
                        f"{layout.MAX_CHUNK_BYTES}-byte chunk limit")
    assert_fails(bytes(corrupt), pattern)


@pytest.mark.parametrize("source", ["bytes", "pipe", "file"])
def test_huge_declared_length_is_checked_before_allocating(tmp_path, valid, source):
    data, head_size = valid
    corrupt = bytearray(data)
    struct.pack_into("<I", corrupt, head_size, 200_000_000)
    blob = bytes(corrupt)
    path = tmp_path / "corrupt.bin"
    path.write_bytes(blob)
    src = {"bytes": blob, "pipe": NonSeekable(blob), "file": path}[source]
    tracemalloc.start()
    try:
        with pytest.raises(BitstreamError, match=r"truncated in chunk 0: it declares 200000000 bytes but only \d+"):
            read_bitstream(src)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def test_end_marker_corruption(valid):
    data, _ = valid
    corrupt = bytearray(data)
    corrupt[-1] ^= 0x80
    assert_fails(bytes(corrupt), re.escape("end marker CRC mismatch"))
    body = data[: -layout.TRAILER_BYTES]
    assert_fails(body + layout.pack_trailer(5, 18), re.escape("end marker records 5 chunk(s) but 3 were found"))
    assert_fails(body + layout.pack_trailer(3, 19), re.escape("end marker records 19 payload bytes but 18 were found"))


def test_bytes_after_end_marker(valid):
    data, _ = valid
    for call in (read_bitstream, scan_bitstream):
        with pytest.raises(BitstreamError, match=re.escape("4 unexpected byte(s) after the end marker")):
            call(data + b"junk")
    with pytest.raises(BitstreamError, match="unexpected bytes after the end marker"):
        read_bitstream(NonSeekable(data + b"junk"))
    with pytest.raises(BitstreamError, match="unexpected byte"):
        scan_bitstream(data + data)


# --- sources ----------------------------------------------------------------------------------


def test_missing_path_and_directory(tmp_path):
    missing = tmp_path / "nope.bin"
    for call in (read_bitstream, scan_bitstream):
        with pytest.raises(BitstreamError, match=re.escape(f"cannot open {missing}: No such file")):
            call(missing)
        with pytest.raises(NeuralCodecError, match=re.escape(str(tmp_path))):
            call(tmp_path)


def test_path_errors_name_the_file(tmp_path, valid):
    path = tmp_path / "cut.bin"
    path.write_bytes(valid[0][:-1])
    with pytest.raises(BitstreamError, match=re.escape(f"{path}: truncated in end marker")):
        read_bitstream(path)
    path.write_bytes(b"garbage!" * 4)
    with pytest.raises(BitstreamError, match=re.escape(f"{path}: not a neuralcodec file (bad magic)")):
        scan_bitstream(str(path))


def test_wrong_source_types(tmp_path, valid):
    with pytest.raises(TypeError):
        read_bitstream(12345)  # type: ignore[arg-type]
    path = tmp_path / "x.bin"
    path.write_bytes(valid[0])
    with open(path, encoding="latin-1") as text, pytest.raises(TypeError, match="binary mode"):
        read_bitstream(text)  # type: ignore[arg-type]


# --- header construction ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"modality": 7}, r"unknown modality 7 \(this build knows 1=audio, 2=image, 3=video\)"),
        ({"modality": "audio"}, r"modality must be an integer"),
        ({"codec_id": "x" * 256}, r"codec_id is 256 bytes of UTF-8 \(the limit is 255\)"),
        ({"model_id": ""}, r"model_id is empty"),
        ({"model_id": "line\nbreak"}, r"control or non-printable"),
        ({"entropy_model_id": 5}, r"entropy_model_id must be a str"),
        ({"codec_id": "\udc80"}, r"not encodable as UTF-8"),
        ({"fingerprint": b"short"}, r"fingerprint is 5 bytes \(it must be 16\)"),
        ({"fingerprint": "0" * 16}, r"fingerprint must be bytes"),
        ({"coder_precision": 0}, r"coder_precision must be an integer in 1\.\.64"),
        ({"coder_precision": 65}, r"coder_precision"),
        ({"coder_precision": True}, r"coder_precision"),
        ({"metadata": {f"k{i}": i for i in range(65)}}, r"65 metadata entries \(the limit is 64\)"),
        ({"metadata": {"": 1}}, r"metadata key '' must be 1\.\.64 characters"),
        ({"metadata": {"k" * 65: 1}}, r"must be 1\.\.64 characters"),
        ({"metadata": {"clé": 1}}, r"must be 1\.\.64 characters"),
        ({"metadata": {3: 1}}, r"metadata key 3 must be"),
        ({"metadata": {"flag": True}}, r"metadata 'flag' is a bool"),
        ({"metadata": {"n": 2**63}}, r"metadata 'n' = 9223372036854775808 does not fit in int64"),
        ({"metadata": {"s": "é" * 128}}, r"metadata 's' is 256 bytes of UTF-8"),
        ({"metadata": {"b": bytes(256)}}, r"metadata 'b' is 256 bytes \(the limit is 255\)"),
        ({"metadata": {"l": [1, 2]}}, r"metadata 'l' has unsupported type list"),
        ({"metadata": [("a", 1)]}, r"metadata must be a mapping"),
        ({"version": 3}, re.escape(f"unsupported format version 3 ({READS})")),
    ],
)
def test_invalid_header_fields(make_header, overrides, pattern):
    with pytest.raises(BitstreamError, match=pattern):
        make_header(**overrides)


def test_limits_are_inclusive(make_header):
    header = make_header(
        codec_id="c" * 255,
        metadata={f"k{i:02d}": "é" * 127 + "x" for i in range(64)},
        coder_precision=64,
    )
    header_bytes = bitstream_to_bytes(header, [])
    assert len(header_bytes) < layout.MAX_HEADER_BYTES
    assert read_bitstream(header_bytes)[0] == header
    minimal = StreamHeader(Modality.IMAGE, "c", "m", bytes(16), "", 1)
    assert minimal.metadata == {} and read_bitstream(bitstream_to_bytes(minimal, []))[0] == minimal
