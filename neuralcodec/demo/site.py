"""Build the static demo site: overview, audio samples, MUSHRA test and image comparison pages.

The site is written into a temporary folder next to the target and renamed into place at the
end, so a failed build never leaves a partial site (an existing site at the target, recognised by
its marker file, is replaced; any other existing folder is refused).
"""

from __future__ import annotations

import datetime as _dt
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from neuralcodec.errors import ModelError, UsageError

DEMOS_DIR = Path(__file__).resolve().parents[2] / "demos"
MARKER = ".neuralcodec-demo"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: models tried when ``--models`` is not given, besides the shipped ones (skipped with a note if absent)
EXPECTED_MODELS = ("image", "video")


@dataclass
class Models:
    audio: dict[str, Any] = field(default_factory=dict)
    image: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def demos_dir() -> Path:
    """The repository's ``demos/`` folder (templates and static files)."""
    if not (DEMOS_DIR / "templates").is_dir() or not (DEMOS_DIR / "static").is_dir():
        raise UsageError(f"demo templates not found in {DEMOS_DIR} (codec demo runs from a source checkout)")
    return DEMOS_DIR


def safe_name(relative: Path) -> str:
    """A file-system and URL safe name for an input path (``a/b c.wav`` -> ``a__b_c``)."""
    parts = list(relative.with_suffix("").parts)
    return "__".join("".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in p) for p in parts).strip(".")


def collect_inputs(directory: Path, limit: int | None = None) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """(audio, image) inputs found under ``directory`` (recursively, sorted), as (site name, path)."""
    if not directory.is_dir():
        raise UsageError(f"--inputs: not a directory: {directory}")
    audio: list[tuple[str, Path]] = []
    images: list[tuple[str, Path]] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".")):
        suffix = path.suffix.lower()
        target = audio if suffix in AUDIO_SUFFIXES else images if suffix in IMAGE_SUFFIXES else None
        if target is not None and (limit is None or len(target) < limit):
            target.append((safe_name(path.relative_to(directory)), path))
    if not audio and not images:
        raise UsageError(f"--inputs: no audio ({', '.join(AUDIO_SUFFIXES)}) or image files in {directory}")
    return audio, images


def load_models(names: list[str] | None) -> Models:
    """Load the requested models (all must load), or by default every shipped model plus image/video if present."""
    from neuralcodec.bitstream import Modality
    from neuralcodec.codecs.registry import available_models, load_codec

    models = Models()
    explicit = names is not None
    candidates = names if explicit else available_models() + [m for m in EXPECTED_MODELS if m not in available_models()]
    for name in candidates:
        try:
            codec = load_codec(name)
        except ModelError as exc:
            if explicit:
                raise
            models.notes.append(f"model {name!r} is not available ({exc}): its page is skipped.")
            continue
        codec.eval()
        modality = Modality(codec.modality)
        if modality == Modality.AUDIO:
            models.audio[name] = codec
        elif modality == Modality.IMAGE and hasattr(codec, "num_qualities"):
            models.image[name] = codec
        elif modality == Modality.IMAGE:
            models.notes.append(f"model {name!r} is lossless ({codec.codec_id}): nothing to compare, skipped.")
        else:
            models.notes.append(f"model {name!r} is a {modality.name.lower()} codec: video comparison pages "
                                "are not built by this version of codec demo.")
    if explicit and not (models.audio or models.image):
        raise UsageError(f"none of the models {', '.join(names)} is an audio or lossy image codec")
    return models


def _check_target(out: Path) -> None:
    if not out.parent.is_dir():
        raise UsageError(f"--out: parent folder does not exist: {out.parent}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: exists and is not a folder: {out}")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise UsageError(f"--out: {out} exists and is not a codec demo site; refusing to replace it")


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _summary(items: list) -> list[dict[str, Any]]:
    """Mean kbit/s and scores per condition over the items (conditions in the first item's order)."""
    rows = []
    for stim in items[0].stimuli:
        if stim.role == "lowpass":
            continue
        same = [s for item in items for s in item.stimuli if s.key == stim.key and not s.note]
        row: dict[str, Any] = {"key": "original" if stim.role == "reference" else stim.key, "role": stim.role,
                               "note": "" if same else stim.note}
        for metric in ("pesq_wb", "stoi", "mel"):
            values = [s.metrics[metric] for s in same if not math.isnan(s.metrics.get(metric, math.nan))]
            row[metric] = sum(values) / len(values) if values else math.nan
        rates = [s.kbps for s in same if not math.isnan(s.kbps)]
        row["kbps"] = sum(rates) / len(rates) if rates else math.nan
        rows.append(row)
    return rows


def _mushra_config(items: list, site_name: str) -> dict[str, Any]:
    trials = []
    for item in items:
        reference = next(s for s in item.stimuli if s.role == "reference")
        stimuli = [{"condition": s.key, "file": s.audio} for s in item.stimuli if s.audio]
        trials.append({"id": f"{item.model}/{item.name}", "model": item.model, "item": item.name,
                       "reference": reference.audio, "stimuli": stimuli})
    return {"site": site_name, "trials": trials}


def build_site(inputs: Path, out: Path, models: list[str] | None = None, seconds: float = 10.0,
               limit: int | None = None, log: Callable[[str], None] = print) -> Path:
    """Build the demo site for the media under ``inputs`` into the folder ``out``; returns ``out``."""
    import jinja2

    from neuralcodec import __version__
    from neuralcodec.demo.benchresults import audio_points, image_points
    from neuralcodec.demo.images import build_image_item
    from neuralcodec.demo.plots import rd_plot_png
    from neuralcodec.demo.stimuli import build_audio_item, have_speech_metrics, shipped_bitrates

    if not seconds > 0:
        raise UsageError(f"--seconds must be positive, got {seconds}")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    out = Path(out).absolute()
    templates = demos_dir()
    _check_target(out)
    audio_inputs, image_inputs = collect_inputs(Path(inputs), limit)
    loaded = load_models(models)
    notes = list(loaded.notes)
    if loaded.audio and not audio_inputs:
        notes.append(f"no audio files in {inputs}: the audio pages are skipped.")
    if loaded.image and not image_inputs:
        notes.append(f"no image files in {inputs}: the image page is skipped.")
    if not loaded.image and image_inputs:
        notes.append(f"{len(image_inputs)} image file(s) in {inputs} but no image model is available "
                     "(load_codec('image') failed): the image comparison page is skipped.")
    speech_metrics = have_speech_metrics()
    if not speech_metrics:
        notes.append("PESQ-WB and STOI are not computed: the PyPI packages pesq and pystoi are not installed.")

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        shutil.copytree(templates / "static", tmp / "static")
        (tmp / "plots").mkdir()
        audio_sections, all_items = [], []
        for model, codec in loaded.audio.items() if audio_inputs else ():
            items = []
            for name, path in audio_inputs:
                log(f"[{model}] {path}")
                items.append(build_audio_item(codec, model, path, name, tmp, seconds, speech_metrics))
            all_items += items
            summary = _summary(items)
            rd_plot = f"plots/rd_{model}.png"
            metric, label = ("pesq_wb", "PESQ-WB") if speech_metrics and any(
                not math.isnan(r["pesq_wb"]) for r in summary) else ("mel", "mel distance (lower is better)")
            series: dict[str, list[tuple[float, float]]] = {}
            for row in summary:
                if row["role"] in ("ours", "anchor") and not row["note"]:
                    series.setdefault(model if row["role"] == "ours" else row["key"], []).append((row["kbps"], row[metric]))
            rd_plot_png(series, tmp / rd_plot, "kbit/s (file)", label, f"{model}: this page's inputs", log_x=True)
            bench_plot = bench_title = ""
            for heading, points in audio_points().items():
                if heading.split(" ")[0] == model:
                    bench_plot, bench_title = f"plots/bench_{model}.png", heading
                    rd_plot_png(points, tmp / bench_plot, "kbit/s (file)", "PESQ-WB", heading, log_x=True)
                    break
            audio_sections.append({"name": model, "rate": codec.sample_rate, "bitrates": shipped_bitrates(codec),
                                   "entries": items, "summary": summary, "rd_plot": rd_plot,
                                   "bench_plot": bench_plot, "bench_title": bench_title})
        image_items = []
        for model, codec in loaded.image.items() if image_inputs else ():
            for name, path in image_inputs:
                log(f"[{model}] {path}")
                item = build_image_item(codec, model, path, name, tmp)
                plot = f"plots/rd_{model}_{name}.png"
                series = {}
                for v in item.variants:
                    series.setdefault(model if v.role == "ours" else "JPEG", []).append((v.bpp, v.psnr))
                rd_plot_png(series, tmp / plot, "bits per pixel", "PSNR (dB)", item.name)
                image_items.append({**item.to_json(), "rd_plot": plot})
        image_bench_plot = image_bench_title = ""
        for heading, points in image_points().items():
            image_bench_plot, image_bench_title = "plots/bench_image.png", heading
            rd_plot_png(points, tmp / image_bench_plot, "bits per pixel", "PSNR (dB)", heading)
            break

        env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates / "templates"),
                                 autoescape=True, undefined=jinja2.StrictUndefined)
        env.filters["fmt"] = _fmt
        names = ", ".join(n for n, _ in audio_inputs + image_inputs)
        common = {"version": __version__, "generated": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
                  "has_audio": bool(audio_sections), "has_images": bool(image_items), "notes": notes,
                  "title": "neuralcodec demo", "trial_count": len(all_items), "seconds": seconds,
                  "speech_metrics": speech_metrics, "audio_models": list(loaded.audio) if audio_inputs else [],
                  "inputs_text": f"{len(audio_inputs)} audio and {len(image_inputs)} image file(s) from "
                                 f"{Path(inputs).name or inputs} ({names})"}
        pages = {"index.html": ("index.html.j2", {"title": "Overview"})}
        if audio_sections:
            pages["samples.html"] = ("samples.html.j2", {"title": "Audio samples", "audio": audio_sections})
            pages["mushra.html"] = ("mushra.html.j2", {"title": "MUSHRA listening test",
                                                        "config": _mushra_config(all_items, out.name)})
        if image_items:
            pages["images.html"] = ("images.html.j2", {"title": "Image comparison", "images": image_items,
                                                        "image_bench_plot": image_bench_plot,
                                                        "image_bench_title": image_bench_title})
        for filename, (template, extra) in pages.items():
            (tmp / filename).write_text(env.get_template(template).render(**{**common, **extra}), encoding="utf-8")
        (tmp / MARKER).write_text("built by codec demo\n")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _replace_dir(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is moved aside first and deleted after."""
    new.chmod(0o755)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        old.rmdir()
        target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        if old is not None:
            old.rename(target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
