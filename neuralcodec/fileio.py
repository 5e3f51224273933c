"""Atomic file output: every writer in the package goes through :func:`atomic_output`.

A failed or interrupted write never leaves a partial file at the destination: data goes to a
temporary file in the same directory, which is fsync'ed and renamed over the target only when
the ``with`` block finishes without an exception.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from neuralcodec.errors import NeuralCodecError


def _default_mode() -> int:
    """Permissions a plain ``open(path, "w")`` would give (mkstemp's 0600 is too private for outputs)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; rename it to ``path`` on success, delete it on error."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_output supports modes 'wb' and 'w', not {mode!r}")
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise NeuralCodecError(f"output directory does not exist: {directory}")
    if target.is_dir():
        raise NeuralCodecError(f"output path is a directory: {target}")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _default_mode())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary *path* (for libraries that insist on opening files themselves).

    The file at the yielded path is renamed to ``path`` on success and removed on error.
    ``suffix`` lets format-sniffing writers (soundfile, Pillow) see the right extension.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise NeuralCodecError(f"output directory does not exist: {directory}")
    if target.is_dir():
        raise NeuralCodecError(f"output path is a directory: {target}")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{suffix}", dir=directory)
    os.close(fd)
    try:
        yield Path(tmp_name)
        with open(tmp_name, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _default_mode())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
