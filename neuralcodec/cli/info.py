"""``codec info FILE``: describe a compressed file from its header and chunk table alone."""

from __future__ import annotations

import argparse
import json
from typing import Any

from neuralcodec.bitstream import Modality, StreamInfo, scan_bitstream


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show what a compressed file contains (reads headers only)",
        description="Print modality, codec, model, signal properties, chunk count and the actual bitrate "
        "of a neuralcodec file without decoding it.",
    )
    parser.add_argument("file", help="a .bin file written by 'codec encode'")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=run)


def summarize(info: StreamInfo) -> dict[str, Any]:
    """Human-relevant facts of a stream, including the rate actually achieved by the file."""
    header = info.header
    meta = dict(header.metadata)
    file_bits = info.file_bytes * 8
    out: dict[str, Any] = {
        "format_version": header.version,
        "modality": header.modality.name.lower(),
        "codec": header.codec_id,
        "model": header.model_id,
        "fingerprint": header.fingerprint.hex(),
        "entropy_model": header.entropy_model_id,
        "coder_precision_bits": header.coder_precision,
        "chunks": info.num_chunks,
        "payload_bytes": info.payload_bytes,
        "file_bytes": info.file_bytes,
        "metadata": {k: (v.hex() if isinstance(v, bytes) else v) for k, v in meta.items()},
    }
    if header.modality == Modality.AUDIO and meta.get("sample_rate", 0) > 0:
        duration = meta.get("num_samples", 0) / meta["sample_rate"]
        out["duration_s"] = duration
        if duration > 0:
            out["bits_per_second"] = file_bits / duration
            out["payload_bits_per_second"] = info.payload_bytes * 8 / duration
    elif header.modality == Modality.IMAGE and meta.get("width", 0) > 0 and meta.get("height", 0) > 0:
        pixels = meta["width"] * meta["height"]
        out["bits_per_pixel"] = file_bits / pixels
        out["payload_bits_per_pixel"] = info.payload_bytes * 8 / pixels
    elif header.modality == Modality.VIDEO and meta.get("width", 0) > 0 and meta.get("height", 0) > 0:
        frames = meta.get("num_frames", 0)
        if frames > 0:
            pixels = meta["width"] * meta["height"] * frames
            out["bits_per_pixel"] = file_bits / pixels
            out["payload_bits_per_pixel"] = info.payload_bytes * 8 / pixels
            fps_num, fps_den = meta.get("fps_num", 0), meta.get("fps_den", 1) or 1
            if fps_num > 0:
                out["duration_s"] = frames * fps_den / fps_num
                out["bits_per_second"] = file_bits / out["duration_s"]
                out["payload_bits_per_second"] = info.payload_bytes * 8 / out["duration_s"]
    return out


def _signal_line(modality: str, meta: dict[str, Any]) -> str:
    if modality == "audio":
        channels = meta.get("channels", "?")
        seconds = meta.get("num_samples", 0) / max(meta.get("sample_rate", 1), 1)
        return f"{meta.get('sample_rate', '?')} Hz, {channels} channel{'s' if channels != 1 else ''}, {seconds:.3f} s"
    size = f"{meta.get('width', '?')}x{meta.get('height', '?')}"
    if modality == "image":
        return f"{size}, {meta.get('channels', '?')} channel(s)"
    fps = f"{meta.get('fps_num', '?')}/{meta.get('fps_den', 1)}"
    return f"{size}, {meta.get('num_frames', '?')} frames at {fps} fps"


def run(args: argparse.Namespace) -> int:
    summary = summarize(scan_bitstream(args.file))
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    rows = [
        ("file", args.file),
        ("format", f"neuralcodec bitstream v{summary['format_version']}"),
        ("modality", summary["modality"]),
        ("codec", summary["codec"]),
        ("model", summary["model"]),
        ("fingerprint", summary["fingerprint"]),
        ("entropy model", f"{summary['entropy_model'] or 'none'} ({summary['coder_precision_bits']}-bit precision)"),
        ("signal", _signal_line(summary["modality"], summary["metadata"])),
        ("chunks", str(summary["chunks"])),
        ("size", f"{summary['payload_bytes']} payload bytes, {summary['file_bytes']} file bytes"),
    ]
    if "bits_per_second" in summary:
        rows.append(("bitrate", f"{summary['bits_per_second'] / 1000:.3f} kbit/s actual (whole file), "
                                f"{summary.get('payload_bits_per_second', 0) / 1000:.3f} kbit/s payload"))
    if "nominal_bps" in summary["metadata"]:
        rows.append(("nominal", f"{summary['metadata']['nominal_bps'] / 1000:.3f} kbit/s (raw token bits)"))
    if "bits_per_pixel" in summary:
        rows.append(("bits/pixel", f"{summary['bits_per_pixel']:.4f} (whole file), "
                                   f"{summary.get('payload_bits_per_pixel', 0):.4f} payload"))
    extra = {k: v for k, v in summary["metadata"].items()
             if k not in {"sample_rate", "channels", "num_samples", "width", "height", "num_frames", "fps_num", "fps_den",
                         "nominal_bps"}}
    for key, value in sorted(extra.items()):
        rows.append((key, str(value)))
    width = max(len(k) for k, _ in rows) + 1
    for key, value in rows:
        print(f"{key + ':':<{width}} {value}")
    return 0
