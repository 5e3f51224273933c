"""Property test: damaged streams raise only BitstreamError, never another error or a big allocation."""

from __future__ import annotations

import io
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralcodec.bitstream import MAGIC, Modality, StreamHeader, bitstream_to_bytes, read_bitstream, scan_bitstream
from neuralcodec.errors import BitstreamError

#: allocation ceiling for reading a damaged stream of at most a few KiB (a trusted corrupt
#: length would allocate up to 256 MiB; non-seekable sources read in 1 MiB blocks)
PEAK_LIMIT = 4 * 1024 * 1024

printable = st.characters(categories=["L", "N", "P", "S"])
identifiers = st.text(printable, min_size=1, max_size=16)
metadata_values = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=16),
    st.binary(max_size=32),
)
headers = st.builds(
    StreamHeader,
    modality=st.sampled_from(list(Modality)),
    codec_id=identifiers,
    model_id=identifiers,
    fingerprint=st.binary(min_size=16, max_size=16),
    entropy_model_id=st.text(printable, max_size=16),
    coder_precision=st.integers(1, 64),
    metadata=st.dictionaries(st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True), metadata_values, max_size=5),
)
chunk_lists = st.lists(st.binary(max_size=48), max_size=5)


class NonSeekable(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        return self._stream.readinto(buffer)


@st.composite
def damaged_streams(draw):
    """(original bytes, damaged bytes, kind of damage, header, chunks)."""
    header = draw(headers)
    chunks = draw(chunk_lists)
    data = bitstream_to_bytes(header, chunks)
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "append", "overwrite", "random"]))
    if kind == "truncate":
        damaged = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "flip":
        position = draw(st.integers(0, len(data) - 1))
        damaged = bytearray(data)
        damaged[position] ^= 1 << draw(st.integers(0, 7))
        damaged = bytes(damaged)
    elif kind == "insert":
        position = draw(st.integers(0, len(data)))
        damaged = data[:position] + draw(st.binary(min_size=1, max_size=16)) + data[position:]
    elif kind == "append":
        damaged = data + draw(st.binary(min_size=1, max_size=16))
    elif kind == "overwrite":
        position = draw(st.integers(0, len(data) - 1))
        blob = draw(st.binary(min_size=1, max_size=16))
        damaged = data[:position] + blob + data[position + len(blob):]
    else:
        prefix = draw(st.sampled_from([b"", MAGIC, MAGIC + b"\x01\x00", data[:40]]))
        damaged = prefix + draw(st.binary(max_size=300))
    return data, damaged, kind, header, chunks


def _outcome(call):
    """('ok', result) or ('error', message); anything but BitstreamError propagates and fails the test."""
    try:
        return "ok", call()
    except BitstreamError as exc:
        assert str(exc), "error messages must not be empty"
        return "error", str(exc)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_streams())
def test_damage_raises_only_bitstream_error(case):
    original, damaged, kind, header, chunks = case
    tracemalloc.start()
    try:
        read = _outcome(lambda: read_bitstream(damaged))
        read_pipe = _outcome(lambda: read_bitstream(NonSeekable(damaged)))
        scan = _outcome(lambda: scan_bitstream(damaged))
        scan_pipe = _outcome(lambda: scan_bitstream(NonSeekable(damaged)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"reading a {len(damaged)}-byte stream allocated {peak} bytes"

    assert read[0] == read_pipe[0]
    if damaged == original:
        assert read == ("ok", (header, chunks))
        return
    if kind in ("truncate", "flip", "insert", "append"):
        # CRC32 catches every single-bit flip; truncation and extra bytes break the trailer checks
        assert read[0] == "error", f"{kind} went undetected"
    if read[0] == "ok":  # only a harmless change may decode, and then to the original content
        assert read[1] == (header, chunks)
    for outcome in (scan, scan_pipe):
        if outcome[0] == "ok":
            # scanning skips payload CRCs, but header and structure are still fully checked
            assert outcome[1].header == header
            assert outcome[1].num_chunks == len(chunks)
            assert outcome[1].file_bytes == len(damaged)
    if kind == "truncate":
        assert scan[0] == scan_pipe[0] == "error"
