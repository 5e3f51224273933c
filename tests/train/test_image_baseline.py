"""The same-budget bmshj2018 baseline: CompressAI's ScaleHyperprior trained by our image trainer
(``experiment=image_bmshj2018``). Its benchmark measurement: tests/benchmarks/test_image_baseline_benchmark.py."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from neuralcodec.eval.bmshj2018 import CODEC_ID, decode_image, encode_image, find_baselines, load_baseline
from neuralcodec.train.image_module import SingleRateImageRDModule
from neuralcodec.train.run import compose, train

TINY = ["model.codec.N=16", "model.codec.M=24", "data.crop_size=64", "data.batch_size=2", "data.num_workers=0",
        "data.val_crop=64", "data.max_val_files=2", "data.items_per_epoch=8", "data.val_fraction=0.3",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"]


def test_experiment_is_compressai_scale_hyperprior_with_the_image_budget():
    from compressai.models import ScaleHyperprior

    ours = compose(["experiment=image_hyperprior"])
    base = compose(["experiment=image_bmshj2018", "model.lmbda=0.0483", "model.codec.N=192", "model.codec.M=320"])
    # same data, crops, step budget, optimiser and logging as the shipped model's experiment
    assert OmegaConf.to_container(base.data) == OmegaConf.to_container(ours.data)
    # ... except precision: CompressAI's entropy models are not autocast-safe, so the baseline stays float32
    base_trainer, our_trainer = OmegaConf.to_container(base.trainer), OmegaConf.to_container(ours.trainer)
    assert base_trainer.pop("precision") == "32-true" and our_trainer.pop("precision") == "bf16-mixed"
    assert base_trainer == our_trainer
    for key in ("lr", "betas", "weight_decay", "warmup_steps", "total_steps", "grad_clip", "aux_lr_factor"):
        assert base.model[key] == ours.model[key], key
    assert base.checkpoint_every_n_steps == ours.checkpoint_every_n_steps
    # one run dir per lambda (a second lambda must never resume the first one's checkpoint)
    assert base.run_dir != compose(["experiment=image_bmshj2018", "model.lmbda=0.0067"]).run_dir
    module = SingleRateImageRDModule(OmegaConf.to_container(base.model.codec, resolve=True), lmbda=base.model.lmbda)
    assert type(module.codec.model) is ScaleHyperprior
    assert (module.codec.model.N, module.codec.model.M) == (192, 320)
    assert module.codec.config == {"codec": CODEC_ID, "name": "image_bmshj2018_lmbda0.0483", "N": 192, "M": 320,
                                   "lmbda": 0.0483}
    # the entropy-bottleneck quantiles are trained by the aux loss only, in their own group
    groups = module.configure_optimizers()["optimizer"].param_groups
    assert [len(g["params"]) for g in groups][1] == 1 and groups[1]["params"][0].shape == (192, 1, 3)


def test_fast_dev_run_through_hydra_exports_a_loadable_baseline(image_dir, tmp_path):
    run_dir = tmp_path / "runs" / "image_bmshj2018_lmbda0.01"
    cfg = compose(["experiment=image_bmshj2018", "model.lmbda=0.01", f"data.train_dir={image_dir}",
                   f"run_dir={run_dir}", "+trainer.fast_dev_run=1", *TINY])
    exported = train(cfg)
    assert exported is not None and Path(exported).is_file()
    loaded = load_baseline(exported)
    assert loaded.config["lmbda"] == 0.01 and (loaded.config["N"], loaded.config["M"]) == (16, 24)
    assert loaded.steps == 1  # fast_dev_run: one step, recorded in the export
    assert loaded.net.entropy_bottleneck._quantized_cdf.numel() > 0  # update() was done
    (found,) = find_baselines(tmp_path / "runs")
    assert found.config == loaded.config
    image = torch.rand(3, 40, 70)
    assert decode_image(found.net, encode_image(found.net, image)).shape == (3, 40, 70)


def test_training_steps_resume_and_loss_terms(image_dir, tmp_path):
    """A few real steps: logs the R-D terms, saves last.ckpt after validation filled the CDF tables,
    and resumes from it (CompressAI's dynamically sized table buffers load into a fresh model)."""
    run_dir = tmp_path / "run"
    overrides = ["experiment=image_bmshj2018", f"data.train_dir={image_dir}", f"run_dir={run_dir}",
                 "trainer.max_steps=2", "trainer.val_check_interval=1", "trainer.log_every_n_steps=1",
                 "checkpoint_every_n_steps=2", *TINY]
    train(compose(overrides))
    text = "".join(p.read_text() for p in (run_dir / "csv").rglob("metrics.csv"))
    assert "train/bpp" in text and "train/aux" in text and "val/psnr" in text and "val/bpp" in text
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    state = torch.load(str(ckpt), map_location="cpu", weights_only=False)["state_dict"]
    assert state["codec.model.entropy_bottleneck._quantized_cdf"].numel() > 0
    assert load_baseline(ckpt).steps == 2
    train(compose(overrides + ["trainer.max_steps=5"]))  # resumes from last.ckpt
    assert load_baseline(run_dir).steps == 5 and load_baseline(ckpt).steps == 4


def test_rd_loss_decreases_on_a_fixed_batch(photo):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    module = SingleRateImageRDModule({"codec": CODEC_ID, "name": "t", "N": 16, "M": 24}, lmbda=0.02, lr=3e-3,
                                     warmup_steps=0)
    optimizer = module.configure_optimizers()["optimizer"]
    x = torch.from_numpy(photo(3, (64, 64))).permute(2, 0, 1).float()[None] / 255
    with torch.no_grad():
        before = module.rd_terms(x)["loss"].item()
    aux_before = module.codec.aux_loss().item()
    for _ in range(60):
        loss, _ = module.training_losses(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = module.rd_terms(x)["loss"].item()
    assert after < 0.5 * before
    assert module.codec.aux_loss().item() < aux_before
