"""`codec encode` / `codec decode` on audio with an exported tiny model: round trips and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from neuralcodec.cli import main
from neuralcodec.codecs.registry import save_codec


@pytest.fixture
def model_path(tiny_codec, tmp_path):
    return str(save_codec(tiny_codec, tmp_path / "tiny.safetensors"))


def _write(path, data, rate, subtype="PCM_16"):
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def _sine(seconds, rate, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * math.pi * 330 * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def test_encode_decode_real_dev_clip(model_path, tmp_path, shared_data, capsys):
    clip = shared_data / "speech" / "cmu_arctic" / "cmu_arctic_us_axb_a0005.flac"
    info = sf.info(str(clip))
    out_bin, out_wav = tmp_path / "a.bin", tmp_path / "a.wav"
    assert main(["encode", str(clip), str(out_bin), "--model", model_path]) == 0
    assert "kbit/s" in capsys.readouterr().out
    assert main(["decode", str(out_bin), str(out_wav), "--model", model_path]) == 0
    decoded = sf.info(str(out_wav))
    assert decoded.samplerate == info.samplerate and decoded.frames == info.frames
    assert main(["info", str(out_bin)]) == 0
    assert "kbit/s" in capsys.readouterr().out


@pytest.mark.parametrize("rate, channels", [(8000, 1), (96000, 1), (16000, 8), (44100, 2)])
def test_unusual_rates_and_channels_round_trip(model_path, tmp_path, rate, channels):
    src = _write(tmp_path / "in.wav", _sine(0.5, rate, channels), rate)
    assert main(["encode", str(src), str(tmp_path / "x.bin"), "--model", model_path, "--quiet"]) == 0
    assert main(["decode", str(tmp_path / "x.bin"), str(tmp_path / "out.flac"), "--model", model_path, "--quiet"]) == 0
    info = sf.info(str(tmp_path / "out.flac"))
    assert (info.samplerate, info.channels, info.frames) == (rate, channels, int(0.5 * rate))


def test_silence_round_trips(model_path, tmp_path):
    src = _write(tmp_path / "silence.wav", np.zeros(8000), 16000)
    assert main(["encode", str(src), str(tmp_path / "s.bin"), "--model", model_path, "--quiet"]) == 0
    assert main(["decode", str(tmp_path / "s.bin"), str(tmp_path / "s.wav"), "--model", model_path, "--quiet"]) == 0
    data, _ = sf.read(str(tmp_path / "s.wav"))
    assert np.isfinite(data).all() and data.shape == (8000,)


def _assert_clean_failure(capsys, argv, output, needle):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("codec: error:"), err
    assert needle in err[0].lower(), err[0]
    assert not output.exists()
    assert not list(output.parent.glob(f".{output.name}*")), "temporary file left behind"


def test_bad_inputs_fail_cleanly(model_path, tmp_path, capsys):
    out = tmp_path / "out.bin"
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    _assert_clean_failure(capsys, ["encode", str(empty), str(out), "--model", model_path], out, "empty")
    fake = tmp_path / "fake.wav"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    _assert_clean_failure(capsys, ["encode", str(fake), str(out), "--model", model_path], out, "fake.wav")
    nan = _write(tmp_path / "nan.wav", np.array([0.0, np.nan, 0.1] * 1000, dtype=np.float32), 16000, "FLOAT")
    _assert_clean_failure(capsys, ["encode", str(nan), str(out), "--model", model_path], out, "non-finite")
    zero_len = _write(tmp_path / "zero.wav", np.zeros(0), 16000)
    _assert_clean_failure(capsys, ["encode", str(zero_len), str(out), "--model", model_path], out, "no audio")
    _assert_clean_failure(capsys, ["encode", str(tmp_path / "missing.wav"), str(out), "--model", model_path], out,
                          "not found")


def test_unsupported_option_and_bitrate(model_path, tmp_path, capsys):
    src = _write(tmp_path / "in.wav", _sine(0.5, 16000), 16000)
    out = tmp_path / "o.bin"
    _assert_clean_failure(capsys, ["encode", str(src), str(out), "--model", model_path, "--quality", "3"], out,
                          "--quality")
    _assert_clean_failure(capsys, ["encode", str(src), str(out), "--model", model_path, "--no-postfilter"], out,
                          "--no-postfilter")
    _assert_clean_failure(capsys, ["encode", str(src), str(out), "--model", model_path, "--bitrate", "0.01"], out,
                          "bitrate")
    assert main(["encode", str(src), str(out), "--model", model_path, "--bitrate", "0.7", "--quiet"]) == 0


def test_decode_with_another_model_is_rejected(model_path, tmp_path, capsys, tiny_codec):
    src = _write(tmp_path / "in.wav", _sine(0.5, 16000), 16000)
    assert main(["encode", str(src), str(tmp_path / "o.bin"), "--model", model_path, "--quiet"]) == 0
    with torch.no_grad():
        tiny_codec.decoder.stem.weight.add_(0.01)
    other = save_codec(tiny_codec, tmp_path / "other.safetensors")
    out = tmp_path / "o.wav"
    _assert_clean_failure(capsys, ["decode", str(tmp_path / "o.bin"), str(out), "--model", str(other)], out,
                          "fingerprint")


def test_truncated_file_leaves_no_output(model_path, tmp_path, capsys):
    src = _write(tmp_path / "in.wav", _sine(1.2, 16000), 16000)
    assert main(["encode", str(src), str(tmp_path / "o.bin"), "--model", model_path, "--quiet"]) == 0
    data = (tmp_path / "o.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[: len(data) - 20])
    out = tmp_path / "cut.wav"
    _assert_clean_failure(capsys, ["decode", str(tmp_path / "cut.bin"), str(out), "--model", model_path], out,
                          "truncated")
