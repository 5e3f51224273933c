"""The shipped `speech` model: loads with no download, round-trips a real dev clip through the CLI."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from neuralcodec.bitstream import scan_bitstream
from neuralcodec.cli import main
from neuralcodec.codecs.audio.pitch import YinPitch
from neuralcodec.codecs.registry import PRETRAINED_DIR, available_models, load_codec
from neuralcodec.eval.pitch import track_errors
from neuralcodec.media.audio import load_audio, resample
from neuralcodec.train.metrics import speech_quality

pytestmark = pytest.mark.skipif("speech" not in available_models(), reason="no shipped speech model")


def test_shipped_model_properties():
    codec = load_codec("speech")
    assert codec.sample_rate == 16000 and codec.frame_rate == 50
    assert codec.nominal_bitrate() <= 1500
    assert codec.num_codebooks >= 1 and codec.codebook_size >= 2


def test_cli_round_trip_on_dev_clip(shared_data, cli_round_trip):
    clip = shared_data / "speech" / "cmu_arctic" / "cmu_arctic_us_aew_a0002.flac"
    out_wav, summary = cli_round_trip(clip)
    assert summary["payload_bits_per_second"] <= 1500  # entropy-coded tokens stay under the nominal rate
    # A broken or untrained model cannot reach this: intelligibility is measurably preserved.
    ref, rate = load_audio(clip, channels="mono")
    out, _ = load_audio(out_wav, channels="mono")
    assert speech_quality(out, ref, rate)["stoi"] > 0.55


def test_tokenizer_api_on_dev_clip(shared_data):
    codec = load_codec("speech")
    wav, rate = load_audio(shared_data / "speech" / "cmu_arctic" / "cmu_arctic_us_axb_a0005.flac", channels="mono")
    codes = codec.encode(wav[None], rate)
    assert codes.dtype == torch.int64 and codes.shape[:2] == (1, codec.num_codebooks)
    audio = codec.decode(codes)
    assert audio.shape == (1, 1, codes.shape[-1] * codec.hop_length)


def test_circuit_prior_codes_the_same_audio(shared_data, tmp_path):
    """The shipped circuit prior (`--entropy-model circuit`): recorded in the file, decoded with no
    option, same audio as the default token prior; the package stays under 40 MB."""
    assert (PRETRAINED_DIR / "speech.safetensors").stat().st_size <= 40e6
    src = shared_data / "speech" / "cmu_arctic" / "cmu_arctic_us_axb_a0005.flac"
    for name in ("token-prior", "circuit"):
        assert main(["encode", str(src), str(tmp_path / f"{name}.bin"), "--entropy-model", name, "--quiet"]) == 0
        assert main(["decode", str(tmp_path / f"{name}.bin"), str(tmp_path / f"{name}.wav"), "--quiet"]) == 0
    assert scan_bitstream(tmp_path / "circuit.bin").header.entropy_model_id == load_codec("speech").entropy_models["circuit"]
    assert (tmp_path / "circuit.wav").read_bytes() == (tmp_path / "token-prior.wav").read_bytes()


def test_shipped_model_sends_pitch_and_renders_it(shared_data):
    """Since v0.6 the model sends F0 in codes row 0; the decoded pitch of a low male voice (108 Hz, which v0.5 rendered
    at ~170 Hz, 600+ cents off) follows the input's (YIN on both, frames voiced in both)."""
    codec = load_codec("speech")
    wav, rate = load_audio(shared_data / "speech" / "cmu_arctic" / "cmu_arctic_us_aew_a0001.flac", channels="mono")
    wav = resample(wav, rate, codec.sample_rate)
    codes = codec.encode(wav[None])
    assert codec.codebook_sizes[0] == 128 and (codes[0, 0] > 0).float().mean() > 0.3
    out = codec.decode(codes)[0, 0, : wav.shape[-1]]
    yin = YinPitch(codec.sample_rate, 160)
    errors = track_errors(yin(out[None])[0][0].numpy().astype(np.float64), yin(wav)[0][0].numpy().astype(np.float64))
    assert errors["f0_cents"] < 100 and errors["gpe"] < 0.1, errors
