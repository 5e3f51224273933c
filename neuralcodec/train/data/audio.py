"""Audio training data: folders of wav/flac/ogg -> random fixed-length crops at the model rate.

* Files are split into train/validation **by file** with a stable hash of the path relative to
  its root, so the split never overlaps and does not move when files are added.
* Training crops are read with a seek (only the needed frames are decoded), resampled to the
  model rate, mixed down to mono (or one random channel for per-channel models) and loudness
  normalised to a random RMS level in ``loudness_db`` (augmentation and level invariance).
* Validation uses the first ``val_seconds`` of each validation file, deterministically.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Sequence

import lightning as L
import numpy as np
import soundfile as sf
import torch
import torchaudio
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from neuralcodec.errors import NeuralCodecError
from neuralcodec.train.data.files import find_files, split_by_key

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


def list_audio_files(roots: str | Path | Sequence[str | Path], min_seconds: float = 0.5) -> list[tuple[Path, str, float]]:
    """Readable audio files of at least ``min_seconds`` under ``roots`` as ``(path, key, duration_s)``."""
    found = []
    for path, key in find_files(roots, AUDIO_EXTENSIONS, "training audio"):
        try:
            info = sf.info(str(path))
        except Exception:  # unreadable files are skipped, not fatal, in a large corpus
            continue
        duration = info.frames / info.samplerate if info.samplerate else 0.0
        if duration >= min_seconds:
            found.append((path, key, duration))
    if not found:
        raise NeuralCodecError(f"no audio files of at least {min_seconds} s under {roots}")
    return found


_RESAMPLERS: dict[tuple[int, int], torchaudio.transforms.Resample] = {}


def _fast_resample(wav: Tensor, orig: int, new: int) -> Tensor:
    """Training-time resampling: torchaudio's default windowed sinc, kernel cached per rate pair.

    Cheaper than the media layer's Kaiser-best filter (which the codec uses at inference); the
    small extra aliasing is irrelevant for random training crops.
    """
    key = (orig, new)
    if key not in _RESAMPLERS:
        _RESAMPLERS[key] = torchaudio.transforms.Resample(orig, new)
    return _RESAMPLERS[key](wav)


def _read_segment(path: Path, start_s: float, seconds: float, sample_rate: int) -> Tensor:
    """Decode ``seconds`` from ``start_s`` of ``path`` and resample: ``[C, N]`` float32 at ``sample_rate``."""
    try:
        with sf.SoundFile(str(path)) as f:
            rate = f.samplerate
            f.seek(min(int(start_s * rate), max(f.frames - 1, 0)))
            data = f.read(int(math.ceil(seconds * rate)) + 64, dtype="float32", always_2d=True)
    except Exception as exc:  # name the file: a bare libsndfile error from a worker says nothing
        raise NeuralCodecError(f"cannot read training audio {path} (changed or removed since the file list "
                               f"was made?): {type(exc).__name__}") from exc
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    return _fast_resample(wav, rate, sample_rate) if rate != sample_rate else wav


class AudioSegmentDataset(Dataset):
    """Random crops (training) or fixed first-seconds excerpts (validation) as ``[1, N]`` tensors.

    Training items are drawn with probability proportional to file duration; ``items_per_epoch``
    sets the epoch length. Crops are zero-padded when a file is shorter than the segment.
    """

    def __init__(self, files: list[tuple[Path, str, float]], sample_rate: int, segment_seconds: float,
                 train: bool, items_per_epoch: int = 10_000, loudness_db: tuple[float, float] = (-28.0, -16.0),
                 channel_mode: str = "mono", seed: int = 0) -> None:
        if channel_mode not in ("mono", "random"):
            raise ValueError("channel_mode must be 'mono' or 'random'")
        self.files = files
        self.sample_rate = sample_rate
        self.segment = int(round(segment_seconds * sample_rate))
        self.train = train
        self.items_per_epoch = items_per_epoch if train else len(files)
        self.loudness_db = loudness_db
        self.channel_mode = channel_mode
        self.seed = seed
        weights = np.array([d for _, _, d in files], dtype=np.float64)
        self.cumulative = np.cumsum(weights / weights.sum())

    def __len__(self) -> int:
        return self.items_per_epoch

    def __getitem__(self, index: int) -> Tensor:
        # Training crops draw from torch's RNG (seeded by Lightning's seed_everything, re-seeded per
        # epoch in DataLoader workers): reproducible runs, fresh crops every epoch.
        seed = int(torch.randint(0, 2**62, ()).item()) if self.train else self.seed * 10_000_019 + index
        rng = random.Random(seed)
        for _ in range(8):  # retry near-silent crops
            if self.train:
                file_index = int(np.searchsorted(self.cumulative, rng.random(), side="right"))
                path, _, duration = self.files[min(file_index, len(self.files) - 1)]
                seconds = self.segment / self.sample_rate
                start = rng.uniform(0.0, max(duration - seconds, 0.0))
            else:
                path, _, duration = self.files[index]
                start, seconds = 0.0, self.segment / self.sample_rate
            wav = _read_segment(path, start, seconds, self.sample_rate)
            if self.channel_mode == "mono" or wav.shape[0] == 1:
                wav = wav.mean(dim=0, keepdim=True)
            else:
                wav = wav[rng.randrange(wav.shape[0])].unsqueeze(0)
            wav = wav[:, : self.segment]
            if wav.shape[1] < self.segment:
                wav = torch.nn.functional.pad(wav, (0, self.segment - wav.shape[1]))
            rms = wav.pow(2).mean().sqrt().item()
            if rms > 1e-3 or not self.train:
                break
        target_db = rng.uniform(*self.loudness_db) if self.train else sum(self.loudness_db) / 2
        if rms > 1e-5:
            wav = wav * (10 ** (target_db / 20) / rms)
        peak = wav.abs().max().item()
        if peak > 0.99:
            wav = wav * (0.99 / peak)
        return wav


class AudioFolderDataModule(L.LightningDataModule):
    """Lightning data module over one or more folders of audio (see module docstring for the policy)."""

    def __init__(self, train_dir: str | Sequence[str], sample_rate: int, segment_seconds: float = 1.0,
                 batch_size: int = 8, num_workers: int = 0, val_fraction: float = 0.02, val_seconds: float = 4.0,
                 max_val_files: int = 16, items_per_epoch: int = 10_000, channel_mode: str = "mono",
                 loudness_db: tuple[float, float] = (-28.0, -16.0), min_seconds: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        self.train_dir = train_dir
        self.sample_rate = sample_rate
        self.segment_seconds = segment_seconds
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.val_seconds = val_seconds
        self.max_val_files = max_val_files
        self.items_per_epoch = items_per_epoch
        self.channel_mode = channel_mode
        self.loudness_db = tuple(loudness_db)
        self.min_seconds = min_seconds
        self.seed = seed
        self.train_set: AudioSegmentDataset | None = None
        self.val_set: AudioSegmentDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        files = list_audio_files(self.train_dir, self.min_seconds)
        train, val = split_by_key(files, self.val_fraction)
        val = sorted(val, key=lambda f: f[1])[: self.max_val_files]
        self.train_set = AudioSegmentDataset(train, self.sample_rate, self.segment_seconds, True, self.items_per_epoch,
                                             self.loudness_db, self.channel_mode, self.seed)
        self.val_set = AudioSegmentDataset(val, self.sample_rate, self.val_seconds, False, len(val),
                                           self.loudness_db, "mono", self.seed) if val else None

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
                          drop_last=True, persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=1, shuffle=False, num_workers=0)
