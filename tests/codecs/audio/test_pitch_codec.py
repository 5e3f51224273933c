"""Audio codec with explicit pitch (config ``pitch``): row 0 of the codes is the F0 level, the decoder
is conditioned on it, and the coding guarantees (chunked == whole file, batch == one by one,
container round trip) hold as without pitch; a model without pitch warm-starts into one unchanged."""

from __future__ import annotations

import math

import pytest
import torch

from neuralcodec.codecs.registry import build_codec
from neuralcodec.errors import UsageError
from tests.codecs.audio.conftest import TINY_CONFIG, initialised_codec
from tests.codecs.audio.test_audio_codec import _roundtrip

RATE = 16000
PITCH_CONFIG = {**TINY_CONFIG, "name": "tiny-pitch", "pitch": {"levels": 128}, "default_codebooks": 3}


def _voice(seconds: float, f0: float = 120.0) -> torch.Tensor:
    """A gliding harmonic voice (f0 -> 1.5 f0) with a pause, plus a little noise: ``[1, T]``."""
    t = torch.arange(int(seconds * RATE)) / RATE
    phase = 2 * math.pi * f0 * (t + 0.25 * t * t / seconds)
    wav = sum(torch.sin(k * phase) / k for k in range(1, 20)) * ((t % 0.8) < 0.6).float()
    return (0.2 * wav + 0.005 * torch.randn(t.numel(), generator=torch.Generator().manual_seed(0)))[None]


@pytest.fixture
def pitch_codec():
    return initialised_codec(PITCH_CONFIG)


def test_pitch_row_comes_first_and_counts_in_every_setting(pitch_codec):
    assert pitch_codec.codebook_sizes == [128, 64, 64, 64] and pitch_codec.num_codebooks == 4
    assert pitch_codec.codebook_settings == [2, 3, 4] and pitch_codec.default_codebooks == 3
    assert pitch_codec.nominal_bitrate() == pytest.approx(50 * (7 + 6 + 6))
    assert pitch_codec.bitrate_to_codebooks(0.7) == 2
    with pytest.raises(UsageError, match="pitch in row 0"):
        pitch_codec.encode(_voice(0.5), num_codebooks=1)


def test_pitch_row_tracks_the_voice(pitch_codec):
    wav = _voice(1.0)
    codes = pitch_codec.encode(wav[None])
    f0 = pitch_codec.pitch.decode(codes[0, 0])
    t = (torch.arange(codes.shape[-1]) + 0.5) * 320 / RATE
    truth = 120.0 * (1 + 0.5 * t)  # instantaneous frequency of the glide
    voiced = (f0 > 0) & ((t % 0.8) > 0.05) & ((t % 0.8) < 0.55)
    assert voiced.sum() >= 30
    cents = 1200 * torch.log2(f0[voiced] / truth[voiced]).abs()
    assert cents.median() < 20
    assert (codes[0, 0][((t % 0.8) > 0.65) & ((t % 0.8) < 0.75)] == 0).all()  # the pauses are unvoiced


def test_chunked_coding_equals_whole_file_and_round_trips(pitch_codec):
    wav = _voice(1.7)
    for q in pitch_codec.codebook_settings:
        audio, rate, _ = _roundtrip(pitch_codec, wav, RATE, num_codebooks=q)
        whole = pitch_codec.decode(pitch_codec.encode(wav[None], num_codebooks=q))[0, :, : wav.shape[-1]]
        assert rate == RATE and audio.shape == wav.shape
        assert torch.allclose(audio, whole, atol=1e-5)


def test_batch_equals_one_by_one(pitch_codec):
    a, b = _voice(1.1, 110.0), _voice(0.7, 210.0)
    batch = torch.zeros(2, 1, a.shape[-1])
    batch[0, 0], batch[1, 0, : b.shape[-1]] = a[0], b[0]
    lengths = torch.tensor([a.shape[-1], b.shape[-1]])
    alone = [pitch_codec.encode(a[None]), pitch_codec.encode(b[None])]
    for exact in (True, False):
        codes = pitch_codec.encode(batch, lengths=lengths, exact=exact)
        assert torch.equal(codes[0], alone[0][0])
        assert torch.equal(codes[1, :, : alone[1].shape[-1]], alone[1][0])
        assert (codes[1, 0, alone[1].shape[-1]:] == 0).all()  # padding frames: unvoiced


def test_a_model_without_pitch_warm_starts_into_one_unchanged(tiny_codec, tmp_path):
    """The decoder's pitch input starts at zero: before training, the pitch model decodes its
    quantizer rows exactly as the source model decodes the same codes."""
    from neuralcodec.codecs.registry import save_codec
    from neuralcodec.train.run import _warm_start

    source = tiny_codec
    target = build_codec(PITCH_CONFIG)
    _warm_start(target, str(save_codec(source, tmp_path / "source.safetensors")), ["decoder.pitch_proj"], ["prior"])
    target.eval()
    wav = _voice(1.0)[None]
    codes = target.encode(wav)
    assert torch.equal(codes[:, 1:], source.encode(wav))
    assert torch.equal(target.decode(codes), source.decode(codes[:, 1:]))


def test_pitch_needs_the_vocos_decoder():
    config = {**PITCH_CONFIG, "decoder": {"type": "hifigan", "channels": 32, "rates": [8, 5, 4, 2]}}
    with pytest.raises(ValueError, match="vocos"):
        build_codec(config)


def test_a_circuit_prior_codes_the_pitch_row_beside_smaller_codebooks(pitch_codec):
    """Rows of different sizes (128 pitch levels, 64-entry RVQ stages) share one circuit alphabet,
    the largest; the circuit-coded file decodes to the same audio as the token-prior one."""
    from neuralcodec.entropy.circuits import FitConfig
    from neuralcodec.entropy.circuits.token_grid import CircuitTokenPrior

    grids = [pitch_codec.encode(_voice(2.0, f0)[None])[0].numpy() for f0 in (100.0, 140.0, 190.0)]
    cfg = FitConfig(hidden=4, epochs=2, full_batch_epochs=0, batch_size=32, init="marginal", seed=0)
    pitch_codec.set_circuit_prior(CircuitTokenPrior.fit(grids, pitch_codec.codebook_size, 4, cfg, log=None))
    assert pitch_codec.circuit_prior.num_categories == 128
    wav = _voice(1.3, 125.0)
    token_prior_audio, _, _ = _roundtrip(pitch_codec, wav, RATE)
    pitch_codec.select_entropy_model("circuit")
    circuit_audio, _, data = _roundtrip(pitch_codec, wav, RATE)
    assert torch.equal(circuit_audio, token_prior_audio) and len(data) > 0
    with pytest.raises(ValueError, match="codebooks of 64"):
        pitch_codec.set_circuit_prior(CircuitTokenPrior.fit([g % 64 for g in grids], 64, 4, cfg, log=None))


def test_pitch_codes_out_of_range_are_refused(pitch_codec):
    codes = pitch_codec.encode(_voice(0.5)[None])
    codes[0, 0, 3] = 128
    with pytest.raises(ValueError, match=r"pitch codes \(row 0\)"):
        pitch_codec.decode(codes)
