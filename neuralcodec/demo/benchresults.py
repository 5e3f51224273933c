"""Rate-distortion points read from ``benchmarks/RESULTS.md`` (the sections the benchmarks write).

Only markdown tables are parsed; anything unexpected yields no points (the page then says so),
never an error: the benchmarks' layout may change without breaking the demo.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

RESULTS_MD = Path(__file__).resolve().parents[2] / "benchmarks" / "RESULTS.md"
Series = dict[str, list[tuple[float, float]]]


def section(text: str, name: str) -> str:
    """The body of ``<!-- BEGIN name --> ... <!-- END name -->`` (empty when absent)."""
    match = re.search(rf"<!-- BEGIN {re.escape(name)} -->(.*?)<!-- END {re.escape(name)} -->", text, re.S)
    return match.group(1) if match else ""


def tables(markdown: str) -> list[tuple[str, list[dict[str, str]]]]:
    """(nearest preceding heading, rows as {column: cell}) of every markdown table."""
    out: list[tuple[str, list[dict[str, str]]]] = []
    heading, header, rows = "", None, []
    for line in markdown.splitlines() + [""]:
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
            elif not all(set(c) <= set("-: ") for c in cells):
                rows.append(dict(zip(header, cells)))
            continue
        if header is not None:
            out.append((heading, rows))
        header, rows = None, []
    return out


def _number(cell: str) -> float:
    match = re.match(r"^\s*(-?\d+(?:\.\d+)?)", cell or "")
    return float(match.group(1)) if match else math.nan


def audio_points(path: Path = RESULTS_MD) -> dict[str, Series]:
    """Per benchmark heading: codec -> [(kbit/s, PESQ-WB)] from the 'audio' section."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    out: dict[str, Series] = {}
    for heading, rows in tables(section(text, "audio")):
        series: Series = {}
        for row in rows:
            if {"codec", "kbit/s (file)", "PESQ-WB"} <= row.keys():
                point = (_number(row["kbit/s (file)"]), _number(row["PESQ-WB"]))
                if not any(math.isnan(v) for v in point):
                    series.setdefault(row["codec"], []).append(point)
        if series:
            out[heading] = series
    return out


def image_points(path: Path = RESULTS_MD) -> dict[str, Series]:
    """Per benchmark heading: codec -> [(bpp, PSNR)] from the 'image' section's quality tables."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    out: dict[str, Series] = {}
    for heading, rows in tables(section(text, "image")):
        series: Series = {}
        for row in rows:
            if {"bpp", "PSNR"} <= row.keys():
                series.setdefault("neural", []).append((_number(row["bpp"]), _number(row["PSNR"])))
            for column, cell in row.items():
                if column.endswith(" bpp / PSNR") and "/" in cell:
                    bpp, db = cell.split("/", 1)
                    series.setdefault(column[: -len(" bpp / PSNR")], []).append((_number(bpp), _number(db)))
        series = {k: [p for p in v if not any(math.isnan(x) for x in p)] for k, v in series.items()}
        series = {k: v for k, v in series.items() if v}
        if series:
            out[heading] = series
    return out
