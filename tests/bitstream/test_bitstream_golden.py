"""Committed golden streams still decode to the expected content, byte for byte.

If this fails after a change to ``neuralcodec/bitstream``, the on-disk format changed: bump
``FORMAT_VERSION``, keep a reader for the old version, and add new golden files (see
``docs/bitstream.md``). Never regenerate the existing files to make this pass.
"""

from __future__ import annotations

import importlib.util
import re
import struct
import zlib
from pathlib import Path

import pytest

from neuralcodec.bitstream import (
    FORMAT_VERSION,
    MAGIC,
    SUPPORTED_VERSIONS,
    BitstreamReader,
    bitstream_to_bytes,
    read_bitstream,
    scan_bitstream,
)
from neuralcodec.errors import BitstreamError

HERE = Path(__file__).resolve().parent
GOLDEN_DIR = HERE.parent / "data" / "bitstream"


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_bitstream_golden", HERE / "make_bitstream_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


golden = _load_generator()
CASES = golden.golden_cases()


def test_golden_files_are_committed():
    expected = set(CASES) | {golden.FUTURE_FILE}
    present = {p.name for p in GOLDEN_DIR.glob("*.bin")}
    assert expected <= present, f"missing golden files: {sorted(expected - present)}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_decodes(name):
    header, chunks = CASES[name]
    path = GOLDEN_DIR / name
    got_header, got_chunks = read_bitstream(path)
    assert got_header == header
    assert got_chunks == chunks
    assert got_header.version == int(name.rsplit("_v", 1)[1].split(".")[0])
    info = scan_bitstream(path)
    assert (info.num_chunks, info.payload_bytes, info.file_bytes) == (
        len(chunks), sum(map(len, chunks)), path.stat().st_size)


@pytest.mark.parametrize("name", sorted(CASES))
def test_writer_still_produces_golden_bytes(name):
    header, chunks = CASES[name]
    assert bitstream_to_bytes(header, chunks) == (GOLDEN_DIR / name).read_bytes()


def test_newest_version_has_golden_files():
    assert FORMAT_VERSION in golden.GOLDEN_VERSIONS


@pytest.mark.parametrize("version", golden.GOLDEN_VERSIONS)
def test_golden_header_fields(version):
    header = read_bitstream(GOLDEN_DIR / f"image_v{version}.bin")[0]
    assert header.modality.name == "IMAGE"
    assert header.metadata["note"] == "naïve café — 音声 ✓"
    assert header.metadata["pad"] == b"\x00\x10"
    assert header.metadata["gamma"] == -2.2e-3
    video = read_bitstream(GOLDEN_DIR / f"video_v{version}.bin")[0]
    assert video.metadata["big"] == -(2**63) and video.entropy_model_id == ""


def test_future_version_is_rejected_clearly():
    path = GOLDEN_DIR / golden.FUTURE_FILE
    message = (f"unsupported format version {golden.FUTURE_VERSION} "
               f"(this build reads {min(SUPPORTED_VERSIONS)}..{max(SUPPORTED_VERSIONS)}); "
               "the file was written by a newer neuralcodec")
    for call in (read_bitstream, scan_bitstream, BitstreamReader):
        with pytest.raises(BitstreamError, match=re.escape(message)):
            call(path)
    assert golden.future_version_bytes() == path.read_bytes()
    # with the version put back (and the header CRC fixed) it is the audio stream: only the version differs
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, len(MAGIC), 1)
    (body_size,) = struct.unpack_from("<I", data, len(MAGIC) + 2)
    head_end = len(MAGIC) + 6 + body_size
    struct.pack_into("<I", data, head_end, zlib.crc32(bytes(data[:head_end])))
    assert read_bitstream(bytes(data)) == CASES["audio_v1.bin"]
