"""A tiny-config training run through Hydra: data module, GAN module, checkpoint, resume, export."""

from __future__ import annotations

from pathlib import Path

from neuralcodec.codecs.registry import load_codec
from neuralcodec.train.run import compose, train


def test_debug_experiment_trains_resumes_and_exports(audio_dir, tmp_path):
    run_dir = tmp_path / "run"
    overrides = ["experiment=debug", f"data.train_dir={audio_dir}", f"run_dir={run_dir}", "data.val_fraction=0.3",
                 "trainer.accelerator=cpu"]
    exported = train(compose(overrides))
    assert exported is not None and Path(exported).is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    metrics = (run_dir / "csv").rglob("metrics.csv")
    text = "".join(p.read_text() for p in metrics)
    assert "train/mel" in text and "val/mel_distance" in text
    codec = load_codec(exported)
    assert codec.num_codebooks == 2 and codec.sample_rate == 16000
    # resume: more steps continue from last.ckpt instead of starting over
    train(compose(overrides + ["trainer.max_steps=8"]))
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


def test_a_training_file_removed_after_listing_is_named_in_the_error(audio_dir, tmp_path):
    """A file that vanished (or broke) after the data module listed it: the error names it."""
    import pytest

    from neuralcodec.errors import NeuralCodecError
    from neuralcodec.train.data.audio import AudioSegmentDataset, list_audio_files

    files = list_audio_files(audio_dir)  # a per-test temporary folder
    dataset = AudioSegmentDataset(files, 16000, 0.5, train=False)
    gone = files[0][0]
    gone.unlink()
    with pytest.raises(NeuralCodecError, match=gone.name):
        dataset[0]


def test_gan_steps_train_both_sides_and_restore_the_discriminators(audio_dir, tmp_path):
    """The generator step freezes the discriminators (no wasted weight gradients); both optimisers
    still update their own parameters on every iteration, and the freeze is undone afterwards. The
    optional linear STFT term (``stft_weight``) is computed and logged."""
    import torch
    from hydra.utils import instantiate

    cfg = compose(["experiment=debug", f"data.train_dir={audio_dir}", f"run_dir={tmp_path / 'run'}",
                   "data.val_fraction=0.3", "trainer.accelerator=cpu", "model.adversarial_start=0",
                   "model.val_metrics=false", "model.stft_weight=1.0"])
    module = instantiate(cfg.model, _convert_="all")
    datamodule = instantiate(cfg.data, _convert_="all")
    disc_before = [p.detach().clone() for p in module.mpd.parameters()]
    codec_before = [p.detach().clone() for p in module.codec.decoder.parameters()]
    grads_into_disc = []
    next(module.mpd.parameters()).register_hook(lambda g: grads_into_disc.append(1))
    trainer = instantiate(cfg.trainer, max_steps=4, limit_val_batches=0, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False)
    trainer.fit(module, datamodule=datamodule)
    assert module._generator_steps == 2  # 2 iterations x (discriminator + generator step)
    assert trainer.callback_metrics["train/stft"] > 0  # the optional linear STFT term is in the generator loss
    assert len(grads_into_disc) == 2  # the discriminator steps only, none from the generator steps
    assert all(p.requires_grad for p in module.mpd.parameters()) and all(p.requires_grad for p in module.mrd.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(disc_before, module.mpd.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(codec_before, module.codec.decoder.parameters()))


def test_losses_stay_float32_under_mixed_precision():
    """bf16 autocast (``trainer.precision=bf16-mixed``): the mel loss is the float32 one exactly, and
    the GAN terms sum bf16 logits and feature maps in float32."""
    import torch

    from neuralcodec.train.losses import MultiResolutionMelLoss, feature_matching_loss, generator_adversarial_loss

    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(2, 1, 4000, generator=g) * 0.1, torch.randn(2, 1, 4000, generator=g) * 0.1
    mel = MultiResolutionMelLoss(16000)
    ref = mel(fake, real)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = mel(fake, real)
    assert mixed.dtype == torch.float32 and torch.equal(mixed, ref)
    feats = [(torch.randn(2, 50, generator=g).bfloat16(), [torch.randn(2, 8, 50, generator=g).bfloat16()])]
    assert generator_adversarial_loss(feats).dtype == torch.float32
    assert feature_matching_loss(feats, feats).item() == 0.0


def test_stft_loss_sees_misplaced_harmonics_that_the_mel_loss_merges():
    """A harmonic tone whose partials above 1.5 kHz sit between the reference's harmonics (same
    band energies) costs the mel loss about as much as a 2 dB gain change, the linear STFT loss
    several times more. The STFT loss is 0 for identical inputs and float32 under bf16 autocast."""
    import math

    import torch

    from neuralcodec.train.losses import MultiResolutionMelLoss, MultiResolutionSTFTLoss

    t = torch.arange(16000) / 16000

    def tone(shift_above_1500: float) -> torch.Tensor:
        partials = [(160 * k + (shift_above_1500 if 160 * k > 1500 else 0.0), math.exp(-k / 20)) for k in range(1, 48)]
        return 0.05 * sum(a * torch.sin(2 * math.pi * f * t + k) for k, (f, a) in enumerate(partials))[None, None]

    real, misplaced = tone(0.0), tone(80.0)
    louder = real * 10 ** (2 / 20)
    mel, stft = MultiResolutionMelLoss(16000), MultiResolutionSTFTLoss()
    assert mel(misplaced, real) / mel(louder, real) < 2.0
    assert stft(misplaced, real) / stft(louder, real) > 4.0
    assert stft(real, real).item() < 1e-6
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert stft(misplaced, real).dtype == torch.float32


def test_training_speed_benchmark_times_real_bf16_iterations(audio_dir):
    """benchmarks.training_speed runs the experiment's own module under the requested precision:
    bf16-mixed GAN iterations (discriminator + generator step, NHWC discriminator weights) run end
    to end and are timed."""
    from benchmarks.training_speed import measure

    overrides = ["experiment=debug", f"data.train_dir={audio_dir}", "data.val_fraction=0.3",
                 "trainer.accelerator=cpu", "model.adversarial_start=0", "model.val_metrics=false",
                 "model.channels_last=true"]
    times = measure(overrides, "bf16-mixed", iterations=2, warmup=1)
    assert len(times) == 2 and all(t > 0 for t in times)
