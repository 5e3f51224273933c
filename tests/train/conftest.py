"""Fixtures shared by the training tests."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from PIL import Image


@pytest.fixture
def audio_dir(tmp_path):
    """Six 1 s, 16 kHz tone clips (a tiny training folder; data modules resample to the model rate)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "audio"
    folder.mkdir()
    for i in range(6):
        t = np.arange(16000) / 16000
        x = 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(str(folder / f"clip{i}.wav"), x, 16000)
    return folder


def smooth_photo(seed: int, size=(160, 120)) -> np.ndarray:
    """A smooth colour field with a few edges, uint8 ``[H, W, 3]``: compressible, unlike white noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]] / max(size)
    channels = [np.sin(2 * np.pi * (rng.random() * 3 * xx + rng.random() * 3 * yy) + rng.random() * 6) for _ in range(3)]
    img = 0.5 + 0.35 * np.stack(channels, axis=-1)
    img[(xx - 0.5) ** 2 + (yy - 0.4) ** 2 < 0.04] *= 0.5
    return (img.clip(0, 1) * 255).astype(np.uint8)


@pytest.fixture
def photo():
    """The :func:`smooth_photo` generator, for tests that need an image array."""
    return smooth_photo


@pytest.fixture
def image_dir(tmp_path):
    """Six synthetic RGB photos and one grayscale one (a tiny image training folder)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(smooth_photo(i)).save(folder / f"photo{i}.png")
    Image.fromarray(smooth_photo(9)[..., 0]).save(folder / "gray.png")  # grayscale is replicated
    return folder


@pytest.fixture(scope="module")
def tiny_codec_path(tmp_path_factory):
    """An exported (random-weight) tiny audio codec of the debug experiment's shape."""
    from omegaconf import OmegaConf

    from neuralcodec.codecs.registry import build_codec, save_codec
    from neuralcodec.train.run import compose

    cfg = compose(["experiment=debug"])

    codec = build_codec(OmegaConf.to_container(cfg.model.codec, resolve=True))
    folder = tmp_path_factory.mktemp("model")
    return save_codec(codec.eval().freeze_entropy_models(), folder / "tiny.safetensors")


@pytest.fixture(scope="module")
def token_dir(tiny_codec_path, tmp_path_factory):
    """``codec tokenize`` output of eight 0.75 s tone clips with :func:`tiny_codec_path` (token prior fits)."""
    from neuralcodec.tokenize import tokenize_folder

    rng = np.random.default_rng(1)
    audio = tmp_path_factory.mktemp("audio")
    for i in range(8):
        t = np.arange(12000) / 16000
        x = 0.3 * np.sin(2 * np.pi * (120 + 50 * i) * t) + 0.02 * rng.standard_normal(t.size)
        sf.write(str(audio / f"utt{i}.wav"), x, 16000)
    out = tmp_path_factory.mktemp("tokens")
    tokenize_folder(audio, out, model=str(tiny_codec_path), progress=False, accelerator="cpu")
    return out
