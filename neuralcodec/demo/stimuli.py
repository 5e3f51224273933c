"""Audio stimuli of the demo: one input coded by a model at each shipped bitrate and by the anchors.

For every (model, input) pair the input is down-mixed to mono, resampled to the model's rate and
cropped; that 16-bit WAV is the reference, the input of every codec and of the metrics. Decoded
signals are stored delay-aligned and cut to the reference length (so a listener cannot spot a
codec by its delay), with a spectrogram each, and scored against the reference.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

#: cut-off of the MUSHRA low-pass anchor (ITU-R BS.1534-3)
LOWPASS_HZ = 3500.0


@dataclass
class Stimulus:
    """One condition of one item: a playable file (unless ``note`` says why not) and its figures."""

    key: str  # condition name, unique within an item (also the MUSHRA condition)
    role: str  # "reference", "ours", "anchor" or "lowpass"
    audio: str = ""  # site-relative path
    spectrogram: str = ""
    kbps: float = math.nan  # actual: compressed file bytes x 8 / duration
    metrics: dict[str, float] = field(default_factory=dict)
    note: str = ""


@dataclass
class AudioItem:
    """One input as heard through one model and the anchors."""

    model: str
    name: str
    rate: int
    duration: float
    stimuli: list[Stimulus]

    def by_role(self, role: str) -> list[Stimulus]:
        return [s for s in self.stimuli if s.role == role]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def have_speech_metrics() -> bool:
    """Whether PESQ and STOI can be computed (PyPI ``pesq`` and ``pystoi``)."""
    try:
        import pesq  # noqa: F401
        import pystoi  # noqa: F401
    except ImportError:
        return False
    return True


def lowpass(wav: torch.Tensor, rate: int, cutoff: float = LOWPASS_HZ) -> torch.Tensor:
    """Zero-phase brick-wall low-pass of ``[T]`` (FFT bins above ``cutoff`` set to zero)."""
    spectrum = torch.fft.rfft(wav.double())
    freqs = torch.fft.rfftfreq(wav.numel(), d=1.0 / rate)
    spectrum[freqs > cutoff] = 0
    return torch.fft.irfft(spectrum, n=wav.numel()).float()


def shipped_bitrates(codec) -> list[float]:
    """Nominal kbit/s of each codebook setting a stream of an audio model may use, lowest first
    (every count for RVQ; whole stages for group-residual VQ; the pitch row always included)."""
    return [codec.nominal_bitrate(q) / 1000 for q in codec.codebook_settings]


def _site_path(site: Path, path: Path) -> str:
    return path.relative_to(site).as_posix()


def build_audio_item(codec, model: str, source: Path, name: str, site: Path, seconds: float,
                     speech_metrics: bool) -> AudioItem:
    """Code ``source`` with ``codec`` at every shipped bitrate and with the anchors; write files under ``site``."""
    from neuralcodec.cli.coding import decode_to_file, encode_to_file
    from neuralcodec.demo.plots import spectrogram_png
    from neuralcodec.errors import MediaError
    from neuralcodec.eval.anchors import baselines, content_kind
    from neuralcodec.eval.scoring import align, score
    from neuralcodec.media.audio import load_audio, save_audio

    rate = codec.sample_rate
    kind = content_kind(codec)
    speech = kind == "speech" and speech_metrics
    folder = site / "audio" / model / name
    folder.mkdir(parents=True, exist_ok=True)
    wav, _ = load_audio(source, sample_rate=rate, channels="mono")
    wav = wav[:, : int(seconds * rate)]
    if wav.shape[1] < rate // 4:
        raise MediaError(f"{source}: shorter than 0.25 s; too short for a listening test")
    ref_path = folder / "reference.wav"
    save_audio(ref_path, wav, rate)
    reference = load_audio(ref_path)[0][0]
    duration = reference.numel() / rate

    def add(key: str, role: str, signal: torch.Tensor, stem: str, **extra: Any) -> Stimulus:
        path = folder / f"{stem}.wav"
        save_audio(path, signal[None], rate)
        png = folder / f"{stem}.png"
        spectrogram_png(signal, rate, png, key)
        return Stimulus(key, role, _site_path(site, path), _site_path(site, png), **extra)

    stimuli = [add("reference", "reference", reference, "reference")]
    stimuli.append(add(f"low-pass {LOWPASS_HZ / 1000:g} kHz", "lowpass", lowpass(reference, rate), "lowpass"))
    with tempfile.TemporaryDirectory(prefix="nc-demo-") as tmp:
        work = Path(tmp)
        for q, kbps in enumerate(shipped_bitrates(codec), start=1):
            key, stem = f"{model} {kbps:g} kbps", f"ours_q{q}"
            bin_path, out_path = work / f"{stem}.bin", work / f"{stem}.wav"
            encode_to_file(codec, ref_path, bin_path, bitrate=kbps)
            decode_to_file(codec, bin_path, out_path)
            decoded = load_audio(out_path, channels="mono")[0][0]
            stimuli.append(add(key, "ours", align(decoded, reference, rate)[0], stem,
                               kbps=bin_path.stat().st_size * 8 / duration / 1000,
                               metrics=score(decoded, reference, rate, speech)))
        for label, transcode, why, suffix in baselines(kind):
            stem = "".join(ch if ch.isalnum() else "_" for ch in label.lower())
            if transcode is None:
                stimuli.append(Stimulus(label, "anchor", note=why))
                continue
            coded, out_path = work / f"{stem}{suffix}", work / f"{stem}.wav"
            try:
                transcode(ref_path, coded, out_path, rate)
                decoded = load_audio(out_path, channels="mono")[0][0]
            except (RuntimeError, OSError, MediaError) as exc:  # a broken tool gives an n/a row, not a failed site
                stimuli.append(Stimulus(label, "anchor", note=str(exc)))
                continue
            stimuli.append(add(label, "anchor", align(decoded, reference, rate)[0], stem,
                               kbps=coded.stat().st_size * 8 / duration / 1000,
                               metrics=score(decoded, reference, rate, speech)))
    return AudioItem(model, name, rate, duration, stimuli)
