"""``codec demo``: build the static listening-test/comparison site, or aggregate MUSHRA results.

    codec demo --inputs DIR --out SITE_DIR [--models speech,image] [--seconds 10] [--limit N]
    codec demo --score results*.json [--out summary.csv|summary.json] [--no-screen]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from neuralcodec.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="build listening-test and comparison pages, or score MUSHRA results",
        description="Build a static site (samples page with players, spectrograms and scores; MUSHRA test; "
        "image comparison) from the media in --inputs, into --out. With --score, aggregate MUSHRA result "
        "files into mean scores with 95%% confidence intervals per condition.")
    parser.add_argument("--inputs", type=Path, help="folder of audio (.wav/.flac/.ogg) and/or image files")
    parser.add_argument("--out", type=Path, help="site folder to write (replaced atomically); with --score: "
                        "optional .csv or .json file for the table")
    parser.add_argument("--models", help="comma-separated model names or .safetensors paths (default: every "
                        "shipped model, plus 'image'/'video' when available)")
    parser.add_argument("--seconds", type=float, default=10.0, help="crop audio inputs to this many seconds "
                        "(default 10)")
    parser.add_argument("--limit", type=int, help="use at most this many audio and this many image inputs")
    parser.add_argument("--score", nargs="+", type=Path, metavar="RESULTS.json",
                        help="MUSHRA listener files exported by the test page")
    parser.add_argument("--no-screen", action="store_true", help="with --score: keep listeners who fail "
                        "BS.1534 post-screening (hidden reference < 90 in > 15%% of trials)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors (site build)")
    parser.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    if args.score:
        if args.inputs is not None:
            raise UsageError("--score aggregates results; it cannot be combined with --inputs")
        return _score(args)
    if args.inputs is None or args.out is None:
        raise UsageError("codec demo needs --inputs DIR and --out SITE_DIR (or --score RESULTS.json ...)")
    from neuralcodec.demo.site import build_site

    models = None
    if args.models is not None:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        if not models:
            raise UsageError("--models: no model names given")
    log = (lambda _msg: None) if args.quiet else (lambda msg: print(msg, flush=True))
    site = build_site(args.inputs, args.out, models=models, seconds=args.seconds, limit=args.limit, log=log)
    if not args.quiet:
        print(f"site written to {site}; open {site / 'index.html'} in a browser")
    return 0


def _score(args: argparse.Namespace) -> int:
    from neuralcodec.demo.scores import aggregate, format_table, to_csv
    from neuralcodec.fileio import atomic_output

    scores, kept, excluded = aggregate(list(args.score), screen=not args.no_screen)
    print(f"{len(kept)} listener(s): {', '.join(kept)}")
    if excluded:
        print(f"excluded by post-screening: {', '.join(excluded)}")
    print(format_table(scores))
    if args.out is not None:
        suffix = args.out.suffix.lower()
        if suffix == ".csv":
            text = to_csv(scores)
        elif suffix == ".json":
            text = json.dumps({"listeners": kept, "excluded": excluded,
                               "conditions": [s.as_dict() for s in scores]}, indent=1) + "\n"
        else:
            raise UsageError(f"--out with --score must end in .csv or .json, got {args.out.name}")
        with atomic_output(args.out, "w") as handle:
            handle.write(text)
    return 0
