"""Audio codec benchmark: the shipped speech/music models against Opus and Codec2 on held-out clips.

    python -m benchmarks.audio [--model speech|PATH.safetensors ...] [--quick] [--no-write] [--json OUT]

For each model, on a fixed selection of development clips that the training corpus excludes
(``SPEECH_CLIPS`` / ``MUSIC_CLIPS`` below; the training corpus builder drops every file of the
development set, and LJSpeech and CMU ARCTIC are not in it at all), measured in one run:

* actual kbit/s: size of the ``.bin`` file written by the ``codec encode`` code path (container
  header, chunk framing and CRCs included) x 8 / clip duration;
* PESQ-WB and STOI (speech only; :func:`neuralcodec.train.metrics.speech_quality`, at 16 kHz),
  pitch errors (speech only; :func:`neuralcodec.eval.pitch.pitch_errors`: median F0 error in cents,
  gross pitch, voicing and F0 frame error rates),
  mel distance (:class:`neuralcodec.train.losses.MultiResolutionMelLoss`, the validation metric)
  and SI-SDR (:func:`neuralcodec.train.metrics.si_sdr`) of the decoded file against the input;
* a constant delay of the decoded signal (within +-40 ms; cross-correlation of the amplitude
  envelopes, refined on the waveforms only where they correlate) is removed before scoring, and the
  delay is reported, so that Codec2's ~16 ms algorithmic delay does not count as distortion. (Until
  2026-12 the lag came from the waveforms alone, which for phase-free decoders peaks at a random
  lag: our models' STOI was under-reported, e.g. speech v0.3 0.660 instead of 0.777);
* encode and decode speed in multiples of real time on 2 torch threads (file to file, model
  loading excluded, after one warm-up clip);
* entropy-coding saving: token payload bits (the token prior's byte strings, without chunk or
  container framing) against nominal bits (frames x sum of log2 codebook sizes);
* EnCodec's architecture (PyPI ``encodec``, 24 kHz model, random weights: speed only) at the
  bandwidth closest to the model's actual bitrate: encode+decode speed on the same clips, against
  the model's own tensor-level ``encode`` + ``decode`` (no entropy coding on either side).

Baselines (same clips, same metrics) go through ffmpeg: Opus (libopus, default ``audio``
application, VBR) at 6 and 12 kbit/s in Ogg, and Codec2 (libcodec2, 8 kHz) at 1600 and 3200 bit/s
in ffmpeg's ``.c2`` container; if ffmpeg lacks libcodec2, Debian's ``c2enc``/``c2dec`` are used on
raw 8 kHz PCM. A missing tool gives an "n/a" row with the reason. Baseline speeds are not
measured (process start-up would dominate).

Speech clips are down-mixed to mono and resampled to 16 kHz, music clips (excerpts of up to 10 s) to
44.1 kHz mono; that 16-bit WAV is the input to every codec and the reference of every metric.
``--quick`` runs 2 clips (a smoke test of the whole pipeline).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from benchmarks.results import machine_line, update_section
from neuralcodec.eval.anchors import Transcoder, baselines, content_kind
from neuralcodec.eval.scoring import score

DEV_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
THREADS = 2

#: (path under DEV_DATA, corpus, speakers seen in training?) - 16 clips, 7 speakers, 3 languages
SPEECH_CLIPS: tuple[tuple[str, str, bool], ...] = (
    ("speech/cmu_arctic/cmu_arctic_unknown_male_a0010.flac", "cmu_arctic", False),
    ("speech/cmu_arctic/cmu_arctic_us_aew_a0001.flac", "cmu_arctic", False),
    ("speech/cmu_arctic/cmu_arctic_us_aew_a0002.flac", "cmu_arctic", False),
    ("speech/cmu_arctic/cmu_arctic_us_axb_a0004.flac", "cmu_arctic", False),
    ("speech/cmu_arctic/cmu_arctic_us_axb_a0006.flac", "cmu_arctic", False),
    ("speech/ljspeech/LJ001-0004.flac", "ljspeech", False),
    ("speech/ljspeech/LJ001-0011.flac", "ljspeech", False),
    ("speech/ljspeech/LJ001-0016.flac", "ljspeech", False),
    ("speech/ljspeech/LJ001-0020.flac", "ljspeech", False),
    ("speech/asterisk_en_allison/auth-incorrect.flac", "asterisk_en", True),
    ("speech/asterisk_en_allison/vm-intro.flac", "asterisk_en", True),
    ("speech/asterisk_it_carlo/auth-incorrect.flac", "asterisk_it", True),
    ("speech/asterisk_it_carlo/vm-review.flac", "asterisk_it", True),
    ("speech/asterisk_ru_ivrvoice/pls-hold-while-try.flac", "asterisk_ru", True),
    ("speech/asterisk_ru_ivrvoice/vm-intro.flac", "asterisk_ru", True),
    ("speech/cmu_arctic/cmu_arctic_us_axb_a0005.flac", "cmu_arctic", False),
)
#: (path under DEV_DATA, corpus, start s, seconds)
MUSIC_CLIPS: tuple[tuple[str, str, float, float], ...] = (
    ("music/librosa/brahms_hungarian_dance_5_us_army_strings.flac", "librosa", 10.0, 10.0),
    ("music/librosa/karissa_hobbs_lets_go_fishin.flac", "librosa", 20.0, 10.0),
    ("music/librosa/kevin_macleod_sugar_plum_fairy.flac", "librosa", 10.0, 10.0),
    ("music/librosa/kevin_macleod_vibe_ace.flac", "librosa", 20.0, 10.0),
    ("music/librosa/sorohan_solo_trumpet_06.flac", "librosa", 0.0, 10.0),
    ("music/sonic_pi/loop_amen_full.flac", "sonic_pi", 0.0, 10.0),
    ("music/sonic_pi/guit_em9.flac", "sonic_pi", 0.0, 10.0),
    ("music/sonic_pi/loop_tabla.flac", "sonic_pi", 0.0, 10.0),
    ("music/sonic_pi/ambi_piano.flac", "sonic_pi", 0.0, 10.0),
)
QUICK = {"speech": (0, 9), "music": (0, 5)}  # indices of the --quick clips
EVAL_RATES = {"speech": 16000, "music": 44100}


# ---------------------------------------------------------------------------------------------
# clips
# ---------------------------------------------------------------------------------------------


@dataclass
class Clip:
    name: str
    corpus: str
    seen_speaker: bool
    wav_path: Path  # 16-bit mono WAV at the evaluation rate: the input of every codec
    reference: torch.Tensor  # [T] float32, that file read back
    rate: int

    @property
    def duration(self) -> float:
        return self.reference.numel() / self.rate


def prepare_clips(kind: str, quick: bool, data: Path, workdir: Path) -> list[Clip]:
    """Read, down-mix, resample and crop the selected clips; write each as the common 16-bit input."""
    from neuralcodec.media.audio import load_audio, save_audio

    rate = EVAL_RATES[kind]
    table = SPEECH_CLIPS if kind == "speech" else MUSIC_CLIPS
    chosen = [table[i] for i in QUICK[kind]] if quick else list(table)
    clips = []
    for entry in chosen:
        rel, corpus = entry[0], entry[1]
        wav, _ = load_audio(data / rel, sample_rate=rate, channels="mono")
        if kind == "music":
            start, seconds = entry[2], entry[3]
            wav = wav[:, int(start * rate): int((start + seconds) * rate)]
        name = f"{corpus}/{Path(rel).stem}"
        path = workdir / "ref" / f"{corpus}__{Path(rel).stem}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_audio(path, wav, rate)
        reference, _ = load_audio(path)
        clips.append(Clip(name, corpus, bool(entry[2]) if kind == "speech" else False, path, reference[0], rate))
    return clips


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------

# delay removal and scoring: neuralcodec.eval.scoring (shared with `codec demo`)


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One codec (model or baseline) over all clips."""

    label: str
    per_clip: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""  # why the row is n/a
    encode_s: float = 0.0
    decode_s: float = 0.0
    timed_s: float = 0.0  # audio seconds behind encode_s/decode_s
    payload_bits: int = 0
    nominal_bits: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def mean(self, key: str, corpus: str | None = None) -> float:
        values = [c[key] for c in self.per_clip if (corpus is None or c["corpus"] == corpus) and not math.isnan(c[key])]
        return float(np.mean(values)) if values else math.nan

    @property
    def kbps(self) -> float:
        """Total file bits over total duration."""
        seconds = sum(c["duration"] for c in self.per_clip)
        return sum(c["file_bytes"] * 8 for c in self.per_clip) / seconds / 1000 if seconds else math.nan


def _clip_row(clip: Clip, file_bytes: int, decoded: torch.Tensor, speech: bool) -> dict[str, Any]:
    return {"clip": clip.name, "corpus": clip.corpus, "duration": clip.duration, "rate": clip.rate,
            "file_bytes": file_bytes, "kbps": file_bytes * 8 / clip.duration / 1000, **score(decoded, clip.reference, clip.rate, speech)}


# ---------------------------------------------------------------------------------------------
# the neural codec, through the `codec encode` / `codec decode` code path
# ---------------------------------------------------------------------------------------------


@contextmanager
def _preloaded(codec) -> Iterator[None]:
    """Make the CLI's model loader return ``codec`` (so timings exclude loading from disk)."""
    from neuralcodec.cli import coding

    original = coding._load
    coding._load = lambda name: codec
    try:
        yield
    finally:
        coding._load = original


def cli_encode(codec, src: Path, dst: Path) -> None:
    """Exactly what ``codec encode SRC DST --model ...`` runs, with the model already in memory."""
    from neuralcodec.cli import build_parser, coding

    # Parsed by the real parser, so a new `codec encode` option cannot leave this call behind.
    args = build_parser().parse_args(["encode", str(src), str(dst), "--model", codec.model_id, "--quiet"])
    with _preloaded(codec):
        coding.run_encode(args)


def cli_decode(codec, src: Path, dst: Path) -> None:
    """Exactly what ``codec decode SRC DST`` runs, with the model already in memory."""
    from neuralcodec.cli import build_parser, coding

    args = build_parser().parse_args(["decode", str(src), str(dst), "--model", codec.model_id, "--quiet"])
    with _preloaded(codec):
        coding.run_decode(args)


def token_bits(codec, path: Path) -> tuple[int, float]:
    """(token payload bits, nominal bits) of an audio ``.bin`` file.

    Each audio chunk holds, per channel, a ``u32`` length and the token prior's byte string
    (see ``AudioCodec._chunk_payloads``); only the byte strings count as payload.
    """
    from neuralcodec.bitstream import BitstreamReader

    payload = 0
    with BitstreamReader(path) as reader:
        meta = dict(reader.header.metadata)
        channels, q = int(meta["channels"]), int(meta["num_codebooks"])
        for index, chunk in enumerate(reader.chunks()):
            offset = 0
            for _ in range(channels):
                (n,) = struct.unpack_from("<I", chunk, offset)
                payload += 8 * n
                offset += 4 + n
            if offset != len(chunk):
                raise RuntimeError(f"{path}: chunk {index} is not 'u32 length + bytes' per channel; "
                                   "update benchmarks.audio.token_bits to the codec's chunk layout")
    model_samples = math.ceil(int(meta["num_samples"]) * codec.sample_rate / int(meta["sample_rate"]))
    frames = math.ceil(model_samples / codec.hop_length)
    nominal = frames * channels * sum(math.log2(s) for s in codec.codebook_sizes[:q])
    return payload, nominal


def run_model(codec, label: str, clips: list[Clip], workdir: Path, speech: bool) -> Run:
    from neuralcodec.media.audio import load_audio

    run = Run(label)
    out_dir = workdir / "model"
    out_dir.mkdir(parents=True, exist_ok=True)
    cli_encode(codec, clips[0].wav_path, out_dir / "warmup.bin")  # first calls allocate and build kernels
    cli_decode(codec, out_dir / "warmup.bin", out_dir / "warmup.wav")
    for clip in clips:
        bin_path, wav_path = out_dir / f"{clip.wav_path.stem}.bin", out_dir / f"{clip.wav_path.stem}.wav"
        start = time.perf_counter()
        cli_encode(codec, clip.wav_path, bin_path)
        middle = time.perf_counter()
        cli_decode(codec, bin_path, wav_path)
        end = time.perf_counter()
        run.encode_s += middle - start
        run.decode_s += end - middle
        run.timed_s += clip.duration
        payload, nominal = token_bits(codec, bin_path)
        run.payload_bits += payload
        run.nominal_bits += nominal
        decoded, _ = load_audio(wav_path)
        run.per_clip.append(_clip_row(clip, bin_path.stat().st_size, decoded[0], speech))
    run.extra["tensor_xrt"] = tensor_speed(codec, clips)
    return run


def tensor_speed(codec, clips: list[Clip]) -> float:
    """Model-only speed (tokenizer ``encode`` + ``decode`` of in-memory tensors), multiples of real time."""
    total = seconds = 0.0
    with torch.no_grad():
        codec.decode(codec.encode(clips[0].reference[None, None], sample_rate=clips[0].rate))
        for clip in clips:
            x = clip.reference[None, None]
            start = time.perf_counter()
            codec.decode(codec.encode(x, sample_rate=clip.rate))
            total += time.perf_counter() - start
            seconds += clip.duration
    return seconds / total


# ---------------------------------------------------------------------------------------------
# baselines through ffmpeg (or codec2's own tools)
# ---------------------------------------------------------------------------------------------


# the transcoders and the anchor list: neuralcodec.eval.anchors (shared with `codec demo`)


def run_baseline(label: str, transcode: Transcoder, suffix: str, clips: list[Clip], workdir: Path, speech: bool) -> Run:
    from neuralcodec.media.audio import load_audio

    run = Run(label)
    folder = workdir / label.replace(" ", "_").replace("(", "").replace(")", "")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for clip in clips:
            coded, out = folder / f"{clip.wav_path.stem}{suffix}", folder / f"{clip.wav_path.stem}.wav"
            transcode(clip.wav_path, coded, out, clip.rate)
            decoded, _ = load_audio(out, channels="mono")
            run.per_clip.append(_clip_row(clip, coded.stat().st_size, decoded[0], speech))
    except Exception as exc:  # a broken tool must not stop the benchmark
        run.per_clip, run.note = [], f"{type(exc).__name__}: {exc}"
    return run


# ---------------------------------------------------------------------------------------------
# EnCodec speed reference
# ---------------------------------------------------------------------------------------------


def encodec_speed(clips: list[Clip], kbps: float) -> dict[str, Any]:
    """EnCodec 24 kHz (random weights) encode+decode speed at the bandwidth closest to ``kbps``."""
    try:
        from encodec import EncodecModel
    except ImportError:
        return {"note": "PyPI package 'encodec' not installed (pip install encodec); EnCodec speed skipped"}
    from neuralcodec.media.audio import resample

    torch.manual_seed(0)
    model = EncodecModel.encodec_model_24khz(pretrained=False).eval()
    bandwidth = min(model.target_bandwidths, key=lambda b: abs(b - kbps))
    model.set_target_bandwidth(bandwidth)
    inputs = [resample(c.reference, c.rate, 24000)[None, None] for c in clips]
    enc = dec = seconds = 0.0
    with torch.no_grad():
        model.decode(model.encode(inputs[0]))
        for x, clip in zip(inputs, clips):
            start = time.perf_counter()
            frames = model.encode(x)
            middle = time.perf_counter()
            model.decode(frames)
            end = time.perf_counter()
            enc, dec, seconds = enc + middle - start, dec + end - middle, seconds + clip.duration
    return {"bandwidth_kbps": bandwidth, "encode_xrt": seconds / enc, "decode_xrt": seconds / dec,
            "xrt": seconds / (enc + dec)}


# ---------------------------------------------------------------------------------------------
# reporting
# ---------------------------------------------------------------------------------------------


def _f(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def table(runs: list[Run], speech: bool) -> list[str]:
    lines = ["| codec | kbit/s (file) | PESQ-WB | STOI | mel dist. | SI-SDR dB | delay ms | encode xRT | decode xRT |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        if run.note:
            lines.append(f"| {run.label} | n/a ({run.note}) | | | | | | | |")
            continue
        enc = _f(run.timed_s / run.encode_s, 1) if run.encode_s else "-"
        dec = _f(run.timed_s / run.decode_s, 1) if run.decode_s else "-"
        pesq = _f(run.mean("pesq_wb")) if speech else "-"
        stoi = _f(run.mean("stoi"), 3) if speech else "-"
        lines.append(f"| {run.label} | {_f(run.kbps, 3)} | {pesq} | {stoi} | {_f(run.mean('mel'), 3)} | "
                     f"{_f(run.mean('si_sdr'), 1)} | {_f(1000 * run.mean('delay') / run.per_clip[0]['rate'], 1)} | "
                     f"{enc} | {dec} |")
    return lines


def pitch_table(runs: list[Run]) -> list[str]:
    """Pitch fidelity per codec (:mod:`neuralcodec.eval.pitch`), means of the per-clip figures."""
    lines = ["| codec | F0 error (median cents) | gross pitch error | voicing error | F0 frame error |",
             "|---|---|---|---|---|"]
    for run in runs:
        if not run.note:
            lines.append(f"| {run.label} | {_f(run.mean('f0_cents'), 0)} | {_f(100 * run.mean('gpe'), 1)} % | "
                         f"{_f(100 * run.mean('vde'), 1)} % | {_f(100 * run.mean('ffe'), 1)} % |")
    return lines


def corpus_table(runs: list[Run], corpora: list[str], key: str, digits: int) -> list[str]:
    lines = ["| codec | " + " | ".join(corpora) + " |", "|---" * (len(corpora) + 1) + "|"]
    for run in runs:
        if not run.note:
            lines.append(f"| {run.label} | " + " | ".join(_f(run.mean(key, c), digits) for c in corpora) + " |")
    return lines


def model_notes(run: Run, codec, runs: list[Run], speech: bool) -> list[str]:
    saving = 1 - run.payload_bits / run.nominal_bits if run.nominal_bits else math.nan
    seconds = run.timed_s
    lines = [f"**{run.label}** ({codec.sample_rate} Hz, {codec.frame_rate:g} frames/s, "
             f"codes of {' + '.join(str(n) for n in codec.codebook_sizes[:codec.default_codebooks])} entries):",
             f"- nominal {codec.nominal_bitrate() / 1000:.3f} kbit/s; token payload "
             f"{run.payload_bits / seconds / 1000:.3f} kbit/s, i.e. entropy coding saves {100 * saving:.1f} % of the "
             f"nominal bits; the file adds {(run.kbps * 1000 - run.payload_bits / seconds) / 1000:.3f} kbit/s of "
             "container and chunk framing on these short clips.",
             f"- speed on {THREADS} threads, file to file: encode {seconds / run.encode_s:.1f}x, decode "
             f"{seconds / run.decode_s:.1f}x, encode + decode {seconds / (run.encode_s + run.decode_s):.1f}x "
             "real time; "
             f"tensor-level encode + decode {run.extra['tensor_xrt']:.1f}x."]
    ref = run.extra.get("encodec", {})
    if "note" in ref:
        lines.append(f"- EnCodec: {ref['note']}.")
    elif ref:
        lines.append(f"- EnCodec 24 kHz architecture (random weights) at {ref['bandwidth_kbps']:g} kbit/s: encode "
                     f"{ref['encode_xrt']:.1f}x, decode {ref['decode_xrt']:.1f}x, encode + decode {ref['xrt']:.1f}x "
                     f"real time; this model is {run.extra['tensor_xrt'] / ref['xrt']:.2f}x as fast (tensor level).")
    if speech:
        by_label = {r.label.split(" (")[0]: r for r in runs if not r.note}
        checks = [f"actual {run.kbps:.3f} kbit/s {'<=' if run.kbps <= 1.5 else '>'} 1.5",
                  f"entropy saving {100 * saving:.1f} % {'>=' if saving >= 0.10 else '<'} 10 %",
                  f"encode + decode {seconds / (run.encode_s + run.decode_s):.1f}x "
                  f"{'>=' if seconds / (run.encode_s + run.decode_s) >= 20 else '<'} 20x"]
        for name in ("Codec2 1.6 kbps", "Opus 6 kbps"):
            other = by_label.get(name)
            if other is not None:
                for key, text in (("pesq_wb", "PESQ-WB"), ("stoi", "STOI")):
                    a, b = run.mean(key), other.mean(key)
                    checks.append(f"{text} {_f(a)} {'>' if a > b else '<='} {name} {_f(b)}")
        lines.append("- targets: " + "; ".join(checks) + ".")
    return lines


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


def _default_models() -> list[str]:
    from neuralcodec.bitstream import Modality
    from neuralcodec.codecs.registry import available_models, load_codec

    return [name for name in available_models() if load_codec(name).modality == Modality.AUDIO]


def clip_kind(codec, requested: str) -> str:
    return content_kind(codec) if requested == "auto" else requested


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="shipped model name or exported .safetensors (repeatable; "
                        "default: every shipped audio model)")
    parser.add_argument("--clips", choices=("auto", "speech", "music"), default="auto",
                        help="clip set (auto: music for models named 'music*' or >= 32 kHz, else speech)")
    parser.add_argument("--quick", action="store_true", help="2 clips per set (smoke test)")
    parser.add_argument("--data", type=Path, default=DEV_DATA, help=f"development media folder (default {DEV_DATA})")
    parser.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/RESULTS.md alone")
    parser.add_argument("--json", type=Path, help="also write every per-clip figure to this JSON file")
    args = parser.parse_args(argv)

    from neuralcodec.codecs.registry import load_codec

    torch.set_num_threads(THREADS)
    models = args.model or _default_models()
    if not models:
        parser.error("no audio model is shipped in neuralcodec/pretrained yet; pass --model PATH.safetensors")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    sections: list[str] = []
    dump: dict[str, Any] = {}
    baseline_cache: dict[str, list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="nc-audio-bench-") as tmp:
        workdir = Path(tmp)
        clip_cache: dict[str, list[Clip]] = {}
        for spec in models:
            codec = load_codec(spec)
            kind = clip_kind(codec, args.clips)
            speech = kind == "speech"
            if kind not in clip_cache:
                clip_cache[kind] = prepare_clips(kind, args.quick, args.data, workdir / kind)
            clips = clip_cache[kind]
            label = f"{codec.model_id} ({Path(spec).name if str(spec).endswith('.safetensors') else 'shipped'})"
            print(f"[{label}] {len(clips)} {kind} clips, {sum(c.duration for c in clips):.1f} s")
            run = run_model(codec, label, clips, workdir / kind / codec.model_id, speech)
            run.extra["encodec"] = encodec_speed(clips, run.kbps)
            if kind not in baseline_cache:
                baseline_cache[kind] = []
                for name, transcode, why, suffix in baselines(kind):
                    print(f"  baseline {name}")
                    baseline_cache[kind].append(run_baseline(name, transcode, suffix, clips, workdir / kind, speech)
                                                if transcode else Run(name, note=why))
            runs = [run, *baseline_cache[kind]]
            corpora = list(dict.fromkeys(c.corpus for c in clips))
            lines = [f"### {label} on {len(clips)} held-out {kind} clips ({sum(c.duration for c in clips):.1f} s)", ""]
            lines += table(runs, speech) + [""]
            if speech:
                lines += ["PESQ-WB by corpus (asterisk speakers occur in the training corpus with other prompts; "
                          "cmu_arctic and ljspeech speakers do not):", ""]
                lines += corpus_table(runs, corpora, "pesq_wb", 2) + [""]
                lines += ["Pitch of the decoded speech against the input (Praat autocorrelation F0, 10 ms frames, "
                          "60-500 Hz; gross: off by > 20 %, on frames voiced in both; voicing: voiced in one only; "
                          "F0 frame error: either, over all frames):", ""]
                lines += pitch_table(runs) + [""]
            else:
                lines += ["Mel distance by corpus:", ""] + corpus_table(runs, corpora, "mel", 3) + [""]
            lines += model_notes(run, codec, runs, speech)
            section = "\n".join(lines)
            print(section + "\n")
            sections.append(section)
            dump[label] = {"clips": [c.name for c in clips], "runs": {r.label: {"note": r.note, "per_clip": r.per_clip,
                           "encode_s": r.encode_s, "decode_s": r.decode_s, "payload_bits": r.payload_bits,
                           "nominal_bits": r.nominal_bits, "extra": r.extra} for r in runs}}
    command = " ".join(["python -m benchmarks.audio", *(["--quick"] if args.quick else []),
                        *(f"--model {m}" for m in (args.model or []))])
    header = ["## Audio codecs", "",
              f"Written by `{command}` on {machine_line()}; 1-min load average {load:.2f} at the start (other jobs running on the "
              "machine slow the timings down).",
              "Input and reference: the 16-bit mono WAV at the evaluation rate (speech 16 kHz, music 44.1 kHz). "
              "kbit/s = file bytes x 8 / duration (containers included: `.bin`, Ogg, `.c2`); xRT = multiples of "
              "real time on 2 threads; SI-SDR is not meaningful for parametric or generative codecs.", ""]
    markdown = "\n".join(header + ["\n\n".join(sections)])
    if args.json:
        args.json.write_text(json.dumps(dump, indent=1))
    if not args.no_write:
        update_section("audio", markdown)
        print("updated benchmarks/RESULTS.md (section 'audio')")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
