"""Versioned container that every codec writes; it knows nothing about models.

A stream is ``magic | version | header | chunk* | end trailer``. The header names the modality,
codec, model (with a fingerprint of weights + config), entropy model, coder precision and a
small typed metadata map; each chunk carries its length and a CRC32; the trailer records the
chunk count so a file cut at a chunk boundary is still caught. Version 2 (written by default)
spells lengths and integers as varints and well-known metadata keys as one byte; version 1
(fixed-width fields) is still read and can be written. Every variable-length field is bounded,
and every problem with a file surfaces as :class:`~neuralcodec.errors.BitstreamError`. Byte
layout, limits and the version policy: ``docs/bitstream.md``.

Writing (atomically when ``dest`` is a path)::

    header = StreamHeader(Modality.AUDIO, "audio-rvq", "rvq-24k-v1", fingerprint_bytes(w, cfg),
                          "rvq-prior-v1", 16, {"sample_rate": 24000, "channels": 1, "num_samples": n})
    with BitstreamWriter("out.bin", header) as writer:
        for payload in codec_chunks:
            writer.write_chunk(payload)

Reading, chunk by chunk with bounded memory::

    with BitstreamReader("out.bin") as reader:
        reader.header.check_model(codec_id, model_id, fingerprint)
        for payload in reader.chunks():
            ...

``scan_bitstream(path)`` returns a :class:`StreamInfo` (header, chunk count, payload and file
bytes) from the chunk prefixes alone.
"""

from neuralcodec.bitstream.header import MetadataValue, Modality, StreamHeader, fingerprint_bytes
from neuralcodec.bitstream.layout import (
    FINGERPRINT_BYTES,
    FORMAT_VERSION,
    MAGIC,
    MAX_CHUNK_BYTES,
    MAX_HEADER_BYTES,
    MAX_METADATA_ENTRIES,
    MAX_STRING_BYTES,
    SUPPORTED_VERSIONS,
)
from neuralcodec.bitstream.reader import BitstreamReader, Source, StreamInfo, read_bitstream, scan_bitstream
from neuralcodec.bitstream.writer import BitstreamWriter, Destination, bitstream_to_bytes, write_bitstream
from neuralcodec.errors import BitstreamError

__all__ = [
    "BitstreamError",
    "BitstreamReader",
    "BitstreamWriter",
    "Destination",
    "FINGERPRINT_BYTES",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_CHUNK_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_METADATA_ENTRIES",
    "MAX_STRING_BYTES",
    "MetadataValue",
    "Modality",
    "SUPPORTED_VERSIONS",
    "Source",
    "StreamHeader",
    "StreamInfo",
    "bitstream_to_bytes",
    "fingerprint_bytes",
    "read_bitstream",
    "scan_bitstream",
    "write_bitstream",
]
