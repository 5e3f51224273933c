"""Fitting a trained audio codec a circuit prior through Hydra (``experiment=music_circuit_prior``)."""

from __future__ import annotations

import torch

from neuralcodec.codecs.registry import load_codec, save_codec
from neuralcodec.entropy.circuits.token_grid import batch_rows
from neuralcodec.train.data.tokens import load_token_folders, pad_codes
from neuralcodec.train.run import compose, train


def test_fit_through_hydra_adds_a_circuit_and_keeps_the_model(tiny_codec_path, token_dir, tmp_path):
    # a float16 source, as the shipped models are (the experiment exports float16: export_half)
    source = save_codec(load_codec(tiny_codec_path), tmp_path / "half.safetensors", float_dtype=torch.float16)
    overrides = ["experiment=music_circuit_prior", f"model.source={source}", f"data.token_dirs=[{token_dir}]",
                 f"run_dir={tmp_path / 'run'}", "model.circuit.hidden=4", "model.circuit.window=2",
                 "model.mi_samples=200", "data.segment_frames=20", "data.batch_size=4", "data.val_fraction=0.3",
                 "data.items_per_epoch=16", "trainer.max_steps=6", "trainer.val_check_interval=3",
                 "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", "checkpoint_every_n_steps=3"]
    exported = train(compose(overrides))
    fitted, base = load_codec(exported), load_codec(source)
    # the same model (fingerprint, token prior, name) plus a circuit: every file the base wrote still decodes
    assert fitted.fingerprint() == base.fingerprint() and fitted.model_id == base.model_id
    assert fitted.circuit_prior is not None and fitted.circuit_prior.config == {"window": 2, "hidden": 4,
                                                                                "emissions": "codebook"}
    assert list(fitted.entropy_models) == ["token-prior", "circuit"]
    # exporting the run's checkpoint by hand gives the same model (no re-freeze of the token prior)
    from neuralcodec.train.export import export_checkpoint

    by_hand = load_codec(export_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt",
                                           tmp_path / "by-hand.safetensors", half=True))
    assert by_hand.fingerprint() == base.fingerprint()
    assert by_hand.circuit_prior.entropy_model_id == fitted.circuit_prior.entropy_model_id
    # float16 export (export_half: true): the circuit's tables too
    from safetensors import safe_open

    with safe_open(str(exported), framework="pt") as f:
        assert f.get_slice("circuit_prior.circuit.emit").get_dtype() == "F16"
    # EM learned something: the training tokens cost less than the raw log2(64) = 6 bits
    codes = pad_codes([c for c, _ in load_token_folders([token_dir])])
    assert fitted.circuit_prior.bits_per_token(codes) < 5.0
    rows, mask = batch_rows(codes, 2)
    assert rows.shape[1] == 2 * fitted.num_codebooks and bool(mask.all())
    # coding with it round-trips
    wav = torch.randn(1, 8000) * 0.1
    fitted.select_entropy_model("circuit")
    meta, chunks = fitted.compress(wav, 16000)
    decoded, _ = fitted.decompress(meta, list(chunks))
    meta_b, chunks_b = base.compress(wav, 16000)
    assert torch.allclose(decoded, base.decompress(meta_b, list(chunks_b))[0], atol=1e-5)
    text = "".join(p.read_text() for p in (tmp_path / "run" / "csv").rglob("metrics.csv"))
    assert "val/bits_per_token" in text and "val/bits_q1" in text and "train/bits_per_token" in text


def test_token_crops_weighted_by_frames():
    """``weighting="frames"``: a 9x longer item is drawn about 9x as often (``"item"``: as often)."""
    import random

    from neuralcodec.train.data.tokens import TokenCrops

    items = [torch.zeros(1, 10, dtype=torch.int16), torch.ones(1, 90, dtype=torch.int16)]
    random.seed(0)
    frames = TokenCrops(items, 5, 2000, True, weighting="frames")
    long_share = sum(int(frames[i][0, 0]) for i in range(2000)) / 2000
    assert 0.86 < long_share < 0.94
    uniform = TokenCrops(items, 5, 2000, True)
    assert 0.45 < sum(int(uniform[i][0, 0]) for i in range(2000)) / 2000 < 0.55
