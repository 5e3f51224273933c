"""Streaming writer: header first, chunks as the codec produces them, end trailer on success.

Writing to a path goes through :func:`neuralcodec.fileio.atomic_output`, so the destination
only appears, complete, when the ``with`` block ends without an exception. Writing to a file
object (e.g. ``io.BytesIO``) appends in place; if the block fails no trailer is written, so the
partial stream is detected as truncated by any reader.
"""

from __future__ import annotations

import io
import os
import zlib
from types import TracebackType
from typing import IO, Any, BinaryIO, ContextManager, Iterable, Optional, Union

from neuralcodec.bitstream import layout
from neuralcodec.bitstream.header import StreamHeader, encode_header_body
from neuralcodec.errors import BitstreamError
from neuralcodec.fileio import atomic_output

#: Where a stream can be written: a filesystem path or a binary file object.
Destination = Union[str, "os.PathLike[str]", BinaryIO, IO[bytes]]
BytesLike = Union[bytes, bytearray, memoryview]


def encode_header(header: StreamHeader) -> bytes:
    """Preamble + header body + header CRC: the bytes that start every stream."""
    body = encode_header_body(header)
    head = layout.PREAMBLE.pack(layout.MAGIC, header.version, len(body)) + body
    return head + layout.HEADER_CRC.pack(zlib.crc32(head))


class BitstreamWriter:
    """Context manager that writes one stream; call :meth:`write_chunk` for each payload.

    >>> buffer = io.BytesIO()
    >>> with BitstreamWriter(buffer, header) as writer:   # doctest: +SKIP
    ...     writer.write_chunk(b"first")
    """

    def __init__(self, dest: Destination, header: StreamHeader) -> None:
        if not isinstance(header, StreamHeader):
            raise TypeError(f"header must be a StreamHeader, not {type(header).__name__}")
        self.header = header
        self._head = encode_header(header)  # validate before touching the destination
        self._dest = dest
        self._atomic: Optional[ContextManager[IO[Any]]] = None
        self._fh: Optional[IO[Any]] = None
        self._state = "new"
        #: chunks written so far
        self.num_chunks = 0
        #: payload bytes written so far (without chunk prefixes)
        self.payload_bytes = 0
        #: bytes written so far, header and trailer included
        self.bytes_written = 0

    def __enter__(self) -> "BitstreamWriter":
        if self._state != "new":
            raise RuntimeError("a BitstreamWriter can be used for one 'with' block only")
        if isinstance(self._dest, (str, os.PathLike)):
            self._atomic = atomic_output(self._dest, "wb")
            self._fh = self._atomic.__enter__()
        elif hasattr(self._dest, "write"):
            self._fh = self._dest
        else:
            raise TypeError(f"cannot write a bitstream to {type(self._dest).__name__}; pass a path or a binary file")
        self._state = "open"
        try:
            self._write(self._head)
        except BaseException as error:
            self._abort(error)
            raise
        return self

    def write_chunk(self, payload: BytesLike) -> None:
        """Append one chunk (at most ``MAX_CHUNK_BYTES`` bytes; empty payloads are allowed)."""
        if self._state != "open":
            raise RuntimeError("write_chunk() must be called inside the writer's 'with' block")
        view = memoryview(payload).cast("B")
        if view.nbytes > layout.MAX_CHUNK_BYTES:
            raise BitstreamError(
                f"chunk {self.num_chunks} has {view.nbytes} bytes, above the {layout.MAX_CHUNK_BYTES}-byte "
                "chunk limit; split it into smaller chunks"
            )
        if self.num_chunks >= layout.MAX_CHUNKS:
            raise BitstreamError(f"a stream holds at most {layout.MAX_CHUNKS} chunks")
        self._write(layout.pack_chunk_prefix(self.header.version, self.num_chunks, view))
        self._write(view)
        self.num_chunks += 1
        self.payload_bytes += view.nbytes

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        if self._state != "open":
            return False
        self._state = "closed"
        if exc is not None:
            self._abort(exc)
            return False
        try:
            self._write(layout.pack_trailer(self.num_chunks, self.payload_bytes, self.header.version))
            if self._atomic is None and hasattr(self._fh, "flush"):
                self._fh.flush()
        except BaseException as error:
            self._abort(error)
            raise
        if self._atomic is not None:
            self._atomic.__exit__(None, None, None)  # fsync + rename into place
        return False

    def _abort(self, error: BaseException) -> None:
        """Drop the temporary file (path destinations); file objects are left as they are."""
        self._state = "closed"
        if self._atomic is not None:
            self._atomic.__exit__(type(error), error, error.__traceback__)

    def _write(self, data: BytesLike) -> None:
        assert self._fh is not None
        self._fh.write(data)
        self.bytes_written += memoryview(data).nbytes


def write_bitstream(dest: Destination, header: StreamHeader, chunks: Iterable[BytesLike]) -> int:
    """Write a whole stream (atomically for paths); returns the number of bytes written."""
    with BitstreamWriter(dest, header) as writer:
        for payload in chunks:
            writer.write_chunk(payload)
    return writer.bytes_written


def bitstream_to_bytes(header: StreamHeader, chunks: Iterable[BytesLike]) -> bytes:
    """The complete stream as one ``bytes`` object (for tests and in-memory APIs)."""
    buffer = io.BytesIO()
    write_bitstream(buffer, header, chunks)
    return buffer.getvalue()


__all__ = ["BitstreamWriter", "Destination", "bitstream_to_bytes", "encode_header", "write_bitstream"]
