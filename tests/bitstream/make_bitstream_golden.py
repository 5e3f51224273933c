"""Write the golden bitstreams in ``tests/data/bitstream/`` (run once per format version).

    python tests/bitstream/make_bitstream_golden.py

The expected headers and chunks are defined here and imported by ``test_bitstream_golden.py``,
which checks that the committed files still decode to them and that the writer still produces
the same bytes. Regenerating the files is only right together with a ``FORMAT_VERSION`` bump
(keep the old files and add new ones named after the new version).
"""

from __future__ import annotations

import hashlib
import struct
import sys
import zlib
from pathlib import Path

from neuralcodec.bitstream import MAGIC, Modality, StreamHeader, bitstream_to_bytes, fingerprint_bytes

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "data" / "bitstream"
FUTURE_VERSION = 99
FUTURE_FILE = f"future_version_v{FUTURE_VERSION}.bin"


def _pseudo_random(seed: str, size: int) -> bytes:
    """Deterministic filler bytes (stand-ins for entropy-coded payloads)."""
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return out[:size]


def golden_cases() -> dict[str, tuple[StreamHeader, list[bytes]]]:
    """File name -> (header, chunk payloads) of every golden stream."""
    audio = StreamHeader(
        modality=Modality.AUDIO,
        codec_id="audio-rvq",
        model_id="rvq-24khz-6kbps",
        fingerprint=fingerprint_bytes(b"audio weights", b"audio config"),
        entropy_model_id="categorical-prior-v1",
        coder_precision=16,
        metadata={"sample_rate": 24000, "channels": 1, "num_samples": 48000, "bandwidth_kbps": 6.0},
    )
    image = StreamHeader(
        modality=Modality.IMAGE,
        codec_id="image-hyperprior",
        model_id="bmshj2018-q3",
        fingerprint=fingerprint_bytes(b"image weights", b"image config"),
        entropy_model_id="gaussian-conditional-v1",
        coder_precision=24,
        metadata={
            "width": 768,
            "height": 512,
            "channels": 3,
            "quality": 3,
            "pad": b"\x00\x10",
            "colorspace": "rgb",
            "note": "naïve café — 音声 ✓",
            "gamma": -2.2e-3,
        },
    )
    video = StreamHeader(
        modality=Modality.VIDEO,
        codec_id="video-nerv",
        model_id="nerv-s",
        fingerprint=fingerprint_bytes(b"video weights", b"video config"),
        entropy_model_id="",
        coder_precision=32,
        metadata={
            "width": 176,
            "height": 144,
            "fps_num": 30000,
            "fps_den": 1001,
            "num_frames": 3,
            "big": -(2**63),
        },
    )
    return {
        "audio_v1.bin": (audio, [_pseudo_random("audio", 37), _pseudo_random("audio2", 64), b""]),
        "image_v1.bin": (image, [_pseudo_random("image-hyper", 20), _pseudo_random("image-latent", 150)]),
        "video_v1.bin": (video, [_pseudo_random(f"frame{i}", 10 + i) for i in range(3)]),
        "empty_v1.bin": (video, []),
    }


def future_version_bytes() -> bytes:
    """The audio golden stream relabelled as format version 99 (header CRC recomputed)."""
    header, chunks = golden_cases()["audio_v1.bin"]
    data = bytearray(bitstream_to_bytes(header, chunks))
    struct.pack_into("<H", data, len(MAGIC), FUTURE_VERSION)
    (body_size,) = struct.unpack_from("<I", data, len(MAGIC) + 2)
    head_end = len(MAGIC) + 6 + body_size
    struct.pack_into("<I", data, head_end, zlib.crc32(bytes(data[:head_end])))
    return bytes(data)


def main(out_dir: Path = GOLDEN_DIR) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (header, chunks) in golden_cases().items():
        (out_dir / name).write_bytes(bitstream_to_bytes(header, chunks))
        print(f"wrote {out_dir / name}")
    (out_dir / FUTURE_FILE).write_bytes(future_version_bytes())
    print(f"wrote {out_dir / FUTURE_FILE}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else GOLDEN_DIR)
