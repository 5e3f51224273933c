"""Streaming reader and chunk-table scanner.

The reader parses and checks the header on construction, then yields chunk payloads one at a
time, each CRC-checked, without holding the whole file. Every declared length is checked
against the format limit and, when the source is seekable, against the bytes actually left
*before* anything is allocated; non-seekable sources are read in bounded blocks, so a corrupt
length can never trigger a large allocation. The end trailer is verified when iteration ends,
so a file cut exactly at a chunk boundary still fails. :func:`scan_bitstream` walks the chunk
prefixes with seeks (no payload reads, no CRC checks) for ``codec info``.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import zlib
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any, BinaryIO, Callable, Iterator, NoReturn, Optional, Union

from neuralcodec.bitstream import layout
from neuralcodec.bitstream.header import StreamHeader, decode_header_body, unsupported_version_message
from neuralcodec.errors import BitstreamError

#: Where a stream can be read from: a path, the bytes themselves, or a binary file object.
Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, BinaryIO, IO[bytes]]

#: Largest single read from a non-seekable source (bounds allocation to bytes actually present).
_BLOCK = 1 << 20

#: Header-body decoder per readable format version.
_BODY_DECODERS: dict[int, Callable[[bytes, int], StreamHeader]] = {1: decode_header_body, 2: decode_header_body}


@dataclass(frozen=True)
class StreamInfo:
    """What :func:`scan_bitstream` learns from the header and chunk prefixes alone."""

    header: StreamHeader
    num_chunks: int
    payload_bytes: int
    file_bytes: int


class _Input:
    """A binary input that tracks its position and, when seekable, how many bytes remain."""

    def __init__(self, src: Source) -> None:
        self.name: Optional[str] = None
        self.owned = False
        if isinstance(src, (bytes, bytearray, memoryview)):
            self.fh: Any = io.BytesIO(bytes(src))
        elif isinstance(src, (str, os.PathLike)):
            path = os.fspath(src)
            try:
                self.fh = open(path, "rb")
            except OSError as exc:
                raise BitstreamError(f"cannot open {path}: {exc.strerror or exc}") from None
            self.owned = True
            self.name = str(path)
        elif hasattr(src, "read"):
            self.fh = src
            name = getattr(src, "name", None)
            self.name = name if isinstance(name, str) else None
        else:
            raise TypeError(f"cannot read a bitstream from {type(src).__name__}; pass a path, bytes or a binary file")
        try:
            seekable = bool(self.fh.seekable())
        except (AttributeError, OSError, ValueError):
            seekable = False
        self.end: Optional[int] = None
        if seekable:
            self.start = self.fh.tell()
            self.end = self.fh.seek(0, io.SEEK_END)
            self.fh.seek(self.start)
        else:
            self.start = 0
        self.pos = self.start

    @property
    def seekable(self) -> bool:
        return self.end is not None

    def remaining(self) -> Optional[int]:
        """Bytes left before end of file, or None for a non-seekable source."""
        return None if self.end is None else max(self.end - self.pos, 0)

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only at end of file."""
        if size <= 0:
            return b""
        remaining = self.remaining()
        if remaining is not None:
            size = min(size, remaining)  # never allocate beyond what the file holds
            step = size
        else:
            step = _BLOCK
        parts: list[bytes] = []
        got = 0
        while got < size:
            data = self.fh.read(min(step, size - got))
            if not isinstance(data, (bytes, bytearray)):
                raise TypeError("bitstream sources must be opened in binary mode")
            if not data:
                break
            parts.append(bytes(data))
            got += len(data)
        self.pos += got
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def skip(self, size: int) -> int:
        """Move ``size`` bytes forward (seek, or read and discard); returns how many were skipped."""
        remaining = self.remaining()
        if remaining is not None:
            step = min(size, remaining)
            self.pos = self.fh.seek(self.pos + step)
            return step
        skipped = 0
        while skipped < size:
            data = self.fh.read(min(_BLOCK, size - skipped))
            if not data:
                break
            skipped += len(data)
        self.pos += skipped
        return skipped

    def rewind_to(self, offset: int) -> None:
        self.pos = self.fh.seek(offset)

    def close(self) -> None:
        if self.owned:
            self.fh.close()


class BitstreamReader:
    """Context manager over one stream: ``header`` is parsed on construction, chunks on demand.

    >>> with BitstreamReader("out.bin") as reader:      # doctest: +SKIP
    ...     reader.header.check_model(codec.codec_id, codec.model_id, codec.fingerprint)
    ...     for payload in reader.chunks():
    ...         ...
    """

    def __init__(self, src: Source) -> None:
        self._in = _Input(src)
        try:
            with self._named_errors():
                self.header: StreamHeader = self._read_header()
        except BaseException:
            self._in.close()
            raise
        self._data_start = self._in.pos
        self._walked = False

    def __enter__(self) -> "BitstreamReader":
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file if the reader opened it (file objects passed in stay open)."""
        self._in.close()

    def chunks(self) -> Iterator[bytes]:
        """Yield each chunk payload after checking its length and CRC; the trailer is checked last.

        Seekable sources can be iterated again (one iteration at a time); others only once.
        """
        self._restart()
        return self._iter_chunks()

    __iter__ = chunks

    def scan(self) -> StreamInfo:
        """Walk the chunk prefixes with seeks (payloads are skipped, CRCs not checked)."""
        self._restart()
        count = total = 0
        with self._named_errors():
            for length in self._walk(read_payloads=False):
                count += 1
                total += length
        return StreamInfo(self.header, count, total, self._in.pos - self._in.start)

    # --- internals ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _named_errors(self) -> Iterator[None]:
        """Prefix BitstreamError messages with the file name, when there is one."""
        try:
            yield
        except BitstreamError as exc:
            if self._in.name:
                raise BitstreamError(f"{self._in.name}: {exc}") from None
            raise

    def _restart(self) -> None:
        if self._walked:
            if not self._in.seekable:
                raise RuntimeError("the chunks of a non-seekable source can be read only once")
            self._in.rewind_to(self._data_start)
        self._walked = True

    def _iter_chunks(self) -> Iterator[bytes]:
        with self._named_errors():
            yield from self._walk(read_payloads=True)

    @staticmethod
    def _fail(message: str) -> NoReturn:
        raise BitstreamError(message)

    def _read_header(self) -> StreamHeader:
        size = layout.PREAMBLE.size
        pre = self._in.read(size)
        magic = pre[: len(layout.MAGIC)]
        if not pre:
            self._fail("not a neuralcodec file (empty)")
        if magic != layout.MAGIC[: len(magic)]:
            self._fail("not a neuralcodec file (bad magic)")
        if len(pre) < len(layout.MAGIC) + 2:
            self._fail(f"truncated in header (the file has only {len(pre)} bytes)")
        (version,) = struct.unpack_from("<H", pre, len(layout.MAGIC))
        decoder = _BODY_DECODERS.get(version)
        if decoder is None or version not in layout.SUPPORTED_VERSIONS:
            self._fail(unsupported_version_message(version))
        if len(pre) < size:
            self._fail(f"truncated in header (the file has only {len(pre)} bytes)")
        _, _, body_size = layout.PREAMBLE.unpack(pre)
        if body_size > layout.MAX_HEADER_BYTES:
            self._fail(
                f"header declares {body_size} bytes, above the {layout.MAX_HEADER_BYTES}-byte limit (corrupt file)"
            )
        need = body_size + layout.HEADER_CRC.size
        rest = self._need(need, lambda got: f"truncated in header: it declares {need} more bytes but only {got} remain")
        body = rest[:body_size]
        (crc,) = layout.HEADER_CRC.unpack_from(rest, body_size)
        if zlib.crc32(body, zlib.crc32(pre)) != crc:
            self._fail("header CRC mismatch (corrupt file)")
        return decoder(body, version)

    def _need(self, size: int, message: Callable[[int], str]) -> bytes:
        """Exactly ``size`` bytes, checked against the bytes present before reading."""
        remaining = self._in.remaining()
        if remaining is not None and remaining < size:
            self._fail(message(remaining))
        data = self._in.read(size)
        if len(data) < size:
            self._fail(message(len(data)))
        return data

    def _walk(self, *, read_payloads: bool) -> Iterator[Any]:
        """Yield payloads (or, when skipping, payload lengths) chunk by chunk; then check the trailer."""
        index = 0
        total = 0
        while True:
            prefix = self._chunk_prefix(index, total)
            if prefix is None:
                return
            length, crc = prefix
            if length > layout.MAX_CHUNK_BYTES:
                self._fail(
                    f"chunk {index} declares {length} bytes, above the {layout.MAX_CHUNK_BYTES}-byte chunk limit "
                    "(corrupt file)"
                )
            message = lambda got, i=index, n=length: (  # noqa: E731
                f"truncated in chunk {i}: it declares {n} bytes but only {got} remain"
            )
            if read_payloads:
                payload = self._need(length, message)
                if layout.chunk_crc(index, payload) != crc:
                    self._fail(f"CRC mismatch in chunk {index}")
                yield payload
            else:
                remaining = self._in.remaining()
                if remaining is not None and remaining < length:
                    self._fail(message(remaining))
                skipped = self._in.skip(length)
                if skipped < length:
                    self._fail(message(skipped))
                yield length
            index += 1
            total += length

    def _chunk_prefix(self, index: int, total: int) -> Optional[tuple[int, int]]:
        """``(length, crc)`` of chunk ``index``, or None after checking the trailer that ends the chunks."""
        if self.header.version == 1:
            prefix = self._in.read(layout.CHUNK_PREFIX.size)
            if not prefix:
                self._fail(f"missing end marker: the file ends after {index} chunk(s) (truncated)")
            if len(prefix) >= 4 and struct.unpack_from("<I", prefix)[0] == layout.END_MARKER:
                self._check_trailer(prefix, index, total)
                return None
            if len(prefix) < layout.CHUNK_PREFIX.size:
                self._fail(f"truncated in chunk {index} (its length/CRC prefix is cut short)")
            length, crc = layout.CHUNK_PREFIX.unpack(prefix)
            return length, crc
        first = self._in.read(1)
        if not first:
            self._fail(f"missing end marker: the file ends after {index} chunk(s) (truncated)")
        if first[0] == layout.END_MARKER_V2:
            self._check_trailer_v2(index, total)
            return None
        _, value = self._varint(first, f"chunk {index} length",
                                f"truncated in chunk {index} (its length/CRC prefix is cut short)")
        crc_bytes = self._in.read(layout.CHUNK_CRC_V2.size)
        if len(crc_bytes) < layout.CHUNK_CRC_V2.size:
            self._fail(f"truncated in chunk {index} (its length/CRC prefix is cut short)")
        return value - 1, layout.CHUNK_CRC_V2.unpack(crc_bytes)[0]

    def _varint(self, first: bytes, what: str, truncated: str) -> tuple[bytes, int]:
        """Read the rest of a varint that starts with ``first``; ``(raw bytes, value)``."""
        raw = bytearray(first)
        while raw[-1] & 0x80 and len(raw) < layout.MAX_VARINT_BYTES:
            more = self._in.read(1)
            if not more:
                self._fail(truncated)
            raw += more
        try:
            value, _ = layout.unpack_varint(raw)
        except (ValueError, IndexError) as exc:
            self._fail(f"{what} is not a valid varint ({exc}) (corrupt file)")
        return bytes(raw), value

    def _check_trailer_v2(self, index: int, total: int) -> None:
        truncated = f"truncated in end marker (after {index} chunk(s))"
        body = bytearray([layout.END_MARKER_V2])
        values = []
        for what in ("end marker chunk count", "end marker payload bytes"):
            first = self._in.read(1)
            if not first:
                self._fail(truncated)
            raw, value = self._varint(first, what, truncated)
            body += raw
            values.append(value)
        crc_bytes = self._in.read(layout.TRAILER_CRC.size)
        if len(crc_bytes) < layout.TRAILER_CRC.size:
            self._fail(truncated)
        if zlib.crc32(bytes(body)) != layout.TRAILER_CRC.unpack(crc_bytes)[0]:
            self._fail("end marker CRC mismatch (corrupt file)")
        self._check_counts(values[0], values[1], index, total)

    def _check_counts(self, count: int, payload_bytes: int, index: int, total: int) -> None:
        if count != index:
            self._fail(f"end marker records {count} chunk(s) but {index} were found (corrupt file)")
        if payload_bytes != total:
            self._fail(f"end marker records {payload_bytes} payload bytes but {total} were found (corrupt file)")
        remaining = self._in.remaining()
        if remaining is None:
            if self._in.read(1):
                self._fail("unexpected bytes after the end marker")
        elif remaining:
            self._fail(f"{remaining} unexpected byte(s) after the end marker")

    def _check_trailer(self, start: bytes, index: int, total: int) -> None:
        rest = start[4:] + self._in.read(layout.TRAILER_BYTES - len(start))
        if len(rest) < layout.TRAILER_BYTES - 4:
            self._fail(f"truncated in end marker (after {index} chunk(s))")
        body = start[:4] + rest[: layout.TRAILER_BODY.size]
        (crc,) = layout.TRAILER_CRC.unpack_from(rest, layout.TRAILER_BODY.size)
        if zlib.crc32(body) != crc:
            self._fail("end marker CRC mismatch (corrupt file)")
        count, payload_bytes = layout.TRAILER_BODY.unpack_from(rest)
        self._check_counts(count, payload_bytes, index, total)


def read_bitstream(src: Source) -> tuple[StreamHeader, list[bytes]]:
    """Header and all chunk payloads of a stream (fully checked)."""
    with BitstreamReader(src) as reader:
        return reader.header, list(reader.chunks())


def scan_bitstream(src: Source) -> StreamInfo:
    """Header, chunk count, payload and file sizes, from chunk prefixes only (detects truncation)."""
    with BitstreamReader(src) as reader:
        return reader.scan()


__all__ = ["BitstreamReader", "Source", "StreamInfo", "read_bitstream", "scan_bitstream"]
