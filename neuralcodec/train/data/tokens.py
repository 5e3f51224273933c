"""Token training data: folders written by ``codec tokenize`` -> random crops of codes ``[Q, T]``.

Used to fit entropy models (token priors) and, downstream, token language models. All codes are
held in memory (int16: an hour of 50 Hz x 3-codebook speech is about 1 MB). Utterances are split
into train/validation by their manifest key with the same stable hash as the audio data, so the
split never overlaps. Batches are ``[B, Q, T]`` int64; shorter items are padded with ``-1``
("absent"), which token priors treat as costing nothing.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Sequence

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from neuralcodec.errors import NeuralCodecError
from neuralcodec.train.data.files import split_by_key


def load_token_folders(folders: str | Path | Sequence[str | Path], fingerprint: str | None = None
                       ) -> list[tuple[Tensor, str]]:
    """``(codes [Q, F] int16/int32, key)`` for every utterance in one or more tokenize output folders.

    ``fingerprint`` (hex), when given, must match each folder's ``tokenizer.json``: tokens of
    another model would train a prior for the wrong code distribution.
    """
    from neuralcodec.tokenize import iter_tokens

    roots = [folders] if isinstance(folders, (str, Path)) else list(folders)
    items: list[tuple[Tensor, str]] = []
    for root in map(Path, roots):
        info_path = root / "tokenizer.json"
        if not info_path.is_file():
            raise NeuralCodecError(f"{root} is not a 'codec tokenize' output folder (no tokenizer.json)")
        info = json.loads(info_path.read_text())
        if fingerprint is not None and info.get("fingerprint") != fingerprint:
            raise NeuralCodecError(f"{root} holds tokens of model {info.get('model')!r} (fingerprint "
                                   f"{info.get('fingerprint')}), not of the model being refit ({fingerprint})")
        for record, codes in iter_tokens(root):
            items.append((codes, f"{root.name}/{record['key']}"))
    if not items:
        raise NeuralCodecError(f"no tokens found in {roots}")
    return items


def pad_codes(batch: Sequence[Tensor]) -> Tensor:
    """Stack ``[Q, T_i]`` code tensors into ``[B, Q, max T]`` int64, padding with ``-1``."""
    q = batch[0].shape[0]
    length = max(c.shape[1] for c in batch)
    out = torch.full((len(batch), q, length), -1, dtype=torch.int64)
    for i, codes in enumerate(batch):
        out[i, :, : codes.shape[1]] = codes.to(torch.int64)
    return out


class TokenCrops(Dataset):
    """Random ``segment_frames`` crops (training) or the first ``segment_frames`` (validation).

    Training crops come from an item drawn uniformly (``weighting="item"``: every utterance counts
    the same) or in proportion to its length (``"frames"``: every frame counts the same, as when
    fitting on all windows of the data; short crops then sample the frames uniformly)."""

    def __init__(self, items: Sequence[Tensor], segment_frames: int, items_per_epoch: int | None, train: bool,
                 weighting: str = "item") -> None:
        if weighting not in ("item", "frames"):
            raise ValueError(f"weighting must be 'item' or 'frames', got {weighting!r}")
        self.items = [c for c in items if c.shape[1] >= 2]
        self.segment = int(segment_frames)
        self.train = train
        self.length = int(items_per_epoch) if (train and items_per_epoch) else len(self.items)
        self.cum_frames = list(itertools.accumulate(c.shape[1] for c in self.items)) if weighting == "frames" else None

    def __len__(self) -> int:
        return self.length

    def _draw(self) -> int:
        if self.cum_frames is None:
            return random.randrange(len(self.items))
        return random.choices(range(len(self.items)), cum_weights=self.cum_frames)[0]

    def __getitem__(self, index: int) -> Tensor:
        codes = self.items[self._draw() if self.train else index]
        frames = codes.shape[1]
        if frames <= self.segment:
            return codes
        start = random.randrange(frames - self.segment + 1) if self.train else 0
        return codes[:, start : start + self.segment]


class TokenDataModule(L.LightningDataModule):
    """Batches of codes ``[B, Q, segment_frames]`` from ``codec tokenize`` folders (validation: the
    first ``val_segment_frames``, default ``segment_frames``, of each held-out item)."""

    def __init__(self, token_dirs: str | Sequence[str], segment_frames: int = 250, batch_size: int = 32,
                 val_fraction: float = 0.05, num_workers: int = 0, items_per_epoch: int = 20_000,
                 fingerprint: str | None = None, weighting: str = "item", val_segment_frames: int | None = None) -> None:
        super().__init__()
        self.token_dirs = token_dirs
        self.segment_frames = int(segment_frames)
        self.batch_size = int(batch_size)
        self.val_fraction = float(val_fraction)
        self.num_workers = int(num_workers)
        self.items_per_epoch = int(items_per_epoch)
        self.fingerprint = fingerprint
        self.weighting = weighting
        self.val_segment_frames = int(val_segment_frames or segment_frames)
        self.train_set: TokenCrops | None = None
        self.val_set: TokenCrops | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        items = load_token_folders(self.token_dirs, self.fingerprint)
        train, val = split_by_key([(codes, key) for codes, key in items], self.val_fraction)
        self.train_set = TokenCrops([c for c, _ in train], self.segment_frames, self.items_per_epoch, True, self.weighting)
        self.val_set = TokenCrops([c for c, _ in val], self.val_segment_frames, None, False)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=False, collate_fn=pad_codes,
                          num_workers=self.num_workers, drop_last=True, persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None
        return DataLoader(self.val_set, batch_size=self.batch_size, shuffle=False, collate_fn=pad_codes,
                          num_workers=0)
