"""A tiny, randomly initialised audio codec for fast tests of the coding paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch

from neuralcodec.cli import main
from neuralcodec.codecs.registry import build_codec

TINY_CONFIG = {
    "codec": "audio",
    "name": "tiny-test",
    "sample_rate": 16000,
    "hop_length": 320,
    "latent_dim": 16,
    "chunk_seconds": 0.5,
    "encoder_margin_frames": 12,
    "decoder_margin_frames": 12,
    "encoder": {"channels": [32, 48], "depths": [1, 1], "strides": [2]},
    "decoder": {"type": "vocos", "dim": 48, "depth": 2, "upsample": 2},
    "quantizer": {"name": "rvq", "num_codebooks": 3, "codebook_size": 64, "codebook_dim": 4},
    "prior": {"context": "causal"},
}


def initialised_codec(config: dict):
    """A tiny codec from ``config``, seeded, its codebooks initialised and its entropy models frozen."""
    torch.manual_seed(0)
    codec = build_codec(config)
    # one training-mode pass initialises the codebooks (k-means) from real latents
    codec.train()
    with torch.no_grad():
        codec(torch.randn(4, 1, 16000) * 0.1)
    return codec.eval().freeze_entropy_models()


@pytest.fixture
def tiny_codec():
    return initialised_codec(TINY_CONFIG)


@pytest.fixture
def cli_round_trip(tmp_path, capsys):
    """``codec encode`` + ``decode`` + ``info --json`` of one file; checks that the decoded file keeps the
    input's sample rate, channel count and length, and returns ``(decoded_path, info_summary)``."""

    def run(src: Path, *encode_args: str) -> tuple[Path, dict]:
        out_bin, out_wav = tmp_path / "clip.bin", tmp_path / "clip.wav"
        assert main(["encode", str(src), str(out_bin), *encode_args]) == 0
        assert main(["decode", str(out_bin), str(out_wav)]) == 0
        capsys.readouterr()
        a, b = sf.info(str(src)), sf.info(str(out_wav))
        assert (b.samplerate, b.channels, b.frames) == (a.samplerate, a.channels, a.frames)
        assert main(["info", "--json", str(out_bin)]) == 0
        return out_wav, json.loads(capsys.readouterr().out)

    return run
