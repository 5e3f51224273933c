"""Audio experiment presets: each composes, builds and is what its header claims; the speech presets
(WavTokenizer-, HiFi-Codec-style and FSQ) train through Hydra and their exported models code real files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from neuralcodec.cli import main
from neuralcodec.codecs.audio.decoders import HiFiGANDecoder, VocosDecoder
from neuralcodec.codecs.audio.layers import SelfAttentionBlock
from neuralcodec.codecs.registry import build_codec, load_codec
from neuralcodec.errors import BitstreamError, UsageError
from neuralcodec.quantizers import FSQ, GroupResidualVQ, ResidualVQ, VectorQuantizer
from neuralcodec.train.run import compose, config_dir, train

# What each audio preset's header promises:
# (sample rate, token frames/s, codebooks, entries per codebook, nominal bit/s, quantizer, decoder, attention).
CLAIMS = {
    "debug": (16000, 50, 2, 64, 600, ResidualVQ, VocosDecoder, False),
    "speech_rvq": (16000, 50, 3, 1024, 1500, ResidualVQ, VocosDecoder, False),
    "speech_continue": (16000, 50, 3, 1024, 1500, ResidualVQ, VocosDecoder, False),  # speech_rvq, warm-started
    "speech_continue_stft": (16000, 50, 3, 1024, 1500, ResidualVQ, VocosDecoder, False),  # + linear STFT loss
    # pitch row (128 levels) + RVQ 3 x 1024; files default to pitch + 2 stages: 50 x (7 + 20) bit/s
    "speech_pitch": (16000, 50, 4, 1024, 1350, ResidualVQ, VocosDecoder, False),
    "speech_excitation": (16000, 50, 4, 1024, 1350, ResidualVQ, VocosDecoder, False),  # + harmonic excitation
    "music_rvq": (32000, 50, 8, 1024, 4000, ResidualVQ, VocosDecoder, False),
    "speech_wavtokenizer": (24000, 75, 1, 4096, 900, VectorQuantizer, VocosDecoder, True),  # 75 x 12 bits
    "speech_hificodec": (16000, 50, 4, 1024, 2000, GroupResidualVQ, HiFiGANDecoder, False),  # 2 groups x 2
    "speech_fsq": (24000, 75, 1, 4096, 900, FSQ, VocosDecoder, True),  # 8^4 implicit codes
}
# Presets that send pitch: levels of codes row 0.
PITCH_LEVELS = {"speech_pitch": 128, "speech_excitation": 128}
# Lower bitrates a stream can use (GRVQ: whole stages, i.e. multiples of the number of groups).
SETTINGS = {"debug": [1, 2], "speech_rvq": [1, 2, 3], "speech_continue": [1, 2, 3],
            "speech_continue_stft": [1, 2, 3], "speech_pitch": [2, 3, 4], "speech_excitation": [2, 3, 4],
            "music_rvq": list(range(1, 9)),
            "speech_wavtokenizer": [1], "speech_hificodec": [2, 4], "speech_fsq": [1]}

# Shrinks a preset to test size without touching what it claims (rates, codebooks, decoder type).
TINY = ["model.codec.latent_dim=16", "model.codec.encoder.channels=[32,48]", "model.codec.encoder.depths=[1,1]",
        "model.codec.chunk_seconds=0.5", "model.mpd_periods=[2,3]", "model.mpd_channels=[4,8]",
        "model.mrd_fft_sizes=[256]", "model.mrd_channels=4", "model.val_metrics=false", "model.adversarial_start=0",
        "++model.codec.prior.hidden=16", "data.segment_seconds=0.4", "data.batch_size=2", "data.num_workers=0",
        "data.val_seconds=1.0", "data.max_val_files=2", "data.items_per_epoch=8", "data.val_fraction=0.3",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "+trainer.fast_dev_run=1"]
TINY_DECODER = {
    VocosDecoder: ["model.codec.decoder.dim=48", "model.codec.decoder.depth=2"],
    HiFiGANDecoder: ["model.codec.decoder.channels=32", "model.codec.decoder.kernel_sizes=[3]",
                     "model.codec.decoder.dilations=[1,3]"],
}
NEW_PRESETS = ["speech_wavtokenizer", "speech_hificodec", "speech_fsq", "speech_pitch", "speech_excitation"]


def _audio_experiments() -> list[str]:
    """Every experiment under configs/experiment whose model is an audio codec."""
    names = []
    for path in sorted((config_dir() / "experiment").glob("*.yaml")):
        codec = compose([f"experiment={path.stem}"]).model.get("codec")
        if codec is not None and codec.get("codec") == "audio":
            names.append(path.stem)
    return names


def _codec_config(overrides) -> dict:
    return OmegaConf.to_container(compose(overrides).model.codec, resolve=True)


def _check_claims(codec, name: str) -> None:
    rate, fps, q, size, bps, quantizer, decoder, attention = CLAIMS[name]
    assert (codec.sample_rate, codec.frame_rate, codec.num_codebooks, codec.codebook_size) == (rate, fps, q, size)
    pitch = [PITCH_LEVELS[name]] if name in PITCH_LEVELS else []
    assert codec.codebook_sizes == pitch + [size] * (q - len(pitch))
    assert codec.nominal_bitrate() == pytest.approx(bps)
    assert isinstance(codec.quantizer, quantizer) and isinstance(codec.decoder, decoder)
    has_attention = any(isinstance(m, SelfAttentionBlock) for m in codec.decoder.modules())
    assert has_attention == attention
    assert not any(isinstance(m, SelfAttentionBlock) for m in codec.encoder.modules())  # codes chunk-invariant
    assert codec.codebook_settings == SETTINGS[name]


def test_every_audio_experiment_has_claims():
    """A new audio preset must state (and so get tested for) what it is."""
    assert sorted(_audio_experiments()) == sorted(CLAIMS)


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_preset_builds_and_is_what_it_claims(name):
    codec = build_codec(_codec_config([f"experiment={name}"]))
    _check_claims(codec, name)
    if name in ("speech_rvq", "speech_continue", "speech_continue_stft", "speech_pitch", "speech_excitation", "music_rvq"):
        assert codec.quantizer.dropout > 0  # one model, several bitrates
    assert (getattr(codec.decoder, "excitation", None) is not None) == (name == "speech_excitation")


def _source_model(experiment: str, path, **extra) -> str:
    """A full-size model of ``experiment`` (fresh weights, plus config ``extra``), exported to ``path``:
    the warm-start source a continuation experiment expects in its ``init_from``."""
    from neuralcodec.codecs.registry import save_codec

    torch.manual_seed(0)
    source = build_codec({**_codec_config([f"experiment={experiment}"]), **extra}).eval()
    with torch.no_grad():  # switch zero-initialised inputs on, so that carrying them over is visible
        for name, param in source.named_parameters():
            if "pitch_proj" in name or "head.phase_offset" in name:
                param.normal_(0, 0.02)
    return str(save_codec(source, path))


def _warm_started(experiment: str, source: str):
    from neuralcodec.train.run import _warm_start

    cfg = compose([f"experiment={experiment}"])
    codec = build_codec(OmegaConf.to_container(cfg.model.codec, resolve=True))
    _warm_start(codec, source, cfg.init_from_new_modules, cfg.init_from_skip_modules)
    return codec.eval()


def test_speech_continue_warm_starts_without_the_sources_entropy_models(tmp_path):
    """``init_from_skip_modules``: a speech_rvq model's encoder, quantizer and decoder load into the
    speech_continue preset; its token and circuit priors (stale once training moves the encoder) are
    left out, and leaving them in is refused (this config builds no circuit prior)."""
    from neuralcodec.errors import NeuralCodecError
    from neuralcodec.train.run import _warm_start

    cfg = compose(["experiment=speech_continue"])
    assert list(cfg.init_from_skip_modules) == ["prior", "circuit_prior"] and cfg.model.adversarial_start == 0
    source = _source_model("speech_rvq", tmp_path / "v03.safetensors", circuit_prior={"window": 2, "hidden": 2})
    codec = build_codec(OmegaConf.to_container(cfg.model.codec, resolve=True))
    fresh_prior = {k: v.clone() for k, v in codec.prior.state_dict().items()}
    with pytest.raises(NeuralCodecError, match="does not fit"):
        _warm_start(build_codec(OmegaConf.to_container(cfg.model.codec, resolve=True)), source)
    _warm_start(codec, source, (), cfg.init_from_skip_modules)
    loaded = load_codec(source)
    for part in ("encoder", "quantizer", "decoder"):
        ours, theirs = getattr(codec, part).state_dict(), getattr(loaded, part).state_dict()
        assert all(torch.equal(ours[k], theirs[k].to(ours[k].dtype)) for k in theirs)
    assert all(torch.equal(v, fresh_prior[k]) for k, v in codec.prior.state_dict().items())


def test_speech_pitch_warm_starts_from_a_model_without_pitch_and_decodes_like_it(tmp_path):
    """speech_pitch loads a model without pitch (v0.5, speech_continue_stft) with a fresh decoder pitch
    input (zero) and token prior: before training it gives the source's codes in rows 1.. and the same audio."""
    source = _source_model("speech_continue_stft", tmp_path / "v05.safetensors")
    codec, loaded = _warm_started("speech_pitch", source), load_codec(source).eval()
    wav = 0.05 * torch.randn(1, 1, 8000, generator=torch.Generator().manual_seed(0))
    codes = codec.encode(wav)
    assert torch.equal(codes[:, 1:], loaded.encode(wav))
    assert torch.equal(codec.decode(codes), loaded.decode(codes[:, 1:]))


def test_speech_excitation_warm_starts_from_a_pitch_model(tmp_path):
    """speech_excitation loads a pitch model (speech_pitch) with a fresh, zero phase offset: same codes,
    and unvoiced frames decode as the source decodes them (voiced ones take the excitation's phase)."""
    source = _source_model("speech_pitch", tmp_path / "v06.safetensors")
    codec, loaded = _warm_started("speech_excitation", source), load_codec(source).eval()
    assert codec.decoder.excitation is not None and loaded.decoder.excitation is None
    wav = 0.05 * torch.randn(1, 1, 8000, generator=torch.Generator().manual_seed(0))
    codes = codec.encode(wav)
    assert torch.equal(codes, loaded.encode(wav))
    codes[:, 0] = 0
    assert torch.equal(codec.decode(codes), loaded.decode(codes))


def test_wavtokenizer_40_frames_per_second_variant():
    """The 40 tokens/s setting the preset mentions: hop 600 at 24 kHz, 480 bit/s."""
    codec = build_codec(_codec_config(["experiment=speech_wavtokenizer", "model.codec.hop_length=600"]))
    assert codec.frame_rate == 40 and codec.nominal_bitrate() == pytest.approx(480)


def test_hifigan_model_group_composes_a_clean_decoder():
    """model=audio_hifigan used to keep the Vocos decoder's keys (and a literal `_delete_`) and failed to build."""
    config = _codec_config(["model=audio_hifigan"])
    assert set(config["decoder"]) == {"type", "channels", "rates", "kernel_sizes", "dilations"}
    assert isinstance(build_codec(config).decoder, HiFiGANDecoder)
    assert set(_codec_config([])["decoder"]) == {"type", "dim", "depth", "upsample", "attention"}


def test_group_residual_bitrates_keep_whole_stages():
    """GRVQ streams drop whole stages: --bitrate picks a multiple of the groups, others are refused."""
    codec = build_codec(_codec_config(["experiment=speech_hificodec"] + TINY_DECODER[HiFiGANDecoder]
                                      + ["model.codec.latent_dim=16", "model.codec.encoder.channels=[32,48]",
                                         "model.codec.encoder.depths=[1,1]"])).eval().freeze_entropy_models()
    assert codec.bitrate_to_codebooks(1.5) == 2 and codec.bitrate_to_codebooks(2.0) == 4
    with pytest.raises(UsageError, match="1.000"):
        codec.bitrate_to_codebooks(0.5)  # the lowest setting is 1 stage per group: 1 kbit/s
    with pytest.raises(UsageError, match="one of"):
        codec.compress(torch.zeros(1, 3200), 16000, num_codebooks=3)
    metadata, chunks = codec.compress(torch.zeros(1, 3200), 16000, num_codebooks=2)
    payloads = list(chunks)
    assert codec.decompress(metadata, payloads)[0].shape == (1, 3200)
    with pytest.raises(BitstreamError, match="out of range"):  # a header naming half a stage is refused
        codec.decompress({**metadata, "num_codebooks": 3}, payloads)
    from neuralcodec.tokenize import _check_codebooks

    with pytest.raises(UsageError, match="--num-codebooks 3"):
        _check_codebooks(codec, 3)


def _tone_file(path, seconds: float, rate: int):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * math.pi * 220 * t) * (1 + 0.5 * np.sin(2 * math.pi * 3 * t))
    sf.write(str(path), x + 0.02 * np.random.default_rng(0).standard_normal(t.size), rate)
    return path


@pytest.mark.parametrize("name", NEW_PRESETS)
def test_preset_trains_exports_and_codes_files(name, audio_dir, tmp_path, capsys):
    decoder = CLAIMS[name][6]
    overrides = [f"experiment={name}", f"data.train_dir={audio_dir}", f"run_dir={tmp_path / 'run'}",
                 *TINY, *TINY_DECODER[decoder], "init_from=null"]  # tiny sizes: no warm start
    exported = train(compose(overrides))
    codec = load_codec(exported)
    _check_claims(codec, name)
    assert codec.model_id == name

    # CLI round trip at another rate: original rate and length back, a real entropy-coded stream
    src, out_bin, out_wav = tmp_path / "in.wav", tmp_path / "x.bin", tmp_path / "x.wav"
    _tone_file(src, 1.3, 22050)
    assert main(["encode", str(src), str(out_bin), "--model", str(exported), "--quiet"]) == 0
    assert main(["decode", str(out_bin), str(out_wav), "--model", str(exported), "--quiet"]) == 0
    info = sf.info(str(out_wav))
    assert (info.samplerate, info.channels, info.frames) == (22050, 1, int(1.3 * 22050))
    assert np.isfinite(sf.read(str(out_wav))[0]).all()
    capsys.readouterr()
    assert main(["info", "--json", str(out_bin)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["metadata"]["num_codebooks"] == codec.default_codebooks
    assert summary["metadata"]["nominal_bps"] == pytest.approx(CLAIMS[name][4])
    assert summary["payload_bits_per_second"] > 0

    # chunked coding (0.5 s chunks) vs whole signal: codes always equal; audio equal without attention
    rate = codec.sample_rate
    wav = torch.from_numpy(sf.read(str(_tone_file(tmp_path / "m.wav", 2.2, rate)))[0]).float()[None]
    metadata, chunks = codec.compress(wav, rate)
    payloads = list(chunks)
    assert len(payloads) >= 4
    whole = codec.encode(wav, rate, num_codebooks=codec.default_codebooks)
    frames = whole.shape[-1]
    parsed = [codec._parse_chunk(p, 1, min(codec.chunk_frames, frames - i * codec.chunk_frames),
                                 codec.default_codebooks, i) for i, p in enumerate(payloads)]
    assert torch.equal(torch.cat(parsed, dim=-1), whole)
    streamed, out_rate = codec.decompress(metadata, payloads)
    offline = codec.decode(whole)[0, :, : wav.shape[-1]]
    assert out_rate == rate and streamed.shape == wav.shape and torch.isfinite(streamed).all()
    if not CLAIMS[name][7]:
        assert (streamed - offline).abs().max().item() < 1e-4
