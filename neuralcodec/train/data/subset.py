"""A reproducible token-fitting subset of a corpus: a folder of symlinks to audio files.

Entropy-model refits (``experiment=speech_prior``, ``speech_circuit_prior``) tokenize a subset of the
training corpus rather than all of it: every file of some folders plus a seeded random sample of
others. This writes that subset as symlinks (``<folder>__<relative path>``), so ``codec tokenize``
reads it like any folder and the same command always picks the same files::

    python -m neuralcodec.train.data.subset DIR/speech OUT --all asterisk_en_allison asterisk_it_carlo \\
        --sample 300 fillets_cs klettres --seed 0
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path
from typing import Sequence

from neuralcodec.errors import NeuralCodecError
from neuralcodec.train.data.audio import AUDIO_EXTENSIONS
from neuralcodec.train.data.files import find_files


def make_subset(root: str | Path, output: str | Path, take_all: Sequence[str] = (),
                sample: Sequence[str] = (), per_folder: int = 300, seed: int = 0) -> list[Path]:
    """Link every audio file of the ``take_all`` sub-folders of ``root`` and ``per_folder`` files drawn
    (``random.Random(seed)``, over each folder's sorted file list, folders in the given order) from
    each ``sample`` sub-folder into ``output``; returns the links. Existing identical links are kept."""
    root, output = Path(root).expanduser(), Path(output).expanduser()
    if not take_all and not sample:
        raise NeuralCodecError("name at least one folder to take (--all) or to sample from (--sample)")
    rng = random.Random(seed)
    output.mkdir(parents=True, exist_ok=True)
    links = []
    for name, draw in [(n, False) for n in take_all] + [(n, True) for n in sample]:
        files = [path for path, _ in find_files(root / name, AUDIO_EXTENSIONS, "audio")]
        if draw and len(files) > per_folder:
            files = sorted(rng.sample(files, per_folder))
        for path in files:
            link = output / "__".join((name, *path.relative_to(root / name).parts))
            if link.is_symlink() and Path(os.readlink(link)) == path.resolve():
                links.append(link)
                continue
            if link.exists() or link.is_symlink():
                raise NeuralCodecError(f"{link} exists and is not a link to {path}")
            link.symlink_to(path.resolve())
            links.append(link)
    return links


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="corpus folder holding the named sub-folders (e.g. DIR/speech)")
    parser.add_argument("output", help="folder for the links (created)")
    parser.add_argument("--all", dest="take_all", nargs="*", default=[], help="sub-folders taken whole")
    parser.add_argument("--sample", nargs="*", default=[], help="sub-folders sampled from")
    parser.add_argument("--per-folder", type=int, default=300, help="files drawn per --sample folder (300)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    links = make_subset(args.root, args.output, args.take_all, args.sample, args.per_folder, args.seed)
    print(f"{len(links)} files linked in {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
