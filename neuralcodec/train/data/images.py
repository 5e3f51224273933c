"""Image training data: folders of photos -> random crops ``[3, S, S]`` in [0, 1].

* Files are split into train/validation **by file** with a stable hash of the path relative to
  its root (the split never overlaps and does not move when files are added).
* Images are decoded once (8-bit, grayscale replicated to RGB) and kept in memory as uint8;
  photo corpora for this codec are small (hundreds of MB at most).
* A training item is a random crop with random down-scaling (a window of ``S / s`` pixels
  resized to ``S`` with antialiasing, ``s`` log-uniform in ``[min_scale, 1]``: more distinct
  content from few photos, and fewer camera/JPEG artefacts at the scales that matter) and a
  random horizontal flip. Images smaller than the window are edge-padded.
* Validation items are deterministic centre crops of ``val_crop`` (a multiple of 64).
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from neuralcodec.errors import MediaError, NeuralCodecError
from neuralcodec.train.data.files import find_files, split_by_key

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


def list_image_files(roots: str | Path | Sequence[str | Path]) -> list[tuple[Path, str]]:
    """All image files under ``roots`` as ``(path, key)``; ``key`` is root-relative (split hash input)."""
    return find_files(roots, IMAGE_EXTENSIONS, "training image")


def load_rgb_uint8(path: Path) -> Tensor:
    """uint8 ``[3, H, W]`` (grayscale replicated); unreadable files raise MediaError."""
    from neuralcodec.media import load_image

    x = load_image(path, mode="rgb")
    return torch.round(x * 255.0).to(torch.uint8)


def random_crop(image: Tensor, size: int, min_scale: float, rng: random.Random) -> Tensor:
    """Random down-scaled, flipped crop of uint8 ``image [3, H, W]`` -> float ``[3, size, size]`` in [0, 1]."""
    _, height, width = image.shape
    scale = math.exp(rng.uniform(math.log(min_scale), 0.0)) if min_scale < 1.0 else 1.0
    window = min(max(size, int(round(size / scale))), max(height, width, size))
    wh, ww = min(window, height), min(window, width)
    top, left = rng.randint(0, height - wh), rng.randint(0, width - ww)
    crop = image[:, top:top + wh, left:left + ww].float().div_(255.0)
    if wh < window or ww < window:
        crop = F.pad(crop[None], (0, window - ww, 0, window - wh), mode="replicate")[0]
    if window != size:
        crop = F.interpolate(crop[None], size=(size, size), mode="bilinear", antialias=True,
                             align_corners=False)[0].clamp_(0.0, 1.0)
    if rng.random() < 0.5:
        crop = crop.flip(-1)
    return crop.contiguous()


def center_crop(image: Tensor, size: int) -> Tensor:
    """Centre ``size x size`` crop (edge-padded if smaller) of uint8 ``[3, H, W]`` -> float in [0, 1]."""
    _, height, width = image.shape
    wh, ww = min(size, height), min(size, width)
    top, left = (height - wh) // 2, (width - ww) // 2
    crop = image[:, top:top + wh, left:left + ww].float().div_(255.0)
    if wh < size or ww < size:
        crop = F.pad(crop[None], (0, size - ww, 0, size - wh), mode="replicate")[0]
    return crop.contiguous()


class ImageCropDataset(Dataset):
    """``items_per_epoch`` random crops from in-memory images (a fresh crop every access)."""

    def __init__(self, images: list[Tensor], crop_size: int, items_per_epoch: int, min_scale: float) -> None:
        if not images:
            raise NeuralCodecError("no training images")
        self.images = images
        self.crop_size = int(crop_size)
        self.items_per_epoch = int(items_per_epoch)
        self.min_scale = float(min_scale)
        # pick images in proportion to their area (large photos hold more distinct crops)
        areas = np.array([img.shape[1] * img.shape[2] for img in images], dtype=np.float64)
        self.cumulative = np.cumsum(areas / areas.sum())

    def __len__(self) -> int:
        return self.items_per_epoch

    def __getitem__(self, index: int) -> Tensor:
        rng = random.Random(torch.randint(0, 2**62, ()).item())  # torch's RNG: seeded per run and per worker
        which = int(np.searchsorted(self.cumulative, rng.random(), side="right"))
        image = self.images[min(which, len(self.images) - 1)]
        return random_crop(image, self.crop_size, self.min_scale, rng)


class ImageFolderDataModule(L.LightningDataModule):
    """Random crops of the photos under ``train_dir`` (one folder or a list), validation by file."""

    def __init__(self, train_dir: str | Sequence[str], crop_size: int = 256, batch_size: int = 8,
                 num_workers: int = 0, val_fraction: float = 0.1, val_crop: int = 256, max_val_files: int = 8,
                 items_per_epoch: int = 4000, min_scale: float = 0.5) -> None:
        super().__init__()
        if crop_size % 64 or val_crop % 64:
            raise NeuralCodecError("crop_size and val_crop must be multiples of 64 (the codec's stride)")
        if not 0 < min_scale <= 1:
            raise NeuralCodecError("min_scale must lie in (0, 1]")
        self.train_dir = train_dir
        self.crop_size, self.batch_size, self.num_workers = int(crop_size), int(batch_size), int(num_workers)
        self.val_fraction, self.val_crop, self.max_val_files = float(val_fraction), int(val_crop), int(max_val_files)
        self.items_per_epoch, self.min_scale = int(items_per_epoch), float(min_scale)
        self.train_set: ImageCropDataset | None = None
        self.val_items: list[Tensor] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        files = list_image_files(self.train_dir)
        train_files, val_files = split_by_key(files, self.val_fraction)
        images = []
        for path, _ in train_files:
            try:
                images.append(load_rgb_uint8(path))
            except MediaError:  # a broken file in a large corpus is skipped, not fatal
                continue
        self.train_set = ImageCropDataset(images, self.crop_size, self.items_per_epoch, self.min_scale)
        self.val_items = []
        for path, _ in val_files[: self.max_val_files]:
            try:
                self.val_items.append(center_crop(load_rgb_uint8(path), self.val_crop))
            except MediaError:
                continue

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=False, drop_last=True,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_items, batch_size=1, shuffle=False, num_workers=0)


__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageCropDataset",
    "ImageFolderDataModule",
    "center_crop",
    "list_image_files",
    "random_crop",
]
