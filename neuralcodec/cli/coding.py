"""``codec encode`` and ``codec decode``: shared plumbing for every modality.

Encode: the input's extension picks the default model (``--model`` overrides it), the codec reads
and compresses the file, and chunks stream into the container as they are produced (written to
a temporary file, renamed at the end). Decode: the header names the codec and model; the model is
loaded (a shipped name, or ``--model PATH``), its fingerprint is checked against the header, and
the codec writes the output file atomically. A model may carry more than one entropy model (audio: the
token prior and an optional circuit prior); ``--entropy-model`` picks one at encode time, the
header's entropy-model id records it, and decode selects it from there (or refuses the file if
the loaded model does not carry it).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from neuralcodec.bitstream import BitstreamReader, BitstreamWriter
from neuralcodec.errors import ModelError, NeuralCodecError

#: input extension -> default shipped model
DEFAULT_MODELS: dict[str, str] = {
    ".wav": "speech", ".flac": "speech", ".ogg": "speech",
    ".png": "image", ".jpg": "image", ".jpeg": "image", ".bmp": "image", ".tif": "image", ".tiff": "image",
    ".webp": "image", ".ppm": "image", ".pgm": "image",
    ".y4m": "video",
}

#: options every codec may receive; a codec rejects the ones it does not support
ENCODE_OPTIONS = ("bitrate", "quality", "target_bpp", "gop", "frame_types", "steps", "no_postfilter")
#: options every codec's decoder may receive
DECODE_OPTIONS = ("frames",)


def register(subparsers: argparse._SubParsersAction) -> None:
    enc = subparsers.add_parser(
        "encode", help="compress a media file into a .bin file",
        description="Compress audio (.wav/.flac/.ogg), an image (.png/.jpg/...) or a video (.y4m) into a "
        "neuralcodec file. Options a codec does not support are rejected.")
    enc.add_argument("input", help="media file to compress")
    enc.add_argument("output", help="compressed file to write (replaced atomically)")
    enc.add_argument("--model", help="shipped model name or exported .safetensors path "
                     "(default: chosen from the input type, e.g. 'speech' for audio)")
    enc.add_argument("--bitrate", type=float, help="audio: target bitrate in kbit/s (picks the number of codebooks)")
    enc.add_argument("--quality", type=int, help="image/video: quality index (higher = better, more bits)")
    enc.add_argument("--target-bpp", dest="target_bpp", type=float,
                     help="image/video: search the setting whose file is closest to this many bits per pixel")
    enc.add_argument("--gop", type=int, help="video: frames per group of pictures (intra refresh period)")
    enc.add_argument("--frame-types", dest="frame_types", choices=("adaptive", "fixed"),
                     help="conditional video: 'adaptive' (default) also codes a frame as intra where that costs "
                     "less than a P-frame (rate + distortion); 'fixed': intra frames only every --gop frames")
    enc.add_argument("--steps", type=int, help="fitted codecs (NeRV): optimisation steps; image: encoder-side "
                     "latent refinement steps (slower encoding, same decoder; with --quality)")
    enc.add_argument("--no-postfilter", dest="no_postfilter", action="store_const", const=True, default=None,
                     help="image: leave out the per-image linear post-filter the encoder otherwise fits and "
                     "sends where it pays for its bits (faster encoding)")
    enc.add_argument("--entropy-model", dest="entropy_model", metavar="NAME",
                     help="which of the model's entropy models codes the file (default: the model's default; "
                     "audio: 'token-prior' or 'circuit' where the model carries a circuit prior); recorded in "
                     "the file, so decode needs no option")
    enc.add_argument("--quiet", action="store_true", help="print nothing on success")
    enc.set_defaults(func=run_encode)

    dec = subparsers.add_parser(
        "decode", help="decompress a .bin file into a media file",
        description="Decompress a neuralcodec file; the model recorded in the file is loaded.")
    dec.add_argument("input", help="compressed .bin file")
    dec.add_argument("output", help="media file to write (replaced atomically)")
    dec.add_argument("--model", help="exported .safetensors path when the file's model is not a shipped one")
    dec.add_argument("--frames", help="video: decode only frames A:B (random access where the codec allows)")
    dec.add_argument("--quiet", action="store_true", help="print nothing on success")
    dec.set_defaults(func=run_decode)


def _load(name_or_path: str):
    from neuralcodec.codecs.registry import load_codec

    return load_codec(name_or_path)


def encode_to_file(codec, source: Path, target: Path, entropy_model: str | None = None, **options: Any) -> None:
    """Compress ``source`` with a loaded ``codec`` into the container file ``target`` (atomically),
    coding with its entropy model ``entropy_model`` (default: the codec's current selection)."""
    if entropy_model is not None:
        codec.select_entropy_model(entropy_model)
    metadata, chunks = codec.compress_file(source, **options)
    with BitstreamWriter(target, codec.stream_header(metadata)) as writer:
        for payload in chunks:
            writer.write_chunk(payload)


def decode_to_file(codec, source: Path, target: Path, **options: Any) -> None:
    """Decompress the container file ``source`` with a loaded ``codec`` (its model is checked) to ``target``."""
    with BitstreamReader(source) as reader:
        header = reader.header
        header.check_model(codec.codec_id, codec.model_id, codec.fingerprint())
        codec.select_entropy_model_for(header)
        header.check_entropy_model(codec.entropy_model_id, codec.coder_precision)
        codec.decompress_to_file(header.metadata, reader.chunks(), target, **options)


def run_encode(args: argparse.Namespace) -> int:
    source, target = Path(args.input), Path(args.output)
    if not source.is_file():
        what = "is a directory, not a file" if source.is_dir() else "not found"
        raise NeuralCodecError(f"input file {what}: {source}")
    if source.resolve() == target.resolve():
        raise NeuralCodecError("output path is the input file; choose another output name")
    model = args.model or DEFAULT_MODELS.get(source.suffix.lower())
    if model is None:
        known = ", ".join(sorted(DEFAULT_MODELS))
        raise NeuralCodecError(f"cannot tell what kind of media {source.name} is (known extensions: {known}); "
                               "pass --model")
    codec = _load(model)
    options: dict[str, Any] = {k: getattr(args, k, None) for k in ENCODE_OPTIONS}
    encode_to_file(codec, source, target, entropy_model=args.entropy_model, **options)
    if not args.quiet:
        from neuralcodec.cli.info import summarize
        from neuralcodec.bitstream import scan_bitstream

        summary = summarize(scan_bitstream(target))
        rate = (f"{summary['bits_per_second'] / 1000:.3f} kbit/s" if "bits_per_second" in summary
                else f"{summary.get('bits_per_pixel', 0):.4f} bits/pixel")
        coded_by = "" if args.entropy_model is None else f", entropy model {codec.entropy_model}"
        print(f"{source} -> {target}: {summary['file_bytes']} bytes, {rate} (model {codec.model_id}{coded_by})")
    return 0


def run_decode(args: argparse.Namespace) -> int:
    source, target = Path(args.input), Path(args.output)
    if source.resolve() == target.resolve():
        raise NeuralCodecError("output path is the input file; choose another output name")
    with BitstreamReader(source) as reader:
        header = reader.header
        try:
            codec = _load(args.model or header.model_id)
        except ModelError as exc:
            raise ModelError(f"{exc} (the file needs model {header.model_id!r}; pass --model PATH)") from None
        header.check_model(codec.codec_id, codec.model_id, codec.fingerprint())
        codec.select_entropy_model_for(header)
        header.check_entropy_model(codec.entropy_model_id, codec.coder_precision)
        options: dict[str, Any] = {k: getattr(args, k, None) for k in DECODE_OPTIONS}
        codec.decompress_to_file(header.metadata, reader.chunks(), target, **options)
    if not args.quiet:
        print(f"{source} -> {target} (model {codec.model_id})")
    return 0
