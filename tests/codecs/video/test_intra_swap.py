"""intra_swap: a video model takes an image model's intra coder, weights and integer tables as stored."""

from __future__ import annotations

import pytest
import torch
from conditional_helpers import TINY_CONFIG, make_codec

from neuralcodec.codecs.registry import build_codec, load_codec, save_codec
from neuralcodec.errors import ModelError
from neuralcodec.train.intra_swap import main


def _image_model(lambdas, context: str = "checkerboard"):
    torch.manual_seed(5)
    entropy = {"z_channels": 16, "hidden_channels": 16, "num_scales": 32, "context": context}
    if context == "checkerboard":
        entropy["context_hidden"] = 8
    image = build_codec({"codec": "image", "name": "img", "N": 16, "M": 24, "lambdas": lambdas, "entropy": entropy})
    with torch.no_grad():
        image.g_a[-1].weight.mul_(40.0)
        if context == "checkerboard":
            image.hyperprior.ctx_scale.layers[-1].weight.normal_(std=0.05)
    return image.eval().freeze()


def test_swapped_intra_codes_like_the_image_model(tmp_path):
    video_path = save_codec(make_codec(), tmp_path / "video.safetensors")
    image_path = save_codec(_image_model(TINY_CONFIG["lambdas"]), tmp_path / "image.safetensors")
    out = tmp_path / "swapped.safetensors"
    assert main([str(video_path), str(image_path), str(out), "--name", "video-v2"]) == 0
    swapped, image, video = load_codec(out), load_codec(image_path), load_codec(video_path)
    assert swapped.model_id == "video-v2" and swapped.config["intra"]["entropy"]["context"] == "checkerboard"
    assert swapped.intra.hyperprior.fingerprint() == image.hyperprior.fingerprint()
    y = image.g_a(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)))
    assert swapped.intra._code(y, 2.0) == image._code(y, 2.0)
    inter = {k: v for k, v in video.state_dict().items() if not k.startswith("intra.")}
    assert all(torch.equal(swapped.state_dict()[k], v) for k, v in inter.items())


def test_lambdas_must_match(tmp_path):
    video_path = save_codec(make_codec(), tmp_path / "video.safetensors")
    image_path = save_codec(_image_model([0.01, 0.1], "none"), tmp_path / "image.safetensors")
    with pytest.raises(ModelError, match="lambdas"):
        main([str(video_path), str(image_path), str(tmp_path / "out.safetensors")])
    assert not (tmp_path / "out.safetensors").exists()
