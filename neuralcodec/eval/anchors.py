"""Classic audio anchors (Opus, Codec2) run through ffmpeg or Debian's ``c2enc``/``c2dec``.

A transcoder takes ``(input wav, compressed file, decoded wav, rate)``: it writes the compressed
file (whose size is the anchor's actual bitrate) and the decoded audio at ``rate``, mono.
:func:`baselines` lists the anchors for a kind of content with the reason when one is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
import torch

Transcoder = Callable[[Path, Path, Path, int], None]
#: (label, transcoder or None, reason when None, compressed file extension)
Baseline = tuple[str, "Transcoder | None", str, str]

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def run_tool(cmd: list[str]) -> None:
    """Run an external command; raise ``RuntimeError`` with the last line of its stderr on failure."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{Path(cmd[0]).name} failed: {tail}")


def ffmpeg_encoders() -> tuple[set[str], str]:
    """Names of ffmpeg's audio encoders (empty, with a reason, when ffmpeg is unusable)."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return set(), "ffmpeg not found on PATH (apt-get install ffmpeg)"
    proc = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True)
    rows = [line.split() for line in proc.stdout.splitlines()]
    return {row[1] for row in rows if len(row) > 1 and row[0].startswith("A")}, ""


def _ffmpeg(*args: str) -> list[str]:
    return ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *args]


def opus_transcoder(kbps: int) -> Transcoder:
    """Opus (libopus, VBR, default application) at ``kbps`` in an Ogg file."""
    def run(src: Path, coded: Path, out: Path, rate: int) -> None:
        opus_rate = rate if rate in OPUS_RATES else 48000
        run_tool(_ffmpeg("-i", str(src), "-ar", str(opus_rate), "-c:a", "libopus", "-b:a", f"{kbps}k",
                         "-f", "ogg", str(coded)))
        run_tool(_ffmpeg("-i", str(coded), "-ar", str(rate), "-ac", "1", "-c:a", "pcm_s16le", str(out)))
    return run


def codec2_ffmpeg_transcoder(mode: int) -> Transcoder:
    """Codec2 (libcodec2 in ffmpeg, 8 kHz) at ``mode`` bit/s in ffmpeg's ``.c2`` container."""
    def run(src: Path, coded: Path, out: Path, rate: int) -> None:
        run_tool(_ffmpeg("-i", str(src), "-ar", "8000", "-ac", "1", "-c:a", "libcodec2", "-mode", str(mode),
                         "-f", "codec2", str(coded)))
        run_tool(_ffmpeg("-i", str(coded), "-ar", str(rate), "-ac", "1", "-c:a", "pcm_s16le", str(out)))
    return run


def codec2_tools_transcoder(mode: int) -> Transcoder:
    """Debian ``codec2`` package route: raw 8 kHz s16 PCM through ``c2enc``/``c2dec``."""
    def run(src: Path, coded: Path, out: Path, rate: int) -> None:
        from neuralcodec.media.audio import load_audio, resample, save_audio

        wav, r = load_audio(src, channels="mono")
        pcm = (resample(wav, r, 8000)[0].clamp(-1, 1 - 2**-15) * 32768).round().to(torch.int16).numpy()
        raw_in, raw_out = coded.with_suffix(".raw"), coded.with_suffix(".dec.raw")
        raw_in.write_bytes(pcm.tobytes())
        run_tool(["c2enc", str(mode), str(raw_in), str(coded)])
        run_tool(["c2dec", str(mode), str(coded), str(raw_out)])
        dec = torch.from_numpy(np.frombuffer(raw_out.read_bytes(), dtype=np.int16).astype(np.float32) / 32768)
        save_audio(out, resample(dec[None], 8000, rate), rate)
    return run


def baselines(kind: str) -> list[Baseline]:
    """Opus 6/12 kbit/s, plus Codec2 1.6/3.2 kbit/s for ``kind == "speech"``; missing tools give None."""
    encoders, why = ffmpeg_encoders()
    rows: list[Baseline] = []
    for kbps in (6, 12):
        ok = "libopus" in encoders
        rows.append((f"Opus {kbps} kbps", opus_transcoder(kbps) if ok else None,
                     why or "ffmpeg has no libopus encoder", ".opus"))
    if kind == "speech":
        for mode in (1600, 3200):
            label = f"Codec2 {mode / 1000:.1f} kbps"
            if "libcodec2" in encoders:
                rows.append((label, codec2_ffmpeg_transcoder(mode), "", ".c2"))
            elif shutil.which("c2enc") and shutil.which("c2dec"):
                rows.append((label + " (c2enc)", codec2_tools_transcoder(mode), "", ".c2"))
            else:
                rows.append((label, None, (why or "ffmpeg has no libcodec2") + "; c2enc/c2dec not found "
                             "(apt-get install codec2)", ".c2"))
    return rows


def content_kind(codec) -> str:
    """``"music"`` for models named ``music*`` or running at >= 32 kHz, else ``"speech"``."""
    return "music" if "music" in codec.model_id.lower() or codec.sample_rate >= 32000 else "speech"
