"""The ``codec`` command: one entry point, one module per subcommand.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func`` (a callable taking the parsed arguments and returning an exit code). User-facing
problems (:class:`~neuralcodec.errors.NeuralCodecError`, unreadable paths) are printed as
one ``codec: error: ...`` line with exit code 1; ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Callable, Sequence

from neuralcodec import __version__
from neuralcodec.errors import NeuralCodecError

#: Subcommand modules, in the order ``codec --help`` lists their commands
#: (``coding`` registers ``encode`` and ``decode``, which share their plumbing).
SUBCOMMAND_MODULES: tuple[str, ...] = ("coding", "info", "train", "tokenize", "demo")

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered subcommand."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="codec",
        description="Neural audio, image and video compression with real entropy coding.",
        epilog="Run 'codec COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"neuralcodec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and extra detail on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"neuralcodec.cli.{name}").register(subparsers)
    return parser


def _error(message: str) -> None:
    print(f"codec: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``codec`` command; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except (NeuralCodecError, OSError) as exc:
        if args.verbose:
            traceback.print_exc()
        _error(_describe(exc))
        return EXIT_ERROR
    except Exception as exc:  # a bug: still one line for the user, traceback on request
        if args.verbose:
            traceback.print_exc()
        _error(f"internal error ({type(exc).__name__}: {_describe(exc)}); rerun with --verbose for the traceback")
        return EXIT_ERROR


def _describe(exc: BaseException) -> str:
    """One line for a user-facing exception (OSError carries the path in ``filename``)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    try:
        text = str(exc).strip() or type(exc).__name__
    except Exception:  # e.g. a libsndfile error re-raised from a DataLoader worker cannot format itself
        text = type(exc).__name__
    return " ".join(text.split("\n"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
