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
