"""File discovery and the train/validation split shared by every data module.

Files are split **by file** with a stable hash of a root-relative key, so validation never
overlaps training and the split does not move when files are added elsewhere.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence, TypeVar

from neuralcodec.errors import NeuralCodecError

Item = TypeVar("Item", bound=tuple)


def find_files(roots: str | Path | Sequence[str | Path], extensions: Sequence[str], what: str
               ) -> list[tuple[Path, str]]:
    """Every file under ``roots`` whose suffix is in ``extensions`` as ``(path, key)``.

    ``key`` is ``<root folder name>/<path relative to root>`` (the split hash input).
    """
    if isinstance(roots, (str, Path)):
        roots = [roots]
    found = []
    for root in roots:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise NeuralCodecError(f"{what} folder not found: {root}")
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in extensions and path.is_file():
                found.append((path, f"{root.name}/{path.relative_to(root).as_posix()}"))
    if not found:
        raise NeuralCodecError(f"no {what} files under {', '.join(map(str, roots))}")
    return found


def split_by_key(items: list[Item], val_fraction: float) -> tuple[list[Item], list[Item]]:
    """Validation iff the SHA-1 of ``item[1]`` (the key), read as a fraction, is below ``val_fraction``."""
    train, val = [], []
    for item in items:
        h = int.from_bytes(hashlib.sha1(item[1].encode()).digest()[:8], "little") / 2**64
        (val if h < val_fraction else train).append(item)
    if not train:  # tiny folders: keep at least one training file
        train, val = val[:1], val[1:]
    return train, val
