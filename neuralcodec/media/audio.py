"""Audio files <-> float tensors ``[C, T]``: reading, resampling, channel policy, atomic writing.

Reading goes through libsndfile (``soundfile``), so WAV, FLAC, OGG (Vorbis/Opus) and whatever else
the installed libsndfile decodes are accepted, at any sample rate and channel count. Every problem
with the input (missing file, not audio, empty, NaN/inf samples, absurd sizes) is raised as
:class:`~neuralcodec.errors.MediaError` naming the file.

Resampling uses torchaudio's sinc resampler (:class:`torchaudio.transforms.Resample`, the cached-kernel
form of :func:`torchaudio.functional.resample`) with a Kaiser-windowed sinc filter of
64 zero crossings, roll-off 0.9476 and beta 14.77 (the "kaiser_best" settings of resampy/librosa:
about -100 dB stop band and a pass band flat to ~95 % of the lower Nyquist frequency). The
arithmetic is done in float64 on bounded blocks (see :class:`StreamingResampler`), so long files
do not need a float64 copy of the whole signal and blockwise results equal whole-file ones.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Union

import numpy as np
import soundfile as sf
import torch
import torchaudio.transforms as taT

from neuralcodec.errors import MediaError, NeuralCodecError
from neuralcodec.fileio import atomic_path

__all__ = [
    "AudioInfo",
    "ChannelPolicy",
    "DEFAULT_MAX_DURATION_S",
    "StreamingResampler",
    "apply_channel_policy",
    "audio_info",
    "iter_audio_blocks",
    "load_audio",
    "resample",
    "save_audio",
]

ChannelPolicy = Union[Literal["keep", "mono"], int]

#: Resampling filter (torchaudio ``sinc_interp_kaiser``), equal to resampy's "kaiser_best".
LOWPASS_FILTER_WIDTH = 64
ROLLOFF = 0.9475937167399596
KAISER_BETA = 14.769656459379492

#: ``load_audio`` refuses longer files unless told otherwise (use :func:`iter_audio_blocks`).
DEFAULT_MAX_DURATION_S = 3600.0
#: Sanity bounds on what a file header may claim; beyond them the file is treated as corrupt.
MAX_CHANNELS = 256
MAX_SAMPLE_RATE = 1_536_000
#: ``load_audio`` never decodes more than this many samples (frames x channels) in one go (4 GiB float32).
MAX_TOTAL_SAMPLES = 1 << 30
#: Largest resampling kernel (elements) we agree to build; only absurd rate pairs get near it.
MAX_KERNEL_ELEMENTS = 1 << 25
#: Input samples per channel handed to the resampler at once when resampling a whole tensor.
_RESAMPLE_CHUNK = 1 << 18

_WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
_DEFAULT_SUBTYPES = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}
# Integer PCM subtypes converted here (exact rounding) rather than by libsndfile: bits, numpy dtype.
_PCM_SUBTYPES = {"PCM_16": (16, np.int16), "PCM_24": (24, np.int32), "PCM_32": (32, np.int32)}


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file's header says, obtained without decoding the samples."""

    sample_rate: int
    channels: int
    num_frames: int
    duration: float  # seconds
    format: str  # libsndfile major format, e.g. "WAV", "FLAC", "OGG"
    subtype: str  # e.g. "PCM_16", "FLOAT", "VORBIS"


# --------------------------------------------------------------------------------------------
# opening and validation
# --------------------------------------------------------------------------------------------


def _check_input_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"audio file not found: {p}")
    if p.is_dir():
        raise MediaError(f"expected an audio file but got a directory: {p}")
    if not p.is_file():
        raise MediaError(f"not a regular file: {p}")
    if p.stat().st_size == 0:
        raise MediaError(f"audio file is empty (0 bytes): {p}")
    return p


def _open(path: Path) -> sf.SoundFile:
    try:
        return sf.SoundFile(str(path))
    except (sf.SoundFileError, RuntimeError, OSError, ValueError) as exc:
        raise MediaError(f"cannot read {path}: not a supported audio file ({exc})") from exc


def _validate_header(path: Path, sample_rate: int, channels: int, frames: int) -> None:
    if not 1 <= channels <= MAX_CHANNELS:
        raise MediaError(f"{path}: unsupported channel count {channels} (1..{MAX_CHANNELS})")
    if not 1 <= sample_rate <= MAX_SAMPLE_RATE:
        raise MediaError(f"{path}: implausible sample rate {sample_rate} Hz (1..{MAX_SAMPLE_RATE})")
    if frames <= 0:
        raise MediaError(f"{path}: contains no audio samples")


def _info_from(path: Path, f: sf.SoundFile) -> AudioInfo:
    _validate_header(path, f.samplerate, f.channels, f.frames)
    return AudioInfo(
        sample_rate=int(f.samplerate),
        channels=int(f.channels),
        num_frames=int(f.frames),
        duration=f.frames / f.samplerate,
        format=str(f.format),
        subtype=str(f.subtype),
    )


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Sample rate, channels, frame count, duration, container format and subtype of ``path``.

    Only the header is parsed (no decoding). Raises MediaError for missing, non-audio or empty files.
    """
    p = _check_input_path(path)
    with _open(p) as f:
        return _info_from(p, f)


def _check_rate(name: str, rate: int) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)):
        raise MediaError(f"{name} must be an integer number of Hz, got {rate!r}")
    if not 1 <= int(rate) <= MAX_SAMPLE_RATE:
        raise MediaError(f"{name} {rate} Hz is out of range (1..{MAX_SAMPLE_RATE})")
    return int(rate)


def _check_finite(path: Path | str, x: torch.Tensor, frame_offset: int = 0) -> None:
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        first = int(bad.any(dim=0).nonzero()[0, 0]) + frame_offset
        raise MediaError(f"{path}: contains non-finite samples (NaN or inf), first at frame {first}")


# --------------------------------------------------------------------------------------------
# channel policy
# --------------------------------------------------------------------------------------------


def _resolve_channels(channels: ChannelPolicy, in_channels: int, where: str) -> int:
    """Number of output channels for ``channels`` applied to ``in_channels`` inputs (or MediaError)."""
    if channels == "keep":
        return in_channels
    if channels == "mono":
        return 1
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)):
        raise MediaError(f"channels must be 'keep', 'mono' or a positive int, got {channels!r}")
    n = int(channels)
    if n < 1:
        raise MediaError(f"channels must be a positive number, got {n}")
    if n == 1 or n == in_channels or in_channels == 1:
        return n
    raise MediaError(
        f"{where}: cannot convert {in_channels} channels to {n} "
        "(only down-mix to mono, duplication of mono, or keeping the count are defined)"
    )


def apply_channel_policy(wav: torch.Tensor, channels: ChannelPolicy, where: str = "audio") -> torch.Tensor:
    """Apply the channel policy to ``wav [C, T]``.

    * ``"keep"``: unchanged.
    * ``"mono"`` or ``1``: mean of all channels (computed in float64), shape ``[1, T]``.
    * ``N == C``: unchanged.
    * ``N > 1`` with a mono input: the channel is duplicated ``N`` times.
    * anything else (e.g. 6 -> 2, 2 -> 3): MediaError, because no down-mix matrix is implied.
    """
    if wav.dim() != 2:
        raise MediaError(f"{where}: expected a [C, T] tensor, got shape {tuple(wav.shape)}")
    in_channels = wav.shape[0]
    n = _resolve_channels(channels, in_channels, where)
    if n == in_channels:
        return wav
    if n == 1:
        return wav.to(torch.float64).mean(dim=0, keepdim=True).to(wav.dtype)
    return wav.expand(n, -1).contiguous()


# --------------------------------------------------------------------------------------------
# resampling
# --------------------------------------------------------------------------------------------


class StreamingResampler:
    """Resample a signal pushed in pieces; output equals :func:`resample` on the whole signal.

    The signal is cut at multiples of the reduced input period ``orig/gcd`` so that every output
    sample lands on the same position as in a one-shot resampling; each piece is resampled with
    enough real context (the filter half-width) on both sides, and the context outputs are dropped.
    Input pieces ``[C, n]`` may have any length; outputs are float64 ``[C, m]``.
    """

    def __init__(self, orig_sr: int, new_sr: int) -> None:
        orig_sr = _check_rate("original sample rate", orig_sr)
        new_sr = _check_rate("target sample rate", new_sr)
        g = math.gcd(orig_sr, new_sr)
        self.orig, self.new = orig_sr // g, new_sr // g
        base = min(self.orig, self.new) * ROLLOFF
        self.width = math.ceil(LOWPASS_FILTER_WIDTH * self.orig / base)
        kernel_elements = self.new * (2 * self.width + self.orig)
        if self.orig != self.new and kernel_elements > MAX_KERNEL_ELEMENTS:
            raise MediaError(
                f"resampling {orig_sr} Hz -> {new_sr} Hz needs a {kernel_elements}-element filter; "
                "the ratio is too irregular (choose rates with a larger common divisor)"
            )
        # The kernel is built once here (torchaudio's transform caches it), in float64.
        self._resampler = (
            taT.Resample(
                self.orig,
                self.new,
                resampling_method="sinc_interp_kaiser",
                lowpass_filter_width=LOWPASS_FILTER_WIDTH,
                rolloff=ROLLOFF,
                beta=KAISER_BETA,
                dtype=torch.float64,
            )
            if self.orig != self.new
            else None
        )
        if self._resampler is not None:
            self.width = int(self._resampler.width)  # identical by construction; torchaudio's is authoritative
        # Left context kept from earlier input: a multiple of the input period covering the filter.
        self.left = math.ceil(self.width / self.orig) * self.orig
        self._buf: torch.Tensor | None = None  # float64 [C, n]: context + pending input
        self._ctx = 0  # leading samples of _buf already accounted for (context only)
        self._consumed = 0  # global index of the first pending (not yet emitted) input sample

    def _run(self, segment: torch.Tensor) -> torch.Tensor:
        if self._resampler is None:
            return segment
        if self._resampler.kernel.device != segment.device:
            self._resampler = self._resampler.to(segment.device)
        return self._resampler(segment)

    def push(self, x: torch.Tensor) -> torch.Tensor:
        """Add input ``[C, n]``; return the output samples that are now final (float64 ``[C, m]``)."""
        x = x.to(torch.float64)
        if self._buf is None:
            self._buf = x
        else:
            if x.shape[0] != self._buf.shape[0]:
                raise ValueError("channel count changed between pushes")
            self._buf = torch.cat([self._buf, x], dim=1)
        channels = self._buf.shape[0]
        pending = self._buf.shape[1] - self._ctx
        ready = (pending - self.width) // self.orig * self.orig  # needs `width` samples of lookahead
        if ready <= 0:
            return self._buf.new_zeros(channels, 0)
        segment = self._buf[:, : self._ctx + ready + self.width]
        y = self._run(segment)
        start = self._ctx * self.new // self.orig
        out = y[:, start : start + ready * self.new // self.orig]
        self._consumed += ready
        new_ctx = min(self._consumed, self.left)
        self._buf = self._buf[:, self._ctx + ready - new_ctx :]
        self._ctx = new_ctx
        return out

    def flush(self) -> torch.Tensor:
        """Return the remaining output (the signal ends here, zero-padded like a one-shot resampling)."""
        if self._buf is None:
            return torch.zeros(0, 0, dtype=torch.float64)
        pending = self._buf.shape[1] - self._ctx
        channels = self._buf.shape[0]
        if pending <= 0:
            out = self._buf.new_zeros(channels, 0)
        else:
            y = self._run(self._buf)
            start = self._ctx * self.new // self.orig
            out = y[:, start : start + math.ceil(pending * self.new / self.orig)]
        self._buf, self._ctx = None, 0
        return out


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample ``wav [..., T]`` from ``orig_sr`` to ``new_sr`` Hz (Kaiser-best sinc, see module doc).

    Output length is ``ceil(T * new_sr / orig_sr)`` and dtype that of the input (float64 arithmetic
    inside, processed in bounded blocks). Equal rates return the input unchanged.
    """
    if not torch.is_floating_point(wav):
        raise MediaError(f"resample expects a floating point tensor, got {wav.dtype}")
    orig_sr = _check_rate("original sample rate", orig_sr)
    new_sr = _check_rate("target sample rate", new_sr)
    if orig_sr == new_sr:
        return wav
    lead = wav.shape[:-1]
    flat = wav.reshape(-1, wav.shape[-1])
    rs = StreamingResampler(orig_sr, new_sr)
    total_out = math.ceil(flat.shape[-1] * rs.new / rs.orig)
    out = torch.empty(flat.shape[0], total_out, dtype=wav.dtype, device=wav.device)
    pos = 0
    for start in range(0, flat.shape[-1], _RESAMPLE_CHUNK):
        piece = rs.push(flat[:, start : start + _RESAMPLE_CHUNK])
        out[:, pos : pos + piece.shape[1]] = piece
        pos += piece.shape[1]
    piece = rs.flush() if flat.shape[-1] else flat.new_zeros(flat.shape[0], 0)
    out[:, pos : pos + piece.shape[1]] = piece
    pos += piece.shape[1]
    assert pos == total_out, (pos, total_out)
    return out.reshape(*lead, total_out)


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    channels: ChannelPolicy = "keep",
    *,
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S,
) -> tuple[torch.Tensor, int]:
    """Read an audio file as float32 ``[C, T]`` and its sample rate.

    Samples are scaled as libsndfile does (integer PCM divided by 2**(bits-1), so in [-1, 1));
    float files are returned as stored (not clamped) but must be finite.

    Args:
        sample_rate: resample to this rate (None keeps the file's rate).
        channels: ``"keep"``; ``"mono"`` = mean of the channels; an int ``N``: 1 -> mean,
            ``N == C`` -> keep, mono input with ``N > 1`` -> duplicated, anything else MediaError.
        max_duration_s: refuse (before decoding) files longer than this; None disables the check.
            Files of any length can be read with :func:`iter_audio_blocks`.

    Returns:
        ``(wav [C, T] float32, sample_rate)``.
    """
    p = _check_input_path(path)
    if sample_rate is not None:
        sample_rate = _check_rate("requested sample rate", sample_rate)
    with _open(p) as f:
        info = _info_from(p, f)
        _resolve_channels(channels, info.channels, str(p))  # fail before decoding
        if max_duration_s is not None and info.duration > max_duration_s:
            raise MediaError(
                f"{p}: {info.duration:.1f} s of audio exceeds the limit of {max_duration_s:.1f} s "
                "(pass max_duration_s=None or read it blockwise)"
            )
        if info.num_frames * info.channels > MAX_TOTAL_SAMPLES:
            raise MediaError(
                f"{p}: {info.num_frames} frames x {info.channels} channels is too large to load at once"
            )
        try:
            data = f.read(dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError, OSError, ValueError) as exc:
            raise MediaError(f"cannot decode {p}: {exc}") from exc
    if data.shape[0] == 0:
        raise MediaError(f"{p}: contains no audio samples")
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    _check_finite(p, wav)
    wav = apply_channel_policy(wav, channels, str(p))
    rate = info.sample_rate
    if sample_rate is not None and sample_rate != rate:
        wav = resample(wav, rate, sample_rate)
        rate = sample_rate
    return wav.contiguous(), rate


def iter_audio_blocks(
    path: str | os.PathLike,
    block_frames: int,
    sample_rate: int | None = None,
    channels: ChannelPolicy = "keep",
) -> Iterator[torch.Tensor]:
    """Read a file of any length as float32 blocks ``[C, block_frames]`` with bounded memory.

    Blocks are at the output rate (``sample_rate`` or the file's own); only the last block may be
    shorter. Channel policy and resampling are those of :func:`load_audio`, and concatenating the
    blocks gives the same signal (up to float rounding). The file is checked (exists, is audio, not
    empty, channel policy applicable) when this function is called, not at the first block.
    """
    if isinstance(block_frames, bool) or not isinstance(block_frames, int) or block_frames < 1:
        raise MediaError(f"block_frames must be a positive int, got {block_frames!r}")
    p = _check_input_path(path)
    if sample_rate is not None:
        sample_rate = _check_rate("requested sample rate", sample_rate)
    f = _open(p)
    try:
        info = _info_from(p, f)
        _resolve_channels(channels, info.channels, str(p))
    except BaseException:
        f.close()
        raise
    return _blocks(p, f, info, block_frames, sample_rate, channels)


def _blocks(
    p: Path,
    f: sf.SoundFile,
    info: AudioInfo,
    block_frames: int,
    sample_rate: int | None,
    channels: ChannelPolicy,
) -> Iterator[torch.Tensor]:
    target = sample_rate or info.sample_rate
    rs = StreamingResampler(info.sample_rate, target) if target != info.sample_rate else None
    read_frames = max(65536, math.ceil(block_frames * info.sample_rate / target))
    pending: list[torch.Tensor] = []
    pending_len = 0
    frames_read = 0

    def take(out: torch.Tensor) -> Iterator[torch.Tensor]:
        nonlocal pending, pending_len
        if out.shape[1]:
            pending.append(out.to(torch.float32))
            pending_len += out.shape[1]
        while pending_len >= block_frames:
            joined = torch.cat(pending, dim=1) if len(pending) > 1 else pending[0]
            yield joined[:, :block_frames].contiguous()
            rest = joined[:, block_frames:]
            pending = [rest] if rest.shape[1] else []
            pending_len = rest.shape[1]

    with f:
        while True:
            try:
                data = f.read(read_frames, dtype="float32", always_2d=True)
            except (sf.SoundFileError, RuntimeError, OSError, ValueError) as exc:
                raise MediaError(f"cannot decode {p} near frame {frames_read}: {exc}") from exc
            if data.shape[0] == 0:
                break
            x = torch.from_numpy(np.ascontiguousarray(data.T))
            _check_finite(p, x, frames_read)
            frames_read += data.shape[0]
            x = apply_channel_policy(x, channels, str(p))
            yield from take(rs.push(x) if rs is not None else x)
        if frames_read == 0:
            raise MediaError(f"{p}: contains no audio samples")
        if rs is not None:
            yield from take(rs.flush())
        if pending_len:
            yield torch.cat(pending, dim=1).contiguous()


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _to_pcm(data: np.ndarray, bits: int, dtype: type) -> np.ndarray:
    """Round float64 samples in [-1, 1] to integers the way libsndfile reads them back (x * 2**(bits-1))."""
    scale = float(1 << (bits - 1))
    q = np.clip(np.rint(data * scale), -scale, scale - 1)
    if bits == 24:  # libsndfile keeps the top 24 bits of int32 data
        q = q * 256.0
    return q.astype(dtype)


def save_audio(
    path: str | os.PathLike,
    wav: torch.Tensor | np.ndarray,
    sample_rate: int,
    subtype: str | None = "PCM_16",
) -> None:
    """Write ``wav [C, T]`` (or ``[T]`` for mono) atomically; the format comes from the extension.

    ``.wav``/``.flac``/``.ogg`` are supported. ``subtype`` defaults to PCM_16 (VORBIS for ``.ogg``,
    where PCM is impossible; None picks the format's default). Samples are clamped to [-1, 1]
    before writing; integer PCM is rounded to nearest (``round(x * 2**(bits-1))``, so a read-back
    differs by at most half a step). Non-finite samples or an empty signal raise MediaError.
    """
    p = Path(path)
    fmt = _WRITE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise MediaError(f"cannot write audio to {p}: unsupported extension (use .wav, .flac or .ogg)")
    if subtype is None or (fmt == "OGG" and subtype == "PCM_16"):
        subtype = _DEFAULT_SUBTYPES[fmt]
    subtype = subtype.upper()
    if not sf.check_format(fmt, subtype):
        raise MediaError(f"cannot write {p}: subtype {subtype} is not valid for {fmt}")
    sample_rate = _check_rate("sample rate", sample_rate)

    x = wav.detach().cpu() if isinstance(wav, torch.Tensor) else torch.as_tensor(wav)
    if x.dim() == 1:
        x = x.unsqueeze(0)
    if x.dim() != 2:
        raise MediaError(f"cannot write {p}: expected audio of shape [C, T], got {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise MediaError(f"cannot write {p}: expected float samples, got {x.dtype}")
    c, t = x.shape
    if not 1 <= c <= MAX_CHANNELS:
        raise MediaError(f"cannot write {p}: {c} channels (1..{MAX_CHANNELS} supported)")
    if t == 0:
        raise MediaError(f"cannot write {p}: the signal has no samples")
    _check_finite(f"cannot write {p}", x)
    data = x.to(torch.float64).clamp_(-1.0, 1.0).numpy().T  # [T, C]
    if subtype in _PCM_SUBTYPES:
        bits, dtype = _PCM_SUBTYPES[subtype]
        data = _to_pcm(data, bits, dtype)
    data = np.ascontiguousarray(data)
    try:
        with atomic_path(p, suffix=p.suffix) as tmp:
            sf.write(str(tmp), data, sample_rate, format=fmt, subtype=subtype)
    except MediaError:
        raise
    except (NeuralCodecError, sf.SoundFileError, RuntimeError, OSError, ValueError) as exc:
        raise MediaError(f"cannot write {p}: {exc}") from exc
