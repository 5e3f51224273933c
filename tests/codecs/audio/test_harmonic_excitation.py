"""Harmonic excitation (decoder ``harmonic_excitation``): the comb is the band-limited harmonic sum at
the transmitted F0, its phase continues exactly across chunks, the head takes it as the phase of
voiced frames (plus a learned offset that starts at zero; unvoiced frames decode as without it), and
chunked decoding equals whole-file decoding with the offset switched on."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from neuralcodec.codecs.audio.excitation import HarmonicExcitation
from neuralcodec.codecs.registry import build_codec, save_codec
from tests.codecs.audio.conftest import initialised_codec
from tests.codecs.audio.test_audio_codec import _roundtrip
from tests.codecs.audio.test_pitch_codec import PITCH_CONFIG, RATE, _voice

EXCITATION_CONFIG = {**PITCH_CONFIG, "name": "tiny-excitation",
                     "decoder": {**PITCH_CONFIG["decoder"], "harmonic_excitation": True}}


def _explicit_comb(f0: list[float], rate: int, hop: int, top: float) -> torch.Tensor:
    """The comb by a plain loop: phase integrated sample by sample, every harmonic under ``top``."""
    out, cycles = [], 0.0
    for f in f0:
        for i in range(hop):
            p = cycles + f / rate * i
            out.append(sum(math.cos(2 * math.pi * k * p) for k in range(1, int(top // f) + 1)) if f > 0 else 0.0)
        cycles += f * hop / rate
    return torch.tensor(out, dtype=torch.float64)


def test_comb_is_the_band_limited_harmonic_sum():
    ex = HarmonicExcitation(RATE, 320, 640, 160)
    f0 = [0.0, 100.0, 103.0, 151.5, 0.0, 0.0, 220.0, 87.0]
    wav = ex.waveform(torch.tensor([f0]))[0]
    ref = _explicit_comb(f0, RATE, 320, ex.max_frequency)
    assert torch.allclose(wav.double(), ref, atol=1e-4)
    assert (wav[:320] == 0).all() and (wav[4 * 320: 6 * 320] == 0).all()  # unvoiced frames are silent
    # its spectrum peaks at the harmonics of the voiced frame's F0
    spec = ex(torch.full((1, 8), 200.0)).abs()[0, :, 8]  # 25 Hz bins, a frame in the middle
    peaks = torch.topk(spec[:160], 19).indices
    assert sorted(peaks.tolist()) == list(range(8, 160, 8))  # 200 Hz .. 3.8 kHz, equal amplitudes
    assert spec[12] < 0.01 * spec[8] and spec[4] < 0.01 * spec[8]


def test_phase_continues_across_chunks():
    ex = HarmonicExcitation(RATE, 320, 640, 160)
    f0 = torch.tensor([[0.0, 97.0, 133.3, 180.0, 181.0, 0.0, 240.0, 101.0, 99.0]])
    whole = ex.waveform(f0)
    for cut in (1, 3, 5, 8):
        tail = ex.waveform(f0[:, cut:], ex.cycles(f0[:, :cut]))
        assert torch.allclose(tail, whole[:, cut * 320:], atol=1e-4)
    assert ex(f0).shape == (1, 321, 9 * 2 + 1)


def test_the_head_takes_the_excitation_phase_where_the_excitation_sounds():
    from neuralcodec.codecs.audio.spectral import ISTFTHead

    torch.manual_seed(0)
    plain = ISTFTHead(16, 640, 160)
    head = ISTFTHead(16, 640, 160, harmonic_phase=True)
    head.proj.load_state_dict(plain.proj.state_dict())
    x = torch.randn(1, 16, 12)
    ex = HarmonicExcitation(RATE, 320, 640, 160)
    f0 = torch.tensor([[0.0, 0.0, 0.0, 130.0, 131.0, 0.0]])
    spec = ex(f0)
    out = head(x, spec)
    # by hand: the same magnitudes, the excitation's phase where it is non-zero
    proj = plain.proj(F.pad(x, (0, 1), mode="replicate").transpose(1, 2)).transpose(1, 2)
    log_mag, phase = proj.chunk(2, dim=1)
    phase = torch.where(spec.abs() > 1e-3, torch.angle(spec), phase)
    expected = torch.istft(torch.polar(torch.exp(log_mag.clamp(max=6.0)), phase), 640, 160,
                           window=torch.hann_window(640), center=True, length=12 * 160)
    assert torch.allclose(out[:, 0], expected, atol=1e-5)
    # frames far from any voiced sample decode exactly as without the excitation
    assert torch.equal(out[..., :400], plain(x)[..., :400])  # frame 5 (from sample 480 on) sees voiced samples
    with pytest.raises(ValueError, match="excitation"):
        head(x)


def test_a_pitch_model_warm_starts_into_the_excitation_model(tmp_path):
    """Same codes; unvoiced input decodes exactly as the source model decodes it."""
    from neuralcodec.train.run import _warm_start

    source = initialised_codec(PITCH_CONFIG)
    target = build_codec(EXCITATION_CONFIG)
    _warm_start(target, str(save_codec(source, tmp_path / "source.safetensors")), ["decoder.head.phase_offset"], ["prior"])
    target.eval()
    voice = _voice(1.0)[None]
    assert torch.equal(target.encode(voice), source.encode(voice))
    noise = 0.05 * torch.randn(1, 1, 16000, generator=torch.Generator().manual_seed(3))
    codes = source.encode(noise)
    codes[:, 0] = 0  # unvoiced throughout
    assert torch.equal(target.decode(codes), source.decode(codes))


@pytest.fixture
def excitation_codec():
    codec = initialised_codec(EXCITATION_CONFIG)
    torch.manual_seed(1)
    with torch.no_grad():  # switch the zero-initialised pitch paths on, so that the test sees them
        codec.decoder.head.phase_offset.weight.normal_(0, 0.5)
        codec.decoder.head.phase_offset.bias.fill_(1.0)
        codec.decoder.pitch_proj.weight.normal_(0, 0.5)
    return codec


def test_the_excitation_shapes_the_output(excitation_codec):
    with torch.no_grad():
        excitation_codec.decoder.pitch_proj.weight.zero_()  # pitch reaches the output through the excitation only
    codes = excitation_codec.encode(_voice(1.0)[None])
    plain = codes.clone()
    plain[:, 0] = torch.where(plain[:, 0] > 0, plain[:, 0] + 10, plain[:, 0])  # same voicing, another pitch
    assert not torch.allclose(excitation_codec.decode(codes), excitation_codec.decode(plain), atol=1e-3)


def test_chunked_decoding_equals_whole_file_with_the_excitation_on(excitation_codec):
    wav = _voice(2.3)  # 0.5 s chunks: 5 chunks, the phase carried over 4 boundaries
    for q in excitation_codec.codebook_settings:
        audio, rate, _ = _roundtrip(excitation_codec, wav, RATE, num_codebooks=q)
        whole = excitation_codec.decode(excitation_codec.encode(wav[None], num_codebooks=q))[0, :, : wav.shape[-1]]
        assert rate == RATE and audio.shape == wav.shape
        assert torch.allclose(audio, whole, atol=1e-5)


def test_excitation_needs_pitch():
    config = {**EXCITATION_CONFIG}
    config.pop("pitch")
    config["default_codebooks"] = None
    with pytest.raises(ValueError, match="harmonic_excitation"):
        build_codec(config)
