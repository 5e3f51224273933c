"""``codec tokenize IN_DIR OUT_DIR``: a folder of audio -> code shards + JSONL manifest.

The work is done by :mod:`neuralcodec.tokenize`; this module only maps options onto it.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tokenize", help="turn a folder of audio into token shards and a JSONL manifest",
        description="Encode every audio file under IN_DIR (recursively; mono, resampled to the model's rate) "
        "into integer codes, written as .safetensors shards under OUT_DIR/shards plus OUT_DIR/manifest.jsonl. "
        "Rerunning resumes: files already in a shard are skipped. Files that are not readable audio are "
        "skipped with a warning (listed in OUT_DIR/skipped.jsonl). Scale out with Lightning's settings, e.g. "
        "--accelerator gpu --devices 8 --num-nodes 2 --strategy ddp (OUT_DIR on a shared file system).")
    parser.add_argument("input", help="folder of audio files (wav, flac, ogg, ... in any sub-folder)")
    parser.add_argument("output", help="output folder (created; reused to resume)")
    parser.add_argument("--model", default="speech", help="shipped audio model name or exported .safetensors path "
                        "(default: speech)")
    parser.add_argument("--num-codebooks", dest="num_codebooks", type=int,
                        help="keep only the first k codebooks (default: all)")
    parser.add_argument("--shard-size", dest="shard_size", type=int, default=1000,
                        help="utterances per shard (default 1000); the unit of resumption")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=8,
                        help="files per batch (default 8)")
    parser.add_argument("--num-workers", dest="num_workers", type=int, default=0,
                        help="data loader processes decoding audio (default 0: in the main process)")
    parser.add_argument("--accelerator", default="auto",
                        help="Lightning accelerator: auto, cpu, gpu, ... (default auto)")
    parser.add_argument("--devices", default="auto", help="Lightning devices: auto, a count, or a list like 0,1 "
                        "(default auto)")
    parser.add_argument("--num-nodes", dest="num_nodes", type=int, default=1, help="Lightning num_nodes (default 1)")
    parser.add_argument("--strategy", default="auto", help="Lightning strategy: auto, ddp, ... (default auto)")
    parser.add_argument("--padded", action="store_true",
                        help="encode each batch as one zero-padded tensor with lengths: faster on GPUs, but a code "
                        "may differ from encoding the file alone where two codewords are nearly tied "
                        "(default: each file at its own length, bit-exact)")
    parser.add_argument("--merge-only", dest="merge_only", action="store_true",
                        help="only rebuild OUT_DIR/manifest.jsonl from the shards in OUT_DIR/shards")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    parser.set_defaults(func=run)


def parse_devices(value: str) -> int | str | list[int]:
    """``"auto"`` stays a string, ``"4"`` becomes 4, ``"0,1"`` becomes ``[0, 1]``."""
    text = value.strip()
    if "," in text:
        return [int(v) for v in text.split(",") if v.strip()]
    try:
        return int(text)
    except ValueError:
        return text


def _warn(message: str) -> None:
    print(f"codec: warning: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from neuralcodec.tokenize import discover_audio, merge_manifest, read_manifest, tokenize_folder

    if args.quiet:  # Lightning's start-up notes (accelerator found, tips) are info-level log records
        import logging

        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    if args.merge_only:
        _, skipped = discover_audio(args.input, exclude=[args.output])
        manifest = merge_manifest(Path(args.output), skipped)
        if not args.quiet:
            print(f"{manifest}: {len(read_manifest(args.output))} utterances")
        return 0
    summary = tokenize_folder(args.input, args.output, args.model, num_codebooks=args.num_codebooks,
                              shard_size=args.shard_size, batch_size=args.batch_size, num_workers=args.num_workers,
                              accelerator=args.accelerator, devices=parse_devices(args.devices),
                              num_nodes=args.num_nodes, strategy=args.strategy, padded=args.padded,
                              progress=not args.quiet, warn=_warn)
    if summary.global_zero and not args.quiet:
        print(f"{summary.manifest}: {summary.in_manifest} utterances ({summary.already_done} were already done, "
              f"{summary.failed} failed, {summary.skipped} non-audio files skipped)")
    return 0
