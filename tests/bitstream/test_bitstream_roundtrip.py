"""Round trips through every source/destination kind, and atomic writing."""

from __future__ import annotations

import io
import math
import os

import pytest

from neuralcodec.bitstream import (
    FORMAT_VERSION,
    MAGIC,
    SUPPORTED_VERSIONS,
    BitstreamReader,
    BitstreamWriter,
    Modality,
    StreamHeader,
    bitstream_to_bytes,
    fingerprint_bytes,
    read_bitstream,
    scan_bitstream,
    write_bitstream,
)
from neuralcodec.bitstream.reader import _BODY_DECODERS
from neuralcodec.errors import BitstreamError


class NonSeekable(io.RawIOBase):
    """A pipe-like reader: no seek, no size, short reads."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:  # type: ignore[override]
        size = min(len(buffer), self._step, len(self._data) - self._pos)
        buffer[:size] = self._data[self._pos:self._pos + size]
        self._pos += size
        return size


CHUNK_SETS = {
    "no chunks": [],
    "one empty chunk": [b""],
    "many chunks": [bytes([i]) * i for i in range(200)],
    "large-ish chunk": [os.urandom(3 * 1024 * 1024 + 17), b"tail"],
}


@pytest.mark.parametrize("name", list(CHUNK_SETS))
def test_round_trip_bytes_and_scan(make_header, name):
    header = make_header()
    chunks = CHUNK_SETS[name]
    data = bitstream_to_bytes(header, chunks)
    assert data.startswith(MAGIC)
    got_header, got_chunks = read_bitstream(data)
    assert got_header == header
    assert got_chunks == chunks
    info = scan_bitstream(data)
    assert info.header == header
    assert info.num_chunks == len(chunks)
    assert info.payload_bytes == sum(len(c) for c in chunks)
    assert info.file_bytes == len(data)


@pytest.mark.parametrize("name", ["no chunks", "many chunks", "large-ish chunk"])
def test_round_trip_non_seekable(make_header, name):
    header = make_header()
    chunks = CHUNK_SETS[name]
    data = bitstream_to_bytes(header, chunks)
    assert read_bitstream(io.BufferedReader(NonSeekable(data))) == (header, chunks)
    info = scan_bitstream(NonSeekable(data, step=1000))
    assert (info.num_chunks, info.file_bytes) == (len(chunks), len(data))


def test_round_trip_path_streaming(tmp_path, make_header):
    header = make_header(modality=Modality.VIDEO, metadata={"width": 64, "height": 48, "fps_num": 25,
                                                            "fps_den": 1, "num_frames": 9})
    path = tmp_path / "clip.bin"
    with BitstreamWriter(path, header) as writer:
        for i in range(9):
            writer.write_chunk(bytes([i]) * (100 + i))
            assert not path.exists()  # appears only when the block ends
    assert writer.num_chunks == 9
    assert writer.bytes_written == path.stat().st_size
    assert writer.payload_bytes == sum(100 + i for i in range(9))
    with BitstreamReader(path) as reader:
        assert reader.header == header
        payloads = list(reader.chunks())
        assert list(reader.chunks()) == payloads  # seekable sources can be walked again
        assert reader.scan().num_chunks == 9
    assert payloads == [bytes([i]) * (100 + i) for i in range(9)]
    assert [p for p in BitstreamReader(str(path))] == payloads
    assert [tmp.name for tmp in tmp_path.iterdir()] == ["clip.bin"]


def test_write_bitstream_returns_size_and_accepts_buffers(tmp_path, make_header):
    header = make_header()
    chunks = [b"abc", bytearray(b"def"), memoryview(b"ghij")]
    size = write_bitstream(tmp_path / "x.bin", header, chunks)
    assert size == (tmp_path / "x.bin").stat().st_size
    assert read_bitstream(tmp_path / "x.bin")[1] == [b"abc", b"def", b"ghij"]
    buffer = io.BytesIO(b"prefix")
    buffer.seek(0, io.SEEK_END)
    write_bitstream(buffer, header, chunks)
    buffer.seek(6)
    assert read_bitstream(buffer) == (header, [b"abc", b"def", b"ghij"])


def test_every_metadata_type_and_unicode(make_header):
    metadata = {
        "i_max": 2**63 - 1,
        "i_min": -(2**63),
        "zero": 0,
        "f": 1.0 / 3.0,
        "f_inf": float("-inf"),
        "f_tiny": 5e-324,
        "s": "ünïcødé 音声 🎵",
        "s_empty": "",
        "s_max": "é" * 127,  # 254 bytes of UTF-8
        "b": bytes(range(256))[:255],
        "b_empty": b"",
    }
    header = make_header(codec_id="códec-音", model_id="模型 v1", entropy_model_id="", metadata=metadata)
    got = read_bitstream(bitstream_to_bytes(header, [b"x"]))[0]
    assert got == header
    assert dict(got.metadata) == metadata
    assert type(got.metadata["zero"]) is int and type(got.metadata["f"]) is float
    nan_header = make_header(metadata={"nan": float("nan")})
    assert math.isnan(read_bitstream(bitstream_to_bytes(nan_header, []))[0].metadata["nan"])


def test_metadata_is_normalized_and_encoding_canonical(make_header):
    np = pytest.importorskip("numpy")
    a = make_header(metadata={"b": np.int64(3), "a": np.float32(0.5)})
    b = make_header(metadata={"a": 0.5, "b": 3})
    assert a == b and hash(a) == hash(b)
    assert type(a.metadata["b"]) is int and type(a.metadata["a"]) is float
    assert list(a.metadata) == ["a", "b"]
    assert bitstream_to_bytes(a, [b"1"]) == bitstream_to_bytes(b, [b"1"])
    with pytest.raises(TypeError):
        a.metadata["c"] = 1  # type: ignore[index]


def test_modalities_and_versions(make_header):
    assert [int(m) for m in Modality] == [1, 2, 3]
    assert FORMAT_VERSION == max(SUPPORTED_VERSIONS)
    assert set(_BODY_DECODERS) == set(SUPPORTED_VERSIONS)
    for modality in (Modality.AUDIO, Modality.IMAGE, 3):
        header = make_header(modality=modality)
        assert isinstance(header.modality, Modality)
        assert read_bitstream(bitstream_to_bytes(header, []))[0].modality == Modality(int(modality))


def test_fingerprint_bytes():
    fp = fingerprint_bytes(b"ab", b"c")
    assert len(fp) == 16
    assert fp == fingerprint_bytes(bytearray(b"ab"), memoryview(b"c"))
    assert fp != fingerprint_bytes(b"a", b"bc")
    assert fp != fingerprint_bytes(b"abc")
    with pytest.raises(TypeError):
        fingerprint_bytes("text")  # type: ignore[arg-type]


def test_check_model(make_header):
    header = make_header()
    header.check_model("audio-test", "tiny-v1", fingerprint_bytes(b"weights", b"config"))
    other = fingerprint_bytes(b"other weights", b"config")
    with pytest.raises(BitstreamError, match=r"encoded with codec 'audio-test' .* but codec 'image-x' is loaded"):
        header.check_model("image-x", "tiny-v1", header.fingerprint)
    expected = (f"file was encoded with model 'tiny-v1' (fingerprint {header.fingerprint.hex()}) "
                f"but model 'big-v2' (fingerprint {other[:len(header.fingerprint)].hex()}) is loaded")
    with pytest.raises(BitstreamError) as excinfo:
        header.check_model("audio-test", "big-v2", other)
    assert str(excinfo.value) == expected
    with pytest.raises(BitstreamError, match="same name, different weights"):
        header.check_model("audio-test", "tiny-v1", other)


class Boom(Exception):
    pass


def test_exception_inside_with_leaves_nothing(tmp_path, make_header):
    path = tmp_path / "out.bin"
    with pytest.raises(Boom):
        with BitstreamWriter(path, make_header()) as writer:
            writer.write_chunk(b"partial data")
            raise Boom
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path, make_header):
    path = tmp_path / "out.bin"
    write_bitstream(path, make_header(), [b"old"])
    before = path.read_bytes()
    with pytest.raises(BitstreamError, match="chunk limit"):
        write_bitstream(path, make_header(), [b"new", bytes(256 * 1024 * 1024 + 1)])
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_bad_destination_touches_nothing(tmp_path, make_header):
    with pytest.raises(TypeError):
        with BitstreamWriter(42, make_header()):  # type: ignore[arg-type]
            pass
    with pytest.raises(Exception, match="output directory does not exist"):
        write_bitstream(tmp_path / "missing" / "out.bin", make_header(), [b"x"])
    assert list(tmp_path.iterdir()) == []


def test_interrupted_file_object_stream_is_detected_as_truncated(make_header):
    buffer = io.BytesIO()
    with pytest.raises(Boom):
        with BitstreamWriter(buffer, make_header()) as writer:
            writer.write_chunk(b"one")
            raise Boom
    with pytest.raises(BitstreamError, match="missing end marker"):
        read_bitstream(buffer.getvalue())


def test_writer_misuse(make_header):
    writer = BitstreamWriter(io.BytesIO(), make_header())
    with pytest.raises(RuntimeError):
        writer.write_chunk(b"x")
    with writer:
        writer.write_chunk(b"x")
    with pytest.raises(RuntimeError):
        writer.write_chunk(b"y")
    with pytest.raises(RuntimeError):
        with writer:
            pass
    with pytest.raises(TypeError):
        BitstreamWriter(io.BytesIO(), {"codec_id": "x"})  # type: ignore[arg-type]


def test_non_seekable_chunks_only_once(make_header):
    reader = BitstreamReader(NonSeekable(bitstream_to_bytes(make_header(), [b"a"])))
    assert list(reader.chunks()) == [b"a"]
    with pytest.raises(RuntimeError):
        reader.chunks()


def test_reader_does_not_close_caller_file(make_header):
    buffer = io.BytesIO(bitstream_to_bytes(make_header(), [b"a"]))
    with BitstreamReader(buffer) as reader:
        list(reader)
    assert not buffer.closed


def test_header_is_frozen(make_header):
    header = make_header()
    with pytest.raises(AttributeError):
        header.codec_id = "other"  # type: ignore[misc]
    assert isinstance(hash(header), int)
    assert header == StreamHeader(**{f: getattr(header, f) for f in header.__dataclass_fields__})
