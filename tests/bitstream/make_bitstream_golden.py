"""Write the golden bitstreams in ``tests/data/bitstream/`` (run once per format version).

    python tests/bitstream/make_bitstream_golden.py

The expected headers and chunks are defined here and imported by ``test_bitstream_golden.py``,
which checks that the committed files still decode to them and that the writer still produces
the same bytes. Existing files are never overwritten: a ``FORMAT_VERSION`` bump adds the new
version to ``GOLDEN_VERSIONS``, and running this script then adds only the new ``*_vN.bin`` files.
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
#: format versions with golden files (the same signals written in each version's layout)
GOLDEN_VERSIONS = (1, 2)


def _pseudo_random(seed: str, size: int) -> bytes:
    """Deterministic filler bytes (stand-ins for entropy-coded payloads)."""
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return out[:size]


def golden_cases() -> dict[str, tuple[StreamHeader, list[bytes]]]:
    """File name -> (header, chunk payloads) of every golden stream, in every golden version."""
    cases: dict[str, tuple[StreamHeader, list[bytes]]] = {}
    for version in GOLDEN_VERSIONS:
        for name, case in _cases(version).items():
            cases[f"{name}_v{version}.bin"] = case
    return cases


def _cases(version: int) -> dict[str, tuple[StreamHeader, list[bytes]]]:
    audio = StreamHeader(
        version=version,
        modality=Modality.AUDIO,
        codec_id="audio-rvq",
        model_id="rvq-24khz-6kbps",
        fingerprint=fingerprint_bytes(b"audio weights", b"audio config"),
        entropy_model_id="categorical-prior-v1",
        coder_precision=16,
        metadata={"sample_rate": 24000, "channels": 1, "num_samples": 48000, "bandwidth_kbps": 6.0},
    )
    image = StreamHeader(
        version=version,
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
        version=version,
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
        "audio": (audio, [_pseudo_random("audio", 37), _pseudo_random("audio2", 64), b""]),
        "image": (image, [_pseudo_random("image-hyper", 20), _pseudo_random("image-latent", 150)]),
        "video": (video, [_pseudo_random(f"frame{i}", 10 + i) for i in range(3)]),
        "empty": (video, []),
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
    files = {name: bitstream_to_bytes(header, chunks) for name, (header, chunks) in golden_cases().items()}
    files[FUTURE_FILE] = future_version_bytes()
    for name, data in files.items():
        path = out_dir / name
        if path.exists():
            print(f"kept {path} (golden files are never regenerated)")
            continue
        path.write_bytes(data)
        print(f"wrote {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else GOLDEN_DIR)
