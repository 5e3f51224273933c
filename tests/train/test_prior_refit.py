"""Refitting a trained audio codec's token prior on its own tokens (``experiment=speech_prior``)."""

from __future__ import annotations

import math

import pytest
import torch

from neuralcodec.codecs.registry import load_codec
from neuralcodec.errors import NeuralCodecError
from neuralcodec.train.data.tokens import TokenDataModule, load_token_folders, pad_codes
from neuralcodec.train.prior_module import TokenPriorModule
from neuralcodec.train.run import compose, train


def test_refit_through_hydra_exports_a_codec_with_the_new_prior(tiny_codec_path, token_dir, tmp_path):
    overrides = ["experiment=speech_prior", f"model.source={tiny_codec_path}", "model.name=tiny-refit",
                 f"data.token_dirs=[{token_dir}]", f"run_dir={tmp_path / 'run'}", "model.prior.hidden=32",
                 "model.prior.lags=3", "data.segment_frames=20", "data.batch_size=4", "data.val_fraction=0.3",
                 "data.items_per_epoch=16", "trainer.max_steps=4", "trainer.val_check_interval=2",
                 "trainer.enable_progress_bar=false"]
    exported = train(compose(overrides))
    refit = load_codec(exported)
    base = load_codec(tiny_codec_path)
    assert refit.model_id == "tiny-refit" and refit.prior.hidden == 32 and refit.prior.lags == 3
    assert refit.fingerprint() != base.fingerprint()
    # encoder, quantizer and decoder are untouched: same tokens, same audio, only the coding differs
    wav = torch.randn(1, 1, 8000) * 0.1
    codes = base.encode(wav, 16000)
    assert torch.equal(refit.encode(wav, 16000), codes)
    meta, chunks = refit.compress(wav[0], 16000)
    decoded, rate = refit.decompress(meta, list(chunks))
    meta_b, chunks_b = base.compress(wav[0], 16000)
    assert rate == 16000 and torch.allclose(decoded, base.decompress(meta_b, list(chunks_b))[0], atol=1e-5)
    text = "".join(p.read_text() for p in (tmp_path / "run" / "csv").rglob("metrics.csv"))
    assert "val/bits_per_token" in text and "val/saving_vs_nominal" in text


def test_prior_learns_predictable_tokens(tiny_codec_path):
    """A broken loss/dropout/mask path cannot get far below the raw 6 bits per token here."""
    torch.manual_seed(0)
    module = TokenPriorModule(str(tiny_codec_path), {"context": "causal", "hidden": 32, "lags": 2}, lr=1e-2,
                              warmup_steps=5, total_steps=150)
    k = module.codec.prior.codebook_sizes[0]
    # codebook 0 follows a fixed cycle; codebook 1 copies codebook 0 (predictable from the same frame)
    start = torch.randint(0, 8, (16,))
    c0 = (start[:, None] + torch.arange(40)[None] * 3) % 8
    codes = torch.stack([c0, c0], dim=1)
    optimizer = torch.optim.Adam(module.codec.prior.parameters(), lr=1e-2)
    for _ in range(150):
        loss, _ = module.training_losses(codes)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.25 * math.log2(k)
    # only the prior trains
    assert all(not p.requires_grad for n, p in module.codec.named_parameters() if not n.startswith("prior."))


def test_token_data(token_dir, tiny_codec_path):
    items = load_token_folders([token_dir])
    assert len(items) == 8 and all(c.dim() == 2 and c.shape[0] == 2 for c, _ in items)
    batch = pad_codes([torch.zeros(2, 3, dtype=torch.int16), torch.ones(2, 5, dtype=torch.int16)])
    assert batch.shape == (2, 2, 5) and batch.dtype == torch.int64 and (batch[0, :, 3:] == -1).all()
    dm = TokenDataModule([str(token_dir)], segment_frames=10, batch_size=2, val_fraction=0.3, items_per_epoch=4)
    dm.setup()
    assert next(iter(dm.train_dataloader())).shape[:2] == (2, 2)
    with pytest.raises(NeuralCodecError, match="not of the model being refit"):
        load_token_folders([token_dir], fingerprint="00" * 16)
    with pytest.raises(NeuralCodecError, match="not a 'codec tokenize' output folder"):
        load_token_folders([tiny_codec_path.parent])
