"""The `codec` entry point: help, version, error reporting, and `codec info` on golden files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from neuralcodec.cli import main

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "bitstream"


def test_help_lists_info(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "info" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("neuralcodec ")


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2


def test_info_audio_golden(capsys):
    assert main(["info", str(GOLDEN / "audio_v1.bin")]) == 0
    out = capsys.readouterr().out
    assert "modality:" in out and "audio" in out
    assert "24000 Hz" in out and "2.000 s" in out
    assert "chunks:" in out and "kbit/s" in out


def test_info_json_reports_actual_rate(capsys):
    path = GOLDEN / "audio_v1.bin"
    assert main(["info", "--json", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["file_bytes"] == path.stat().st_size
    assert summary["bits_per_second"] == pytest.approx(path.stat().st_size * 8 / summary["duration_s"])
    assert summary["chunks"] >= 1


def test_info_image_reports_bits_per_pixel(capsys):
    path = GOLDEN / "image_v1.bin"
    assert main(["info", "--json", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    meta = summary["metadata"]
    assert summary["bits_per_pixel"] == pytest.approx(path.stat().st_size * 8 / (meta["width"] * meta["height"]))


@pytest.mark.parametrize("name, needle", [
    ("future_version_v99.bin", "unsupported format version 99"),
])
def test_info_rejects_with_one_line(capsys, name, needle):
    assert main(["info", str(GOLDEN / name)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("codec: error:") and needle in err[0]


def test_info_missing_and_garbage_files(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.bin")]) == 1
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    assert main(["info", str(garbage)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("codec: error:") for line in lines)
    assert "Traceback" not in "".join(lines)


def test_verbose_shows_traceback(tmp_path, capsys):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a codec file at all")
    assert main(["--verbose", "info", str(garbage)]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_console_entry_point_runs_as_module():
    result = subprocess.run([sys.executable, "-m", "neuralcodec", "info", str(GOLDEN / "video_v1.bin")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "frames" in result.stdout and "bits/pixel" in result.stdout
    rate = next(line for line in result.stdout.splitlines() if line.startswith("bitrate:"))
    actual, payload = (float(part.split()[0]) for part in rate.split(":", 1)[1].split(","))
    assert 0 < payload < actual  # payload excludes the container (it printed 0.000 for video before)


def test_an_error_that_cannot_format_itself_is_still_one_line():
    """A libsndfile error re-raised from a DataLoader worker raises in its own ``__str__``: the CLI's
    one-line message must not crash on it (it did, printing a traceback in `codec train`)."""
    from neuralcodec.cli import _describe

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise TypeError("an integer is required")

    assert _describe(Unprintable()) == "Unprintable"


def test_encode_a_missing_input_or_a_folder_says_which(tmp_path, capsys):
    assert main(["encode", str(tmp_path / "missing.wav"), str(tmp_path / "out.bin")]) == 1
    assert main(["encode", str(tmp_path), str(tmp_path / "out.bin")]) == 1
    err = capsys.readouterr().err
    assert "input file not found" in err and "is a directory, not a file" in err
    assert not (tmp_path / "out.bin").exists()
