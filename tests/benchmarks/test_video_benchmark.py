"""The video benchmark's BD-rate and matched-rate helpers (no encoding)."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("bjontegaard")

from benchmarks.video import Point, bd_rate, psnr_at_rate  # noqa: E402


def curve(rates, psnrs):
    return [Point(r, p, p, 1.0, 1.0) for r, p in zip(rates, psnrs)]


ANCHOR = curve([0.05, 0.1, 0.2, 0.4], [28.0, 31.0, 34.0, 37.0])


def test_bd_rate_of_a_curve_needing_twice_the_bits():
    test = curve([0.1, 0.2, 0.4, 0.8], [28.0, 31.0, 34.0, 37.0])
    result = bd_rate(ANCHOR, test, "psnr_yuv")
    assert result.value == pytest.approx(100.0, abs=1.0)
    assert result.overlap == (28.0, 37.0) and result.share == 1.0
    assert result.cell().startswith("+100.0 % (28.0-37.0 dB")


def test_bd_rate_reports_why_there_is_none():
    below = bd_rate(ANCHOR, curve([0.1, 0.2, 0.4], [20.0, 22.0, 24.0]), "psnr_yuv")
    assert below.value is None and "no PSNR overlap" in below.cell() and "20.0-24.0 dB" in below.cell()
    assert "fewer than 2" in bd_rate(ANCHOR, curve([0.1], [30.0]), "psnr_yuv").cell()
    wobbly = bd_rate(ANCHOR, curve([0.1, 0.2, 0.4], [30.0, 29.0, 33.0]), "psnr_yuv")
    assert wobbly.value is None and "does not rise" in wobbly.reason


def test_small_overlap_is_flagged():
    result = bd_rate(ANCHOR, curve([0.3, 0.6, 1.2], [36.0, 40.0, 44.0]), "psnr_yuv")
    assert result.value is not None and math.isfinite(result.value)
    assert "small overlap" in result.cell()


def test_psnr_at_matched_rate():
    assert psnr_at_rate(ANCHOR, 0.1, "psnr_yuv") == pytest.approx(31.0)
    assert psnr_at_rate(ANCHOR, math.sqrt(0.1 * 0.2), "psnr_yuv") == pytest.approx(32.5)
    assert psnr_at_rate(ANCHOR, 0.01, "psnr_yuv") is None and psnr_at_rate(ANCHOR, 1.0, "psnr_yuv") is None


def test_a_run_of_some_codecs_writes_its_own_section(monkeypatch):
    """``--codecs ... --section NAME``: the anchors and one codec measured in one run, in their own section."""
    import shutil

    import benchmarks.video as video

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    written = {}
    monkeypatch.setattr(video, "update_section", lambda name, markdown: written.update({name: markdown}))
    ours = video.Runner("ours", lambda clip, settings: curve([0.1, 0.3], [30.0, 33.0]))
    skipped = video.Runner("other", lambda clip, settings: pytest.fail("not selected, must not run"))
    monkeypatch.setattr(video, "RUNNERS", [*video.RUNNERS[:4], ours, skipped])
    assert video.main(["--sequences", "cisco", "--frames", "3", "--crfs", "30", "40", "--codecs", "x264 medium",
                       "ours", "--section", "video-ours"]) == 0
    (name, markdown), = written.items()
    assert name == "video-ours" and markdown.startswith("## Video codecs vs x264 / x265: ours (")
    assert "| x264 medium |" in markdown and "| ours |" in markdown and "| x265" not in markdown
