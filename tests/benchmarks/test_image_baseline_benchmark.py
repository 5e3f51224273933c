"""The image benchmark's bmshj2018 baseline measurement: CompressAI's own compress()/decompress()
bytes on a tiny untrained model, and the report rows built from them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("bjontegaard")
pytest.importorskip("compressai")

from benchmarks.image import ImageResult, Point, baseline_points, baseline_report, report  # noqa: E402
from neuralcodec.eval.bmshj2018 import BMSHJ2018Baseline, LoadedBaseline, decode_image, encode_image  # noqa: E402
from neuralcodec.eval.image_anchors import CLASSIC, to_uint8  # noqa: E402


def _photo(seed: int, size) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]] / max(size)
    channels = [np.sin(2 * np.pi * (rng.random() * 3 * xx + rng.random() * 3 * yy) + rng.random() * 6) for _ in range(3)]
    return ((0.5 + 0.35 * np.stack(channels, axis=-1)).clip(0, 1) * 255).astype(np.uint8)


def _tiny(lmbda=0.01) -> LoadedBaseline:
    torch.manual_seed(0)
    net = BMSHJ2018Baseline(N=16, M=24).freeze_entropy_models().model.eval()
    return LoadedBaseline(net, {"lmbda": lmbda, "N": 16, "M": 24}, Path("tiny"), None)


def test_benchmark_baseline_points_use_real_compressai_bytes():
    """The benchmark's measurement on a tiny untrained model: right-sized decode, bits = stream bytes."""
    baseline = _tiny()
    net = baseline.net
    # sizes not multiples of 64 (padded and cropped back); MS-SSIM needs > 160 pixels a side
    for image in (torch.from_numpy(_photo(1, (200, 170))).permute(2, 0, 1).float() / 255,  # RGB
                  torch.rand(1, 165, 190)):                                                 # grayscale
        ref = to_uint8(image)
        result = ImageResult("x", "test", ref.shape[0] * ref.shape[1])
        baseline_points([baseline, baseline], image, ref, result)
        data = encode_image(net, image)
        assert decode_image(net, data).shape == image.shape
        (h, w) = image.shape[1:]
        assert result.baseline[0].bpp == pytest.approx(8 * len(data) / (h * w))
        assert result.baseline[0] == result.baseline[1]  # deterministic coder
        y_bytes = net.compress(torch.nn.functional.pad(image.expand(3, -1, -1)[None], (0, -w % 64, 0, -h % 64),
                                                       mode="replicate"))["strings"]
        assert len(data) == 9 + len(y_bytes[0][0]) + len(y_bytes[1][0])
        assert 0 < result.baseline[0].psnr < 60 and len(result.baseline_encode_s) == 2
    table = "\n".join(baseline_report([result], [baseline, baseline], "dir"))
    assert "| 0.01 | 16 / 24 | ? |" in table


def test_decode_rejects_truncated_streams():
    net = BMSHJ2018Baseline(N=16, M=24).freeze_entropy_models().model.eval()
    data = encode_image(net, torch.rand(3, 64, 64))
    with pytest.raises(ValueError):
        decode_image(net, data[:5])
    with pytest.raises(ValueError):
        decode_image(net, data[:9] + data[9:10])


def _curve(rates, psnrs):
    return [Point(r, p, 1 - 10 ** (-p / 20)) for r, p in zip(rates, psnrs)]


def _measured_photo():
    """A fake codec and one photo measured at 4 rates: ours 2 dB above every classic codec."""
    codec = SimpleNamespace(fingerprint=lambda: bytes(8), N=16, M=24, num_qualities=4, entropy_model_id="hyperprior/test")
    rates = [0.1, 0.2, 0.4, 0.8]
    result = ImageResult("a.png", "skimage", 256 * 256, neural=_curve(rates, [28, 31, 34, 37]),
                         encode_s=[0.1] * 4, decode_s=[0.1] * 4)
    result.classic = {name: _curve(rates, [26, 29, 32, 35]) for name in CLASSIC}
    return codec, rates, result


def test_report_has_baseline_rows_and_bd_rate_only_when_measured():
    codec, rates, result = _measured_photo()
    baselines = [_tiny(l) for l in (0.0018, 0.0067, 0.025, 0.0932)]
    # the baseline reaches the same PSNR with 1.25x the bits: our BD-rate against it is -20 %
    result.baseline = _curve([r * 1.25 for r in rates], [28, 31, 34, 37])
    result.baseline_encode_s, result.baseline_decode_s = [0.05] * 4, [0.06] * 4
    text = report([result], codec, [1, 2, 3, 4], "m", baselines, "runs")
    row = next(line for line in text.splitlines() if line.startswith("| bmshj2018"))
    assert "-20.0 %" in row
    assert "| 0.0018 | 16 / 24 | ? | 0.125 | 28.00 |" in text and "Not measured here" not in text
    assert "0.76 | 0.92 |" in text  # 0.05 s and 0.06 s over 0.065536 MP
    empty = report([result], codec, [1, 2, 3, 4], "m", [], "runs")
    assert "Not measured here" in empty and "none found under `runs`" in empty and "| bmshj2018" not in empty


def test_report_has_a_refinement_section_only_when_refined():
    codec, rates, result = _measured_photo()
    assert "latent refinement" not in report([result], codec, [1, 2, 3, 4], "m")
    # the refined encoder reaches the same PSNR with 0.8x the bits: -20 % against the plain one
    result.refined = _curve([r * 0.8 for r in rates], [28, 31, 34, 37])
    result.refined_encode_s = [6.5536] * 4
    text = report([result], codec, [1, 2, 3, 4], "m", refine_steps=50)
    assert "`codec encode --steps 50`" in text and "| 2 | 0.200 / 31.00 | 0.160 / 31.00 |" in text
    assert "vs plain encoder -20.0 % (1/1)" in text and "100.0 s/megapixel (plain: 1.53)" in text
