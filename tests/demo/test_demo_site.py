"""`codec demo`: the site builder (files, HTML, no external requests) and its bad-input errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from neuralcodec.cli import main
from neuralcodec.demo.site import MARKER, build_site, safe_name
from neuralcodec.codecs.registry import available_models, load_codec
from neuralcodec.demo.stimuli import shipped_bitrates
from neuralcodec.errors import ModelError, UsageError

#: the shipped speech model's bitrate settings (kbit/s nominal): one stimulus each
SPEECH_KBPS = shipped_bitrates(load_codec("speech")) if "speech" in available_models() else []


@pytest.fixture(scope="module")
def built(tmp_path_factory, demo_inputs) -> Path:
    """One site from one 2 s clip, every default model (so the skip notes are exercised)."""
    one = tmp_path_factory.mktemp("one-clip")
    (one / "clip.flac").write_bytes(next(demo_inputs.glob("LJ*.flac")).read_bytes())
    (one / "notes.txt").write_text("not media")
    return build_site(one, tmp_path_factory.mktemp("site") / "site", seconds=1.5, log=lambda _m: None)


def test_site_files_and_pages(built):
    for name in ("index.html", "samples.html", "mushra.html", "static/mushra.js", "static/style.css", MARKER,
                 "plots/rd_speech.png", "audio/speech/clip/reference.wav", "audio/speech/clip/lowpass.wav",
                 "audio/speech/clip/ours_q1.wav", "audio/speech/clip/reference.png"):
        assert (built / name).is_file(), name
    samples = (built / "samples.html").read_text()
    assert f"speech {SPEECH_KBPS[-1]:g} kbps" in samples and "Opus 6 kbps" in samples and "Codec2 1.6 kbps" in samples
    assert "PESQ-WB" in samples and "STOI" in samples and "<audio controls" in samples
    index = (built / "index.html").read_text()
    assert "image" in index and "skipped" in index  # no image page: a clear note instead
    assert not (built / "images.html").exists()
    assert not list(built.parent.glob(".site.*"))  # no temporary folder left behind


def test_mushra_config_has_hidden_reference_and_anchor(built):
    html = (built / "mushra.html").read_text()
    config = json.loads(re.search(r'<script id="mushra-config" type="application/json">(.*?)</script>',
                                  html, re.S).group(1))
    trials = config["trials"]  # one per (shipped audio model, clip): here one clip
    assert len(trials) >= 1
    for trial in trials:
        conditions = [s["condition"] for s in trial["stimuli"]]
        assert "reference" in conditions and "low-pass 3.5 kHz" in conditions
        for stim in trial["stimuli"] + [{"file": trial["reference"]}]:
            assert (built / stim["file"]).is_file()
    speech = [t for t in trials if any(s["condition"].startswith("speech ") for s in t["stimuli"])]
    assert len(speech) == 1
    assert {f"speech {k:g} kbps" for k in SPEECH_KBPS} <= {s["condition"] for s in speech[0]["stimuli"]}


def test_no_external_requests(built):
    for path in list(built.glob("*.html")) + list((built / "static").iterdir()):
        text = path.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import""", text), path


def test_lowpass_anchor_removes_high_frequencies():
    import torch

    from neuralcodec.demo.stimuli import lowpass

    rate = 16000
    t = torch.arange(rate) / rate
    x = torch.sin(2 * torch.pi * 1000 * t) + torch.sin(2 * torch.pi * 6000 * t)
    y = lowpass(x, rate)
    spectrum = torch.fft.rfft(y).abs()
    assert spectrum[6000] < 1e-3 * spectrum[1000]


def test_rebuild_replaces_a_previous_site(built, demo_inputs, tmp_path):
    target = tmp_path / "site"
    target.mkdir()
    (target / "stale.txt").write_text("x")
    with pytest.raises(UsageError, match="not a codec demo site"):
        build_site(demo_inputs, target, models=["speech"], log=lambda _m: None)
    assert (target / "stale.txt").exists()


def test_bad_inputs_are_clear_errors(tmp_path, demo_inputs, capsys):
    with pytest.raises(UsageError, match="not a directory"):
        build_site(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no audio"):
        build_site(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(UsageError, match="parent folder does not exist"):
        build_site(demo_inputs, tmp_path / "no" / "out")
    with pytest.raises(ModelError):
        build_site(demo_inputs, tmp_path / "out", models=["no-such-model"], log=lambda _m: None)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.wav").write_bytes(b"RIFF not really a wav file")
    assert main(["demo", "--inputs", str(bad), "--out", str(tmp_path / "out2"), "--models", "speech"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("codec: error: ") and len(err.strip().splitlines()) == 1 and "broken.wav" in err
    assert not (tmp_path / "out2").exists() and not list(tmp_path.glob(".out2.*"))
    assert main(["demo", "--out", str(tmp_path / "x")]) == 1
    assert "--inputs" in capsys.readouterr().err


def test_safe_name():
    assert safe_name(Path("a b/c&d.flac")) == "a_b__c_d"


def test_image_page_with_an_image_model(tmp_path, monkeypatch, shared_data):
    """The image page, with a tiny untrained image codec standing in for the shipped 'image' model."""
    from PIL import Image

    import neuralcodec.codecs.registry as registry
    from neuralcodec.codecs.registry import build_codec

    codec = build_codec({"codec": "image", "name": "tiny", "N": 8, "M": 8, "lambdas": [0.001, 0.1]})
    codec.freeze_entropy_models()
    real = registry.load_codec
    monkeypatch.setattr(registry, "load_codec", lambda name: codec.eval() if name == "image" else real(name))
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.open(shared_data / "images/skimage/coffee.png").convert("RGB").resize((48, 32)).save(inputs / "coffee.png")
    site = build_site(inputs, tmp_path / "site", models=["image"], log=lambda _m: None)
    html = (site / "images.html").read_text()
    assert "compare-slider" in html and "JPEG (quality" in html and "bpp" in html
    for name in ("images/image/coffee/original.png", "images/image/coffee/ours_q1.png",
                 "images/image/coffee/jpeg_q2.png", "plots/rd_image_coffee.png", "static/compare.js"):
        assert (site / name).is_file(), name
    assert not (site / "mushra.html").exists()
