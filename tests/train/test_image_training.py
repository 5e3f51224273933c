"""Image training: the Hydra debug experiment end to end, and the R-D loss actually going down."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from neuralcodec.codecs.registry import load_codec
from neuralcodec.train.data.images import ImageFolderDataModule, random_crop
from neuralcodec.train.image_module import ImageRDModule
from neuralcodec.train.run import compose, train


def test_image_debug_experiment_trains_resumes_and_exports(image_dir, tmp_path):
    run_dir = tmp_path / "run"
    overrides = ["experiment=image_debug", f"data.train_dir={image_dir}", f"run_dir={run_dir}",
                 "data.val_fraction=0.3", "trainer.accelerator=cpu"]
    cfg = compose(overrides)
    assert "quantizer" not in cfg.model.codec
    exported = train(cfg)
    assert exported is not None and Path(exported).is_file()
    text = "".join(p.read_text() for p in (run_dir / "csv").rglob("metrics.csv"))
    assert "train/bpp" in text and "val/psnr_q1" in text and "val/bpp_q3" in text
    codec = load_codec(exported)
    assert codec.hyperprior.frozen and codec.num_qualities == 3 and codec.model_id == "image_debug"
    metadata, chunks = codec.compress(torch.rand(3, 20, 30), quality=3)
    assert codec.decompress(metadata, chunks).shape == (3, 20, 30)
    train(compose(overrides + ["trainer.max_steps=6"]))  # resumes from last.ckpt
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


def test_shipped_experiment_config_fits_the_size_budget():
    from omegaconf import OmegaConf

    from neuralcodec.codecs.registry import build_codec

    cfg = compose(["experiment=image_hyperprior"])
    codec_cfg = OmegaConf.to_container(cfg.model.codec, resolve=True)
    assert codec_cfg["name"] == "image" and len(codec_cfg["lambdas"]) >= 8
    codec = build_codec(codec_cfg).freeze()
    size = sum(t.numel() * t.element_size() for t in codec.state_dict().values())
    assert size <= 40e6  # the shipped model file stays under 40 MB


def test_data_module_crops(image_dir):
    dm = ImageFolderDataModule(str(image_dir), crop_size=64, batch_size=3, val_fraction=0.3, val_crop=128,
                               items_per_epoch=6, min_scale=0.5)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (3, 3, 64, 64) and 0 <= batch.min() and batch.max() <= 1
    assert all(item.shape == (3, 128, 128) for item in dm.val_items)  # 160x120 photos: edge-padded
    small = torch.full((3, 10, 12), 7, dtype=torch.uint8)
    import random

    assert random_crop(small, 64, 0.5, random.Random(0)).shape == (3, 64, 64)


def test_rd_loss_decreases_on_a_fixed_batch(photo):
    torch.manual_seed(0)
    torch.set_num_threads(1)  # tiny convolutions: threads only add synchronisation cost
    module = ImageRDModule({"codec": "image", "N": 16, "M": 24, "lambdas": [0.01, 0.05],
                            "entropy": {"z_channels": 8, "hidden_channels": 8}}, lr=3e-3, warmup_steps=0)
    optimizer = module.configure_optimizers()["optimizer"]
    x = torch.from_numpy(photo(3, (64, 64))).permute(2, 0, 1).float()[None] / 255
    quality = torch.tensor([2.0])
    with torch.no_grad():
        before = module.rd_terms(x, quality)["loss"].item()
    for _ in range(80):
        loss, logs = module.training_losses(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert set(logs) >= {"bpp", "mse", "psnr", "aux"}
    with torch.no_grad():
        after = module.rd_terms(x, quality)["loss"].item()
    assert after < 0.5 * before


@pytest.mark.slow
def test_short_training_orders_rate_and_quality(shared_data, tmp_path):
    """After 700 steps on the MATE photos, one model spans a rate range with rising PSNR."""
    run_dir = tmp_path / "run"
    overrides = ["experiment=image_debug", f"data.train_dir={shared_data / 'images' / 'mate'}", f"run_dir={run_dir}",
                 "trainer.accelerator=cpu", "trainer.max_steps=700", "trainer.val_check_interval=700",
                 "model.codec.N=32", "model.codec.M=48", "model.lr=1e-3", "data.crop_size=128", "data.batch_size=4",
                 "data.items_per_epoch=400"]
    codec = load_codec(train(compose(overrides)))
    from neuralcodec.media import load_image

    image = load_image(shared_data / "images" / "skimage" / "chelsea.png")
    sizes, psnrs = [], []
    for q in range(1, codec.num_qualities + 1):
        metadata, chunks = codec.compress(image, quality=q)
        chunks = list(chunks)
        decoded = codec.decompress(metadata, chunks)
        sizes.append(sum(len(c) for c in chunks) * 8 / (image.shape[1] * image.shape[2]))
        psnrs.append(float(10 * torch.log10(1 / (decoded - image).pow(2).mean())))
    assert sizes == sorted(sizes) and sizes[-1] > 1.5 * sizes[0]
    assert psnrs == sorted(psnrs) and psnrs[0] > 20


@pytest.mark.parametrize("experiment", ["image_channel_context_continue"])
def test_warm_start_experiments_begin_at_the_shipped_model(experiment):
    """The continuation warm-starts from the shipped model (every weight and integer table loaded), so
    before any step it codes exactly like the shipped model."""
    from omegaconf import OmegaConf

    from neuralcodec.codecs.registry import build_codec
    from neuralcodec.train.run import _warm_start

    cfg = compose([f"experiment={experiment}"])
    codec = build_codec(OmegaConf.to_container(cfg.model.codec, resolve=True))
    _warm_start(codec, cfg.init_from, cfg.init_from_new_modules or (), cfg.init_from_skip_modules or ())
    shipped = load_codec(cfg.init_from)
    codec.eval()  # the loaded integer tables as shipped (the new context's integer weights are zero)
    assert codec.hyperprior.frozen
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, ref = codec(x, 3.0), shipped(x, 3.0)
    assert torch.allclose(ours.bits, ref.bits, rtol=1e-6)
    assert torch.allclose(ours.x_hat, ref.x_hat, atol=1e-5)
