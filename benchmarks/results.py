"""Shared helper for benchmark scripts: each script owns one section of ``benchmarks/RESULTS.md``.

A section sits between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` markers; re-running a
benchmark replaces its own section and leaves the others untouched.
"""

from __future__ import annotations

import datetime as _dt
import platform
import re
from pathlib import Path

import torch

RESULTS_PATH = Path(__file__).with_name("RESULTS.md")
_TITLE = "# Benchmark results\n\nEach section is written by the script named in it; re-run it to refresh.\n"


def machine_line() -> str:
    """One line describing where the numbers were measured."""
    return (
        f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}, {_dt.date.today().isoformat()}"
    )


def update_section(name: str, markdown: str, path: Path = RESULTS_PATH) -> None:
    """Replace (or append) the section ``name`` of RESULTS.md with ``markdown``."""
    text = path.read_text() if path.exists() else _TITLE
    block = f"<!-- BEGIN {name} -->\n{markdown.rstrip()}\n<!-- END {name} -->"
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
