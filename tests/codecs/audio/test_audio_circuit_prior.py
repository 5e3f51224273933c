"""An audio model carrying a circuit prior as a second entropy model: `codec encode --entropy-model
circuit`, the entropy-model id in the header, decode with no option, and the refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from neuralcodec.cli import main
from neuralcodec.codecs.registry import load_codec, save_codec
from neuralcodec.entropy.circuits import FitConfig
from neuralcodec.entropy.circuits.token_grid import CircuitTokenPrior
from neuralcodec.errors import BitstreamError, UsageError


def _tones(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f = 150 + 60 * np.floor(4 * t)  # a few steps of pitch: token patterns a circuit can learn
    return 0.3 * np.sin(2 * math.pi * f * t) + 0.02 * rng.standard_normal(t.size)


def _fit_circuit(codec, seed: int, hidden: int = 8) -> CircuitTokenPrior:
    """A small circuit fitted on the codec's tokens of a few synthetic clips (a second or so)."""
    grids = [codec.encode(torch.from_numpy(_tones(2.0, 16000, s)).float()[None], 16000)[0].numpy()
             for s in range(seed, seed + 4)]
    cfg = FitConfig(hidden=hidden, epochs=3, full_batch_epochs=0, batch_size=64, init="marginal", seed=seed)
    return CircuitTokenPrior.fit(grids, codec.codebook_size, 4, cfg, log=None)


@pytest.fixture
def models(tiny_codec, tmp_path):
    """``(plain, with_circuit, other_circuit)``: paths of the same tiny model without a circuit, with
    one, and with another one."""
    plain = save_codec(tiny_codec, tmp_path / "plain.safetensors")
    with_circuit = save_codec(tiny_codec.set_circuit_prior(_fit_circuit(tiny_codec, 0)), tmp_path / "pc.safetensors")
    other = save_codec(tiny_codec.set_circuit_prior(_fit_circuit(tiny_codec, 7, hidden=4)), tmp_path / "pc2.safetensors")
    return str(plain), str(with_circuit), str(other)


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "in.wav"
    sf.write(str(path), _tones(1.3, 16000, 99), 16000)  # 1.3 s: 3 chunks of 0.5 s, the last one partial
    return path


def _clean_failure(capsys, argv, output, needle):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("codec: error:"), err
    assert needle in err[0], err[0]
    assert not output.exists()
    assert not list(output.parent.glob(f".{output.name}*")), "temporary file left behind"


def test_circuit_is_outside_the_fingerprint(models):
    plain, with_circuit, other = (load_codec(p) for p in models)
    assert plain.fingerprint() == with_circuit.fingerprint() == other.fingerprint()
    assert list(plain.entropy_models) == ["token-prior"]
    ids = with_circuit.entropy_models
    assert list(ids) == ["token-prior", "circuit"] and ids["token-prior"] == plain.entropy_model_id
    assert ids["circuit"].startswith("circuit-prior/hclt-v") and ids["circuit"] != other.entropy_models["circuit"]
    assert with_circuit.entropy_model == "token-prior"  # the default is unchanged


def test_cli_round_trip_with_the_circuit_is_bit_exact(models, clip, tmp_path, capsys):
    plain, with_circuit, _ = models
    default_bin, circuit_bin, plain_bin = tmp_path / "tp.bin", tmp_path / "pc.bin", tmp_path / "plain.bin"
    assert main(["encode", str(clip), str(plain_bin), "--model", plain, "--quiet"]) == 0
    assert main(["encode", str(clip), str(default_bin), "--model", with_circuit, "--quiet"]) == 0
    assert main(["encode", str(clip), str(circuit_bin), "--model", with_circuit, "--entropy-model", "circuit"]) == 0
    assert "entropy model circuit" in capsys.readouterr().out
    # carrying a circuit changes nothing for the default: byte-identical files
    assert default_bin.read_bytes() == plain_bin.read_bytes()
    assert circuit_bin.read_bytes() != default_bin.read_bytes()
    # the header records the prior; `codec info` shows it
    assert main(["info", "--json", str(circuit_bin)]) == 0
    import json

    summary = json.loads(capsys.readouterr().out)
    assert summary["entropy_model"] == load_codec(with_circuit).entropy_models["circuit"]
    assert main(["info", str(circuit_bin)]) == 0
    assert "circuit-prior/hclt-v" in capsys.readouterr().out
    # decode picks the circuit from the header, no option: same audio as the token-prior file
    assert main(["decode", str(circuit_bin), str(tmp_path / "pc.wav"), "--model", with_circuit, "--quiet"]) == 0
    assert main(["decode", str(default_bin), str(tmp_path / "tp.wav"), "--model", with_circuit, "--quiet"]) == 0
    a, rate_a = sf.read(str(tmp_path / "pc.wav"), dtype="int16")
    b, rate_b = sf.read(str(tmp_path / "tp.wav"), dtype="int16")
    assert rate_a == rate_b == 16000 and np.array_equal(a, b)


def test_circuit_tokens_equal_token_prior_tokens_at_every_bitrate(models):
    """The chunk payloads of both entropy models decode to the same codes, at q = Q and q < Q
    (the circuit codes fewer codebooks under its exact marginal)."""
    codec = load_codec(models[1])
    wav = torch.from_numpy(np.stack([_tones(1.3, 16000, 3), _tones(1.3, 16000, 4)])).float()
    for q in codec.codebook_settings:
        decoded = {}
        for name in ("token-prior", "circuit"):
            codec.select_entropy_model(name)
            meta, chunks = codec.compress(wav, 16000, num_codebooks=q)
            frames = math.ceil(meta["num_samples"] / codec.hop_length)
            codes = [codec._parse_chunk(p, 2, min(codec.chunk_frames, frames - i * codec.chunk_frames), q, i)
                     for i, p in enumerate(chunks)]
            decoded[name] = torch.cat(codes, dim=-1)
        assert decoded["circuit"].shape == (2, q, frames)
        assert torch.equal(decoded["circuit"], decoded["token-prior"])
        assert torch.equal(decoded["circuit"], codec.encode(wav[:, None], 16000, num_codebooks=q))


def test_missing_or_other_circuit_is_refused(models, clip, tmp_path, capsys):
    plain, with_circuit, other = models
    circuit_bin = tmp_path / "pc.bin"
    out = tmp_path / "out.wav"
    assert main(["encode", str(clip), str(circuit_bin), "--model", with_circuit, "--entropy-model", "circuit",
                 "--quiet"]) == 0
    # same weights (same fingerprint), but no circuit: refused before anything is written
    _clean_failure(capsys, ["decode", str(circuit_bin), str(out), "--model", plain], out, "does not carry")
    # a different circuit
    _clean_failure(capsys, ["decode", str(circuit_bin), str(out), "--model", other], out, "carries another one")
    # encoding with a circuit the model does not carry, or an unknown name
    target = tmp_path / "x.bin"
    _clean_failure(capsys, ["encode", str(clip), str(target), "--model", plain, "--entropy-model", "circuit"], target,
                   "carries no entropy model 'circuit'")
    _clean_failure(capsys, ["encode", str(clip), str(target), "--model", with_circuit, "--entropy-model", "zip"],
                   target, "it has: token-prior, circuit")


def test_api_selection_and_errors(models):
    plain, with_circuit, _ = (load_codec(p) for p in models)
    with pytest.raises(UsageError, match="carries no entropy model"):
        plain.select_entropy_model("circuit")
    assert with_circuit.select_entropy_model("circuit").entropy_model_id.startswith("circuit-prior/")
    header = with_circuit.stream_header({"sample_rate": 16000, "channels": 1, "num_samples": 10})
    with pytest.raises(BitstreamError, match="does not carry"):
        plain.select_entropy_model_for(header)
    assert with_circuit.select_entropy_model(None).entropy_model == "token-prior"
    assert with_circuit.select_entropy_model_for(header).entropy_model == "circuit"
    with pytest.raises(ValueError, match="codebooks"):
        grids = [np.zeros((1, 40), dtype=np.int64)]
        plain.set_circuit_prior(CircuitTokenPrior.fit(grids, plain.codebook_size, 4, FitConfig(hidden=2, epochs=1),
                                                      log=None))
