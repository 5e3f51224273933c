"""Audio I/O: round trips, resampling accuracy, channel policy, streaming, and bad input."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as taF

import neuralcodec.media.audio as audio_mod
from neuralcodec.errors import MediaError
from neuralcodec.media import (
    StreamingResampler,
    apply_channel_policy,
    audio_info,
    iter_audio_blocks,
    load_audio,
    resample,
    save_audio,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = REPO_ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"development media not found at {DATA}")


def sine(freq: float, sr: int, seconds: float, amp: float = 0.5, phase: float = 0.0) -> torch.Tensor:
    t = torch.arange(int(round(sr * seconds)), dtype=torch.float64) / sr
    return (amp * torch.sin(2 * math.pi * freq * t + phase)).to(torch.float32)


def stereo_test_signal(sr: int = 16000, seconds: float = 0.5) -> torch.Tensor:
    return torch.stack([sine(440, sr, seconds, 0.5), sine(1000, sr, seconds, 0.25, 1.0)])


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("ext", [".wav", ".flac"])
def test_pcm16_round_trip_error_bound(tmp_path: Path, ext: str) -> None:
    wav = stereo_test_signal()
    path = tmp_path / f"x{ext}"
    save_audio(path, wav, 16000)
    back, sr = load_audio(path)
    assert sr == 16000
    assert back.dtype == torch.float32 and back.shape == wav.shape
    # rounding to nearest 16-bit step: at most half a step (plus float32 noise)
    assert (back - wav).abs().max().item() <= 0.5 / 32768 + 1e-7
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.num_frames) == (16000, 2, wav.shape[1])
    assert info.subtype == "PCM_16" and info.format == ext[1:].upper()
    assert info.duration == pytest.approx(0.5)


def test_pcm24_and_float_round_trip(tmp_path: Path) -> None:
    wav = stereo_test_signal()
    save_audio(tmp_path / "a.wav", wav, 16000, subtype="PCM_24")
    back, _ = load_audio(tmp_path / "a.wav")
    assert (back - wav).abs().max().item() <= 0.5 / 2**23 + 1e-7
    save_audio(tmp_path / "b.wav", wav, 16000, subtype="FLOAT")
    back, _ = load_audio(tmp_path / "b.wav")
    assert torch.equal(back, wav)


def test_ogg_vorbis_round_trip_is_close(tmp_path: Path) -> None:
    wav = sine(440, 22050, 1.0)[None]
    save_audio(tmp_path / "x.ogg", wav, 22050)  # default subtype becomes VORBIS
    info = audio_info(tmp_path / "x.ogg")
    assert info.format == "OGG" and info.subtype == "VORBIS"
    back, sr = load_audio(tmp_path / "x.ogg")
    assert sr == 22050 and back.shape[0] == 1
    n = min(back.shape[1], wav.shape[1])
    mid = slice(2000, n - 2000)
    err = (back[0, mid] - wav[0, mid]).pow(2).mean() / wav[0, mid].pow(2).mean()
    assert 10 * math.log10(err.item()) < -20  # lossy but clearly the same tone


def test_save_clamps_and_accepts_1d(tmp_path: Path) -> None:
    x = torch.tensor([1.5, -2.0, 0.25, 0.0])
    save_audio(tmp_path / "c.wav", x, 8000)
    back, _ = load_audio(tmp_path / "c.wav")
    assert back.shape == (1, 4)
    assert back[0].tolist() == pytest.approx([32767 / 32768, -1.0, 0.25, 0.0], abs=1e-9)


# ----------------------------------------------------------------------------- resampling


def test_resample_22050_to_16000_keeps_frequency_and_amplitude() -> None:
    x = sine(440.0, 22050, 1.0, amp=0.5)
    y = resample(x[None], 22050, 16000)
    assert y.shape == (1, 16000) and y.dtype == torch.float32
    expected = sine(440.0, 16000, 1.0, amp=0.5)
    interior = slice(500, 15500)  # away from the zero-padded edges
    assert (y[0, interior] - expected[interior]).abs().max().item() < 1e-3
    spectrum = torch.fft.rfft(y[0, interior].double() * torch.hann_window(15000, dtype=torch.float64))
    peak_hz = spectrum.abs().argmax().item() * 16000 / 15000
    assert abs(peak_hz - 440.0) < 16000 / 15000
    amp = y[0, interior].abs().max().item()
    assert amp == pytest.approx(0.5, abs=2e-3)


def test_resample_rejects_content_above_new_nyquist() -> None:
    x = sine(10000.0, 44100, 0.5, amp=0.5)  # above 8 kHz: must be filtered out, not aliased
    y = resample(x[None], 44100, 16000)
    assert y[0, 400:-400].abs().max().item() < 1e-3


def test_streaming_resampler_equals_one_shot(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 30011, generator=g, dtype=torch.float64) * 0.3
    reference = taF.resample(
        x,
        44100,
        16000,
        lowpass_filter_width=audio_mod.LOWPASS_FILTER_WIDTH,
        rolloff=audio_mod.ROLLOFF,
        resampling_method="sinc_interp_kaiser",
        beta=audio_mod.KAISER_BETA,
    )
    # uneven pushes, including tiny ones that produce no output yet
    rs = StreamingResampler(44100, 16000)
    pieces, start = [], 0
    for size in [5, 1000, 1, 7919, 441 * 3, 20000]:
        pieces.append(rs.push(x[:, start : start + size]))
        start += size
    pieces.append(rs.flush())
    streamed = torch.cat(pieces, dim=1)
    assert streamed.shape == reference.shape
    assert (streamed - reference).abs().max().item() < 1e-10
    # the public helper cuts into blocks too
    monkeypatch.setattr(audio_mod, "_RESAMPLE_CHUNK", 4096)
    y = resample(x.float(), 44100, 16000)
    assert y.shape == reference.shape and y.dtype == torch.float32
    assert (y.double() - reference).abs().max().item() < 1e-6


def test_resample_identity_and_bad_rates() -> None:
    x = torch.randn(1, 100)
    assert resample(x, 16000, 16000) is x
    with pytest.raises(MediaError):
        resample(x, 0, 16000)
    with pytest.raises(MediaError):
        resample(x.to(torch.int16), 16000, 8000)
    with pytest.raises(MediaError, match="irregular"):
        StreamingResampler(1_000_003, 999_983)  # coprime rates would need a gigantic filter


# ----------------------------------------------------------------------------- channels


def test_channel_policies(tmp_path: Path) -> None:
    st = stereo_test_signal()
    save_audio(tmp_path / "st.flac", st, 16000, subtype="PCM_24")
    keep, _ = load_audio(tmp_path / "st.flac")
    assert keep.shape[0] == 2
    mono, _ = load_audio(tmp_path / "st.flac", channels="mono")
    assert mono.shape == (1, st.shape[1])
    assert torch.allclose(mono[0], keep.double().mean(0).float(), atol=1e-7)
    one, _ = load_audio(tmp_path / "st.flac", channels=1)
    assert torch.equal(one, mono)
    two, _ = load_audio(tmp_path / "st.flac", channels=2)
    assert torch.equal(two, keep)
    with pytest.raises(MediaError, match="cannot convert 2 channels to 3"):
        load_audio(tmp_path / "st.flac", channels=3)
    with pytest.raises(MediaError):
        load_audio(tmp_path / "st.flac", channels=0)
    with pytest.raises(MediaError):
        load_audio(tmp_path / "st.flac", channels="left")

    save_audio(tmp_path / "mono.wav", st[:1], 16000)
    dup, _ = load_audio(tmp_path / "mono.wav", channels=2)
    assert dup.shape[0] == 2 and torch.equal(dup[0], dup[1])

    six = torch.zeros(6, 10)
    with pytest.raises(MediaError, match="6 channels to 2"):
        apply_channel_policy(six, 2)
    assert apply_channel_policy(six, "mono").shape == (1, 10)


# ----------------------------------------------------------------------------- streaming reader


def test_iter_audio_blocks_matches_load_audio(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(2)
    wav = (torch.randn(2, 200_003, generator=g) * 0.2).clamp(-1, 1)
    save_audio(tmp_path / "long.wav", wav, 44100, subtype="FLOAT")
    full, sr = load_audio(tmp_path / "long.wav", sample_rate=16000, channels="mono")
    blocks = list(iter_audio_blocks(tmp_path / "long.wav", 16000, sample_rate=16000, channels="mono"))
    assert all(b.shape == (1, 16000) for b in blocks[:-1])
    assert 0 < blocks[-1].shape[1] <= 16000
    joined = torch.cat(blocks, dim=1)
    assert joined.shape == full.shape
    assert (joined - full).abs().max().item() < 1e-6
    # without resampling the blocks are the file itself
    raw = torch.cat(list(iter_audio_blocks(tmp_path / "long.wav", 50_000)), dim=1)
    assert torch.equal(raw, wav)


def test_iter_audio_blocks_checks_eagerly(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not found"):
        iter_audio_blocks(tmp_path / "nope.wav", 100)
    save_audio(tmp_path / "st.wav", torch.zeros(2, 10), 8000)
    with pytest.raises(MediaError):
        iter_audio_blocks(tmp_path / "st.wav", 100, channels=3)
    with pytest.raises(MediaError):
        iter_audio_blocks(tmp_path / "st.wav", 0)


# ----------------------------------------------------------------------------- bad input


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(MediaError, match="directory"):
        load_audio(tmp_path)
    with pytest.raises(MediaError, match="directory"):
        audio_info(tmp_path)


def test_empty_and_random_and_png_bytes(tmp_path: Path) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    rng = np.random.default_rng(0)
    (tmp_path / "noise.wav").write_bytes(rng.bytes(4096))
    with pytest.raises(MediaError, match="noise.wav.*not a supported audio file"):
        load_audio(tmp_path / "noise.wav")
    png = b"\x89PNG\r\n\x1a\n" + rng.bytes(200)
    (tmp_path / "image.wav").write_bytes(png)
    with pytest.raises(MediaError, match="image.wav"):
        audio_info(tmp_path / "image.wav")


def test_zero_sample_file(tmp_path: Path) -> None:
    sf.write(tmp_path / "zero.wav", np.zeros((0, 1), dtype=np.int16), 16000)
    with pytest.raises(MediaError, match="no audio samples"):
        load_audio(tmp_path / "zero.wav")
    with pytest.raises(MediaError, match="no audio samples"):
        audio_info(tmp_path / "zero.wav")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_samples_in_float_wav(tmp_path: Path, bad: float) -> None:
    data = np.zeros((100, 2), dtype=np.float32)
    data[37, 1] = bad
    sf.write(tmp_path / "bad.wav", data, 16000, subtype="FLOAT")
    with pytest.raises(MediaError, match="non-finite.*frame 37"):
        load_audio(tmp_path / "bad.wav")
    with pytest.raises(MediaError, match="non-finite"):
        list(iter_audio_blocks(tmp_path / "bad.wav", 10))


def test_duration_limit_checked_before_decoding(tmp_path: Path) -> None:
    save_audio(tmp_path / "two_s.flac", torch.zeros(1, 16000 * 2), 16000)
    with pytest.raises(MediaError, match="exceeds the limit"):
        load_audio(tmp_path / "two_s.flac", max_duration_s=1.0)
    wav, _ = load_audio(tmp_path / "two_s.flac", max_duration_s=None)
    assert wav.shape == (1, 32000)


def _wav_header(channels: int, rate: int, bits: int, data_bytes: int) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", min(36 + data_bytes, 0xFFFFFFFF))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def test_absurd_header_values_are_refused(tmp_path: Path) -> None:
    # 1000 channels: either libsndfile or our bound refuses it, always as MediaError
    (tmp_path / "many.wav").write_bytes(_wav_header(1000, 16000, 16, 4000) + bytes(4000))
    with pytest.raises(MediaError, match="many.wav"):
        load_audio(tmp_path / "many.wav")
    # a data chunk claiming 4 GB in a tiny file must not allocate 4 GB
    (tmp_path / "liar.wav").write_bytes(_wav_header(1, 16000, 16, 0xFFFFFFF0) + bytes(64))
    try:
        wav, _ = load_audio(tmp_path / "liar.wav")
    except MediaError:
        pass
    else:
        assert wav.shape[1] <= 32


def test_save_audio_errors_leave_no_file(tmp_path: Path) -> None:
    nan = torch.zeros(1, 10)
    nan[0, 3] = float("nan")
    with pytest.raises(MediaError, match="non-finite"):
        save_audio(tmp_path / "n.wav", nan, 16000)
    with pytest.raises(MediaError, match="extension"):
        save_audio(tmp_path / "x.mp4", torch.zeros(1, 10), 16000)
    with pytest.raises(MediaError, match="no samples"):
        save_audio(tmp_path / "e.wav", torch.zeros(1, 0), 16000)
    with pytest.raises(MediaError, match="not valid"):
        save_audio(tmp_path / "f.flac", torch.zeros(1, 10), 16000, subtype="FLOAT")
    with pytest.raises(MediaError, match="shape"):
        save_audio(tmp_path / "s.wav", torch.zeros(1, 1, 10), 16000)
    with pytest.raises(MediaError):
        save_audio(tmp_path / "no_dir" / "x.wav", torch.zeros(1, 10), 16000)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- real files


@needs_data
def test_dev_speech_file_info_and_load() -> None:
    path = DATA / "speech" / "ljspeech" / "LJ001-0002.flac"
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.format) == (22050, 1, "FLAC")
    assert info.duration == pytest.approx(1.90, abs=0.01)
    wav, sr = load_audio(path, sample_rate=16000)
    assert sr == 16000 and wav.shape == (1, math.ceil(info.num_frames * 16000 / 22050))
    assert wav.abs().max().item() <= 1.01 and wav.abs().max().item() > 0.05


@needs_data
def test_dev_music_stereo_to_mono() -> None:
    files = sorted((DATA / "music" / "sonic_pi").glob("*.flac"))
    stereo = next(f for f in files if audio_info(f).channels == 2 and audio_info(f).duration < 5)
    wav, sr = load_audio(stereo)
    mono, _ = load_audio(stereo, channels="mono")
    assert wav.shape[0] == 2 and sr == 44100
    assert torch.allclose(mono[0], wav.mean(0), atol=1e-6)
