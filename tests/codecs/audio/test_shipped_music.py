"""The shipped `music` model: loads with no download, round-trips a real stereo dev clip through the CLI."""

from __future__ import annotations


import pytest
import soundfile as sf
import torch

from neuralcodec.cli import main
from neuralcodec.bitstream import scan_bitstream
from neuralcodec.codecs.registry import PRETRAINED_DIR, available_models, load_codec
from neuralcodec.eval.scoring import score
from neuralcodec.media.audio import load_audio

pytestmark = pytest.mark.skipif("music" not in available_models(), reason="no shipped music model")

CLIP = ("music", "librosa", "kevin_macleod_vibe_ace.flac")


def test_shipped_model_properties():
    codec = load_codec("music")
    assert codec.sample_rate >= 32000 and codec.frame_rate == 50
    assert codec.num_codebooks == 8 and codec.codebook_size == 1024
    # quantizer dropout: one model, several rates (0.5 ... 4 kbit/s nominal)
    assert codec.nominal_bitrate() == 8 * 10 * 50


def _excerpt(shared_data, tmp_path, seconds: float = 4.0):
    """A 4 s stereo excerpt of a dev clip written as 44.1 kHz WAV (the CLI resamples to 32 kHz)."""
    data, rate = sf.read(str(shared_data.joinpath(*CLIP)), frames=int(44100 * 14), dtype="float32", always_2d=True)
    data = data[int(rate * 10):int(rate * (10 + seconds))]
    assert data.shape[1] == 2, "the dev clip is expected to be stereo"
    path = tmp_path / "excerpt.wav"
    sf.write(str(path), data, rate)
    return path


def test_cli_round_trip_stereo(shared_data, tmp_path, cli_round_trip):
    src = _excerpt(shared_data, tmp_path)
    out_wav, summary = cli_round_trip(src, "--model", "music")
    # two channels, each coded at <= 4 kbit/s nominal; the token prior keeps the payload below it
    assert summary["payload_bits_per_second"] < 2 * 4000
    # A broken or untrained model cannot reach this: the decoded spectrum follows the input's.
    ref, rate = load_audio(src, channels="mono")
    out, _ = load_audio(out_wav, channels="mono")
    decoded = score(out[0], ref[0], rate, speech=False)["mel"]
    silence = score(torch.zeros_like(ref[0]), ref[0], rate, speech=False)["mel"]
    noise = score(0.1 * torch.randn_like(ref[0]), ref[0], rate, speech=False)["mel"]
    assert decoded < 0.5 * min(silence, noise)


def test_lower_bitrate_gives_smaller_file(shared_data, tmp_path):
    src = _excerpt(shared_data, tmp_path, seconds=2.0)
    sizes = {}
    for kbps in (1.0, 4.0):
        out = tmp_path / f"clip_{kbps}.bin"
        assert main(["encode", str(src), str(out), "--model", "music", "--bitrate", str(kbps), "--quiet"]) == 0
        sizes[kbps] = out.stat().st_size
    assert sizes[1.0] < 0.5 * sizes[4.0]


def test_circuit_prior_codes_the_same_audio(shared_data, tmp_path):
    """The shipped circuit prior (`--entropy-model circuit`): recorded in the file, decoded with no
    option, same audio as the default token prior; the package stays under 40 MB."""
    assert (PRETRAINED_DIR / "music.safetensors").stat().st_size <= 40e6
    src = _excerpt(shared_data, tmp_path, seconds=2.0)
    for name in ("token-prior", "circuit"):
        assert main(["encode", str(src), str(tmp_path / f"{name}.bin"), "--model", "music", "--entropy-model", name,
                     "--quiet"]) == 0
        assert main(["decode", str(tmp_path / f"{name}.bin"), str(tmp_path / f"{name}.wav"), "--quiet"]) == 0
    assert scan_bitstream(tmp_path / "circuit.bin").header.entropy_model_id == load_codec("music").entropy_models["circuit"]
    assert (tmp_path / "circuit.wav").read_bytes() == (tmp_path / "token-prior.wav").read_bytes()
