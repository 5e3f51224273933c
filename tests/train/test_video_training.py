"""Video training: clip data (real + synthetic camera motion), the debug experiment end to end, size budget."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from neuralcodec.train.data.video import VideoClipDataModule, synthetic_clip
from neuralcodec.train.run import compose, train


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def test_synthetic_clip_moves_the_camera():
    photo = (torch.rand(3, 40, 50) * 255).to(torch.uint8)
    photo = torch.nn.functional.interpolate(photo[None].float(), size=(200, 260), mode="bilinear")[0].to(torch.uint8)
    clip = synthetic_clip(photo, 4, 64, random.Random(3), max_pan=5.0, object_prob=1.0)
    assert clip.shape == (4, 3, 64, 64) and 0 <= clip.min() and clip.max() <= 1
    diffs = [(clip[t + 1] - clip[t]).abs().mean() for t in range(3)]
    assert all(d > 1e-3 for d in diffs)  # frames change
    assert (clip[1] - clip[0]).abs().mean() < (clip[0] - clip[0].flip(-1).flip(-2)).abs().mean()  # but coherently


def test_data_module_shapes(shared_data):
    dm = VideoClipDataModule(video_dirs=str(shared_data / "video"), image_dirs=str(shared_data / "images" / "skimage"),
                             clip_length=3, crop_size=64, batch_size=2, num_workers=0, items_per_epoch=4,
                             val_videos=["cisco_vt2people_320x192_12fps_9f.y4m"], val_crop=64, val_clip_length=2)
    dm.setup("fit")
    assert {p.name for p, *_ in dm.train_set.videos} == {"bbb_640x360_25fps_132f.y4m",
                                                        "mobile_calendar_cif_25fps_30f.y4m",
                                                        "office_webcam_640x360_25fps_19f.y4m"}
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (2, 3, 3, 64, 64) and batch.dtype == torch.float32
    assert 0 <= batch.min() and batch.max() <= 1
    assert [v.shape for v in dm.val_items] == [(2, 3, 64, 64)]
    for fraction in (0.0, 1.0):  # only real / only synthetic clips
        dm.train_set.synthetic_fraction = fraction
        assert dm.train_set[0].shape == (3, 3, 64, 64)


def test_video_debug_experiment_trains_and_exports(shared_data, tmp_path):
    run_dir = tmp_path / "run"
    overrides = ["experiment=video_debug", f"run_dir={run_dir}", "trainer.accelerator=cpu", "trainer.max_steps=2",
                 f"data.video_dirs=[{shared_data / 'video'}]", f"data.image_dirs=[{shared_data / 'images' / 'mate'}]"]
    exported = train(compose(overrides))
    assert exported is not None and Path(exported).is_file()
    text = "".join(p.read_text() for p in (run_dir / "csv").rglob("metrics.csv"))
    assert "train/bpp_inter" in text and "val/psnr_inter_q1" in text
    from neuralcodec.codecs.registry import load_codec

    codec = load_codec(exported)
    assert codec.model_id == "video_debug" and codec.prior.frozen
    metadata, chunks = codec.compress(torch.rand(3, 3, 20, 30), quality=3)
    assert codec.decompress(metadata, chunks).shape == (3, 3, 20, 30)


def test_shipped_experiment_fits_the_size_budget_and_can_warm_start_intra():
    from omegaconf import OmegaConf

    from neuralcodec.codecs.registry import build_codec

    cfg = compose(["experiment=video_conditional"])
    assert cfg.model._target_.endswith("VideoRDModule") and cfg.data.clip_length >= 3
    codec_cfg = OmegaConf.to_container(cfg.model.codec, resolve=True)
    assert codec_cfg["name"] == "video"
    codec = build_codec(codec_cfg).freeze()
    size = sum(t.numel() * (2 if t.is_floating_point() else t.element_size()) for t in codec.state_dict().values())
    assert size <= 40e6  # exported with fp16 weights
    image_cfg = OmegaConf.to_container(compose(["experiment=image_channel_context"]).model.codec, resolve=True)
    image = build_codec(image_cfg).freeze()
    assert {k: v.shape for k, v in image.state_dict().items()} == {k: v.shape for k, v in codec.intra.state_dict().items()}


def test_intra_warm_start_from_an_image_model(tmp_path):
    """``intra_init`` copies an exported image model into ``codec.intra``; ``freeze_intra`` fixes it."""
    from neuralcodec.codecs.registry import build_codec, save_codec
    from neuralcodec.train.video_module import VideoRDModule

    lambdas = [0.005, 0.02, 0.08]
    image = build_codec({"codec": "image", "N": 16, "M": 24, "lambdas": lambdas,
                         "entropy": {"z_channels": 16, "hidden_channels": 16, "num_scales": 32}})
    path = save_codec(image.freeze(), tmp_path / "image.safetensors")
    video_cfg = {"codec": "video-conditional", "lambdas": lambdas,
                 "intra": {"N": 16, "M": 24, "entropy": {"z_channels": 16, "hidden_channels": 16, "num_scales": 32}},
                 "inter": {"N": 16, "M": 24, "C": 8, "entropy": {"z_channels": 16, "hidden_channels": 16}}}
    module = VideoRDModule(video_cfg, intra_init=str(path), freeze_intra=True)
    assert torch.equal(module.codec.intra.g_a[0].weight, image.g_a[0].weight)
    assert not any(p.requires_grad for p in module.codec.intra.parameters())
    main = {id(p) for p in module._main_parameters()}
    assert id(module.codec.encoder.down1[0].weight) in main and id(module.codec.intra.g_a[0].weight) not in main
    clip = torch.rand(1, 3, 3, 64, 64)
    loss, logs = module.training_losses(clip)
    loss.backward()
    assert module.codec.intra.g_a[0].weight.grad is None and module.codec.encoder.down1[0].weight.grad is not None


def test_warm_start_may_add_declared_modules_only(tmp_path):
    """``init_from`` + ``init_from_new_modules``: the alignment network may be new, nothing else."""
    from neuralcodec.codecs.registry import build_codec, save_codec
    from neuralcodec.errors import NeuralCodecError
    from neuralcodec.train.run import _warm_start

    base = {"codec": "video-conditional", "lambdas": [0.005, 0.02],
            "intra": {"N": 16, "M": 24, "entropy": {"z_channels": 16, "hidden_channels": 16, "num_scales": 32}},
            "inter": {"N": 16, "M": 24, "C": 8, "entropy": {"z_channels": 16, "hidden_channels": 16}}}
    source = build_codec(base)
    path = save_codec(source.freeze(), tmp_path / "video.safetensors")
    aligned = {**base, "inter": {**base["inter"], "alignment": "extrapolated"}}
    target = build_codec(aligned)
    with pytest.raises(NeuralCodecError, match="context.flow"):
        _warm_start(target, str(path))
    _warm_start(target, str(path), ["context.flow"])
    assert torch.equal(target.encoder.down1[0].weight, source.encoder.down1[0].weight.to(target.encoder.down1[0].weight.dtype))
    assert torch.count_nonzero(target.context.flow[-1].weight) == 0  # the new module keeps its (zero) init
    with pytest.raises(NeuralCodecError, match="missing"):
        _warm_start(build_codec(aligned), str(path), ["context.fl"])  # a prefix must name whole modules
