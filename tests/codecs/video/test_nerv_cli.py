"""`codec encode --model nerv`, `codec info`, `codec decode [--frames A:B]` and bad input on the CLI."""

from __future__ import annotations

import json

import numpy as np

from neuralcodec.cli import main
from neuralcodec.media.video import YUVFrame, Y4MReader, Y4MWriter


def _clip(path, frames=3, size=(24, 16)):
    rng = np.random.default_rng(0)
    w, h = size
    with Y4MWriter(path, w, h, (25, 1), "420") as writer:
        for t in range(frames):
            base = (np.arange(w)[None, :] * 8 + t * 10 + np.arange(h)[:, None] * 4) % 256
            y = np.clip(base + rng.integers(-5, 5, (h, w)), 0, 255).astype(np.uint8)
            writer.write(YUVFrame(y, np.full((h // 2, w // 2), 100, np.uint8), np.full((h // 2, w // 2), 150, np.uint8)))
    return path


def _frames(path):
    with Y4MReader(path) as reader:
        return list(reader)


def test_encode_info_decode_random_access(tmp_path, capsys):
    src = _clip(tmp_path / "in.y4m")
    out = tmp_path / "out.bin"
    assert main(["encode", str(src), str(out), "--model", "nerv", "--target-bpp", "20", "--steps", "5",
                 "--gop", "2", "--quiet"]) == 0
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["codec"] == "video-nerv" and info["model"] == "nerv" and info["chunks"] == 2
    assert info["metadata"]["num_frames"] == 3 and info["bits_per_pixel"] > 0
    full, part = tmp_path / "full.y4m", tmp_path / "part.y4m"
    assert main(["decode", str(out), str(full), "--quiet"]) == 0
    assert main(["decode", str(out), str(part), "--frames", "2:3", "--quiet"]) == 0
    assert _frames(part) == _frames(full)[2:3] and len(_frames(full)) == 3


def test_bad_input_leaves_no_output(tmp_path):
    src = _clip(tmp_path / "in.y4m")
    out = tmp_path / "out.bin"
    assert main(["encode", str(src), str(out), "--model", "nerv", "--quality", "3"]) != 0
    assert not out.exists()
    bad = tmp_path / "bad.y4m"
    bad.write_bytes(b"YUV4MPEG2 W0 H0\n")
    assert main(["encode", str(bad), str(out), "--model", "nerv"]) != 0
    assert not out.exists()
    assert main(["encode", str(src), str(out), "--model", "nerv", "--steps", "2", "--target-bpp", "20", "--quiet"]) == 0
    dec = tmp_path / "dec.y4m"
    assert main(["decode", str(out), str(dec), "--frames", "5:9"]) != 0
    assert not dec.exists()
    truncated = tmp_path / "trunc.bin"
    truncated.write_bytes(out.read_bytes()[:-40])
    assert main(["decode", str(truncated), str(dec)]) != 0
    assert not dec.exists()
