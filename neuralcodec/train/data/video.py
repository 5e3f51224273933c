"""Video training data: short clips ``[T, 3, S, S]`` in [0, 1] from real y4m video and from still
photos with synthetic camera motion.

* Real clips: ``T`` consecutive frames (temporal stride 1 or 2 when the video is long enough) of a
  random y4m file under ``video_dirs``, one random window (random down-scaling in
  ``[min_scale, 1]``, as for images) cropped from every frame, random horizontal flip. Frames are
  read with seeks (:class:`~neuralcodec.media.Y4MReader`): memory holds one clip, never a video.
* Synthetic clips: a photo (from ``image_dirs``, kept in memory as uint8) seen through a virtual
  camera that pans, zooms and rotates a little every frame (constant velocity per clip), sampled
  with ``grid_sample``; with probability ``object_prob`` a second crop moves independently over it
  (local motion and occlusion, which pure camera motion lacks).
* Split by file (:func:`~neuralcodec.train.data.files.split_by_key`); videos whose file name is in
  ``val_videos`` are validation only. Validation items are the first ``val_clip_length`` frames,
  centre crop ``val_crop``, of each validation video.
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
from neuralcodec.train.data.images import IMAGE_EXTENSIONS, load_rgb_uint8

VIDEO_EXTENSIONS = (".y4m",)


def _as_list(roots: str | Path | Sequence[str | Path] | None) -> list[str | Path]:
    if roots is None:
        return []
    if isinstance(roots, (str, Path)):
        return [roots]
    out, seen = [], set()
    for root in roots:  # the same folder named twice (env default == explicit) is used once
        key = Path(root).expanduser().resolve()
        if key not in seen:
            seen.add(key)
            out.append(root)
    return out


def read_frames(path: Path, start: int, count: int, stride: int = 1) -> Tensor:
    """uint8 RGB frames ``[count, 3, H, W]`` of a y4m file (frames ``start + i * stride``)."""
    from neuralcodec.media import Y4MReader, yuv_to_rgb

    with Y4MReader(path) as reader:
        full = reader.header.color_range == "full"
        frames = [yuv_to_rgb(reader.read_frame(start + i * stride), "bt601", full) for i in range(count)]
    return torch.round(torch.stack(frames) * 255.0).to(torch.uint8)


def crop_clip(frames: Tensor, size: int, min_scale: float, rng: random.Random) -> Tensor:
    """One random down-scaled window of uint8 ``frames [T, 3, H, W]`` -> float ``[T, 3, size, size]``."""
    _, _, height, width = frames.shape
    scale = math.exp(rng.uniform(math.log(min_scale), 0.0)) if min_scale < 1.0 else 1.0
    window = min(max(size, int(round(size / scale))), max(height, width, size))
    wh, ww = min(window, height), min(window, width)
    top, left = rng.randint(0, height - wh), rng.randint(0, width - ww)
    clip = frames[:, :, top:top + wh, left:left + ww].float().div_(255.0)
    if wh < window or ww < window:
        clip = F.pad(clip, (0, window - ww, 0, window - wh), mode="replicate")
    if window != size:
        clip = F.interpolate(clip, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    if rng.random() < 0.5:
        clip = clip.flip(-1)
    return clip.clamp_(0.0, 1.0).contiguous()


def _camera_grid(length: int, size: int, image_hw: tuple[int, int], center: tuple[float, float],
                 velocity: tuple[float, float], zoom_rate: float, rotation_rate: float) -> Tensor:
    """``grid_sample`` grids ``[T, size, size, 2]`` of a camera moving at constant velocity.

    Frame ``t`` sees the ``size x size`` window centred at ``center + t * velocity`` (pixels of the
    image), magnified by ``exp(t * zoom_rate)`` and rotated by ``t * rotation_rate`` radians.
    """
    h, w = image_hw
    offs = torch.arange(size, dtype=torch.float32) - (size - 1) / 2.0
    v, u = torch.meshgrid(offs, offs, indexing="ij")
    t = torch.arange(length, dtype=torch.float32)[:, None, None]
    zoom = torch.exp(-zoom_rate * t)  # zooming in = the window shrinks
    angle = rotation_rate * t
    cos, sin = torch.cos(angle), torch.sin(angle)
    px = center[0] + velocity[0] * t + zoom * (cos * u - sin * v)
    py = center[1] + velocity[1] * t + zoom * (sin * u + cos * v)
    # align_corners=False: pixel i covers [i - 1/2, i + 1/2]
    return torch.stack([(px + 0.5) * (2.0 / w) - 1.0, (py + 0.5) * (2.0 / h) - 1.0], dim=-1)


def synthetic_clip(photo: Tensor, length: int, size: int, rng: random.Random, *, min_scale: float = 0.5,
                   max_pan: float = 6.0, max_zoom: float = 0.03, max_rotation: float = 1.0,
                   object_prob: float = 0.3) -> Tensor:
    """Float ``[length, 3, size, size]`` camera-motion clip of uint8 ``photo [3, H, W]``.

    ``max_pan``: pixels per frame (at output resolution), ``max_zoom``: log-zoom per frame,
    ``max_rotation``: degrees per frame; velocities are uniform in ``+-max`` per clip.
    """
    image = photo.float().div(255.0)[None]
    scale = math.exp(rng.uniform(math.log(min_scale), 0.0)) if min_scale < 1.0 else 1.0
    _, _, h, w = image.shape
    h2, w2 = max(size, round(h * scale)), max(size, round(w * scale))
    if (h2, w2) != (h, w):
        image = F.interpolate(image, size=(h2, w2), mode="bilinear", antialias=True, align_corners=False)
    margin = size / 2 + max_pan * length
    cx = rng.uniform(min(margin, w2 / 2), max(w2 - margin, w2 / 2))
    cy = rng.uniform(min(margin, h2 / 2), max(h2 - margin, h2 / 2))
    vel = (rng.uniform(-max_pan, max_pan), rng.uniform(-max_pan, max_pan))
    grid = _camera_grid(length, size, (h2, w2), (cx, cy), vel, rng.uniform(-max_zoom, max_zoom),
                        math.radians(rng.uniform(-max_rotation, max_rotation)))
    clip = F.grid_sample(image.expand(length, -1, -1, -1), grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)
    if rng.random() < object_prob:  # an independently moving foreground patch
        side = rng.randint(size // 4, size // 2)
        ox, oy = rng.uniform(side / 2, w2 - side / 2), rng.uniform(side / 2, h2 - side / 2)
        patch = F.grid_sample(image, _camera_grid(1, side, (h2, w2), (ox, oy), (0.0, 0.0), 0.0, 0.0),
                              mode="bilinear", padding_mode="reflection", align_corners=False)
        offs = torch.arange(side, dtype=torch.float32) - (side - 1) / 2
        soft = (1.0 - offs.abs() / (side / 2)).clamp(0, 1).mul(4).clamp(max=1)
        alpha = (soft[:, None] * soft[None, :])[None, None]
        pvx, pvy = rng.uniform(-2 * max_pan, 2 * max_pan), rng.uniform(-2 * max_pan, 2 * max_pan)
        x0, y0 = rng.uniform(0, size - side), rng.uniform(0, size - side)
        for t in range(length):
            left = int(round(min(max(x0 + pvx * t, 0), size - side)))
            top = int(round(min(max(y0 + pvy * t, 0), size - side)))
            region = clip[t:t + 1, :, top:top + side, left:left + side]
            clip[t:t + 1, :, top:top + side, left:left + side] = alpha * patch + (1 - alpha) * region
    if rng.random() < 0.5:
        clip = clip.flip(-1)
    return clip.clamp_(0.0, 1.0).contiguous()


class VideoClipDataset(Dataset):
    """``items_per_epoch`` random clips: real (``1 - synthetic_fraction``) or synthetic."""

    def __init__(self, videos: list[tuple[Path, int, int, int]], photos: list[Tensor], clip_length: int,
                 crop_size: int, items_per_epoch: int, synthetic_fraction: float, min_scale: float = 0.5,
                 max_pan: float = 6.0, max_zoom: float = 0.03, max_rotation: float = 1.0,
                 object_prob: float = 0.3) -> None:
        self.videos = [v for v in videos if v[1] >= clip_length]
        self.photos = photos
        if not self.videos and not self.photos:
            raise NeuralCodecError(f"no training videos with at least {clip_length} frames and no photos")
        self.synthetic_fraction = 1.0 if not self.videos else (0.0 if not self.photos else float(synthetic_fraction))
        self.clip_length, self.crop_size = int(clip_length), int(crop_size)
        self.items_per_epoch, self.min_scale = int(items_per_epoch), float(min_scale)
        self.motion = {"max_pan": max_pan, "max_zoom": max_zoom, "max_rotation": max_rotation,
                       "object_prob": object_prob}
        # videos in proportion to frames x area, photos in proportion to area
        if self.videos:
            weights = np.array([n * h * w for _, n, h, w in self.videos], dtype=np.float64)
            self.video_cdf = np.cumsum(weights / weights.sum())
        if self.photos:
            areas = np.array([p.shape[1] * p.shape[2] for p in self.photos], dtype=np.float64)
            self.photo_cdf = np.cumsum(areas / areas.sum())

    def __len__(self) -> int:
        return self.items_per_epoch

    def __getitem__(self, index: int) -> Tensor:
        rng = random.Random(torch.randint(0, 2**62, ()).item())
        if rng.random() < self.synthetic_fraction:
            which = min(int(np.searchsorted(self.photo_cdf, rng.random(), side="right")), len(self.photos) - 1)
            return synthetic_clip(self.photos[which], self.clip_length, self.crop_size, rng,
                                  min_scale=self.min_scale, **self.motion)
        which = min(int(np.searchsorted(self.video_cdf, rng.random(), side="right")), len(self.videos) - 1)
        path, frames, _, _ = self.videos[which]
        stride = 2 if frames >= 2 * self.clip_length and rng.random() < 0.5 else 1
        start = rng.randint(0, frames - 1 - (self.clip_length - 1) * stride)
        return crop_clip(read_frames(path, start, self.clip_length, stride), self.crop_size, self.min_scale, rng)


class VideoClipDataModule(L.LightningDataModule):
    """Clips ``[B, T, 3, S, S]`` from y4m folders and camera-motion clips from photo folders."""

    def __init__(self, video_dirs: str | Sequence[str] | None = None, image_dirs: str | Sequence[str] | None = None,
                 clip_length: int = 5, crop_size: int = 128, batch_size: int = 4, num_workers: int = 1,
                 synthetic_fraction: float = 0.5, val_videos: Sequence[str] = (), val_fraction: float = 0.0,
                 val_crop: int = 128, val_clip_length: int = 5, items_per_epoch: int = 2000,
                 min_scale: float = 0.5, max_pan: float = 6.0, max_zoom: float = 0.03, max_rotation: float = 1.0,
                 object_prob: float = 0.3, max_photos: int = 2000) -> None:
        super().__init__()
        if crop_size % 64 or val_crop % 64:
            raise NeuralCodecError("crop_size and val_crop must be multiples of 64 (the codec's stride)")
        if clip_length < 2 or val_clip_length < 1:
            raise NeuralCodecError("clip_length must be >= 2 (an intra frame and at least one P-frame)")
        if not 0 <= synthetic_fraction <= 1 or not 0 < min_scale <= 1:
            raise NeuralCodecError("synthetic_fraction must lie in [0, 1] and min_scale in (0, 1]")
        self.video_dirs, self.image_dirs = _as_list(video_dirs), _as_list(image_dirs)
        if not self.video_dirs and not self.image_dirs:
            raise NeuralCodecError("give video_dirs and/or image_dirs")
        self.clip_length, self.crop_size = int(clip_length), int(crop_size)
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.synthetic_fraction = float(synthetic_fraction)
        self.val_videos, self.val_fraction = set(val_videos), float(val_fraction)
        self.val_crop, self.val_clip_length = int(val_crop), int(val_clip_length)
        self.items_per_epoch, self.min_scale, self.max_photos = int(items_per_epoch), float(min_scale), int(max_photos)
        self.motion = {"max_pan": max_pan, "max_zoom": max_zoom, "max_rotation": max_rotation,
                       "object_prob": object_prob}
        self.train_set: VideoClipDataset | None = None
        self.val_items: list[Tensor] = []

    @staticmethod
    def _video_info(path: Path) -> tuple[Path, int, int, int] | None:
        from neuralcodec.media import Y4MReader

        try:
            with Y4MReader(path) as reader:
                return path, reader.num_frames, reader.height, reader.width
        except MediaError:  # unsupported or broken files are skipped, not fatal
            return None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_videos, val_videos = [], []
        if self.video_dirs:
            files = find_files(self.video_dirs, VIDEO_EXTENSIONS, "training video")
            held = [f for f in files if f[0].name in self.val_videos]
            train, val = split_by_key([f for f in files if f[0].name not in self.val_videos], self.val_fraction)
            train_videos = [i for i in (self._video_info(p) for p, _ in train) if i is not None]
            val_videos = [i for i in (self._video_info(p) for p, _ in held + val) if i is not None]
        photos = []
        if self.image_dirs:
            for path, _ in find_files(self.image_dirs, IMAGE_EXTENSIONS, "training image")[: self.max_photos]:
                try:
                    photos.append(load_rgb_uint8(path))
                except MediaError:
                    continue
        self.train_set = VideoClipDataset(train_videos, photos, self.clip_length, self.crop_size,
                                          self.items_per_epoch, self.synthetic_fraction, self.min_scale, **self.motion)
        self.val_items = []
        for path, frames, height, width in val_videos:
            count = min(frames, self.val_clip_length)
            clip = read_frames(path, 0, count).float().div_(255.0)
            size = min(self.val_crop, height // 64 * 64 or 64, width // 64 * 64 or 64)
            top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
            self.val_items.append(clip[:, :, top:top + size, left:left + size].contiguous())

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=False, drop_last=True,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_items, batch_size=1, shuffle=False, num_workers=0)


__all__ = ["VIDEO_EXTENSIONS", "VideoClipDataModule", "VideoClipDataset", "crop_clip", "read_frames",
           "synthetic_clip"]
