"""Small, offline data sets for the lossless circuit codec.

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images, 17 grey levels
  0..16), split by a seeded permutation into 1437 training and 360 test images.
* ``gray16``: 8-bit grayscale (ITU-R 601 luma) 16x16 patches cut from the development photos in
  ``shared/data/images``, split *by image* (:data:`GRAY_TRAIN_IMAGES` / :data:`GRAY_TEST_IMAGES`).

scikit-learn is a development dependency, needed only for ``digits``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from neuralcodec.errors import MediaError

#: ``shared/data`` next to the repository checkout.
SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"

#: Development photos used for training the gray models (relative to ``shared/data``).
GRAY_TRAIN_IMAGES = tuple(
    f"images/mate/{n}.png"
    for n in ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops",
              "TwoWings", "YellowFlower")
) + ("images/skimage/chelsea.png", "images/skimage/rocket.png")
#: Held-out photos (never used for fitting).
GRAY_TEST_IMAGES = ("images/mate/Storm.png", "images/mate/Wood.png", "images/skimage/astronaut.png",
                    "images/skimage/camera.png", "images/skimage/coffee.png")


def digits_split(num_test: int = 360, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train ``[N, 64]``, test ``[num_test, 64]``) int64 digits with values in [0, 16]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MediaError("the digits data set needs scikit-learn (pip install scikit-learn)") from exc
    x = torch.from_numpy(load_digits().data.astype(np.int64))
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    return x[perm[num_test:]], x[perm[:num_test]]


def load_gray(path: str | Path) -> np.ndarray:
    """An image file as 8-bit grayscale ``uint8 [H, W]`` (colour converted to luma)."""
    from neuralcodec.media.image import load_image

    t = load_image(path, mode="gray")
    return np.rint(t[0].numpy().astype(np.float64) * 255.0).astype(np.uint8)


def gray_patches(paths, patch: int = 16, stride: int | None = None) -> torch.Tensor:
    """All complete ``patch x patch`` patches (step ``stride``, default ``patch``) of the images:
    int64 ``[N, patch * patch]`` in raster order within each patch."""
    step = stride or patch
    rows = []
    for p in paths:
        img = load_gray(p)
        h, w = img.shape
        for i in range(0, h - patch + 1, step):
            for j in range(0, w - patch + 1, step):
                rows.append(img[i : i + patch, j : j + patch].reshape(-1))
    if not rows:
        raise MediaError("no complete patch in the given images")
    return torch.from_numpy(np.stack(rows).astype(np.int64))


def shared_paths(names, root: Path | None = None) -> list[Path]:
    """Absolute paths of ``names`` under ``shared/data`` (MediaError if the folder is missing)."""
    base = root or SHARED_DATA
    if not base.is_dir():
        raise MediaError(f"development data not found at {base}")
    return [base / n for n in names]
