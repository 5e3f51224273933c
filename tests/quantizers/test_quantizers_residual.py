"""Residual and group-residual VQ: quantizer dropout, bitrate scalability, code ordering."""

from __future__ import annotations

import copy
import itertools

import torch

from neuralcodec.quantizers import GroupResidualVQ, ResidualVQ
from neuralcodec.quantizers.residual import sample_stage_counts


def correlated_latent(batch: int, dim: int, frames: int) -> torch.Tensor:
    """Latents with some structure (low-rank plus noise), like an encoder output."""
    basis = torch.randn(dim, 4)
    return torch.einsum("dk,bkt->bdt", basis, torch.randn(batch, 4, frames)) + 0.3 * torch.randn(batch, dim, frames)


def test_stage_count_sampling() -> None:
    k = sample_stage_counts(20000, 8, 0.5, 2, torch.device("cpu"))
    assert k.min() == 2 and k.max() == 8
    # P(k = 8) = 0.5 + 0.5 / 7, P(k = j < 8) = 0.5 / 7
    assert abs((k == 8).float().mean().item() - (0.5 + 0.5 / 7)) < 0.02
    assert abs((k == 3).float().mean().item() - 0.5 / 7) < 0.01
    assert (sample_stage_counts(100, 8, 0.0, 1, torch.device("cpu")) == 8).all()


def test_dropout_is_per_item_and_marks_dropped_codes() -> None:
    q = ResidualVQ(8, num_codebooks=6, codebook_size=16, dropout=1.0).train()
    out = q(torch.randn(64, 8, 10))
    dropped = out.codes == -1
    # per item: the same number of stages at every position, and dropped stages form a suffix
    kept = (~dropped).sum(dim=1)  # [B, T]
    assert (kept == kept[:, :1]).all()
    assert kept.min() >= 1 and kept.unique().numel() > 1
    positions = torch.arange(6).view(1, 6, 1)
    assert torch.equal(dropped, positions >= kept.unsqueeze(1))
    q.eval()
    assert (q(torch.randn(4, 8, 10)).codes >= 0).all()
    assert (q.encode(torch.randn(4, 8, 10)) >= 0).all()


def test_training_output_is_the_k_stage_decode_of_each_item() -> None:
    q = ResidualVQ(8, num_codebooks=4, codebook_size=16, dropout=1.0, min_codebooks=1).train()
    for _ in range(3):
        q(torch.randn(8, 8, 12))
    frozen = copy.deepcopy(q).eval()  # the codebooks this training step will look codes up in
    z = torch.randn(32, 8, 12)
    out = q(z)
    kept = (out.codes[:, :, 0] >= 0).sum(dim=1)
    assert kept.unique().numel() > 1
    # -1 marks absent stages: decoding them reproduces the training output bit for bit ...
    assert torch.equal(frozen.decode(out.codes), out.quantized)
    # ... and equals decoding each item's own k-stage prefix
    for b in range(32):
        k = int(kept[b])
        assert torch.equal(frozen.decode(out.codes[b : b + 1, :k]), out.quantized[b : b + 1])


def test_dropped_stages_leave_codebook_statistics_untouched() -> None:
    q = ResidualVQ(4, num_codebooks=3, codebook_size=8).train()
    rows = torch.randn(50, 4)
    before = {k: v.clone() for k, v in q.state_dict().items()}
    q.forward_rows(rows, torch.ones(50, dtype=torch.long))  # every row keeps only stage 0
    after = q.state_dict()
    assert not torch.equal(after["stages.0.codebook.cluster_size"], before["stages.0.codebook.cluster_size"])
    for stage in (1, 2):
        for name in ("embed", "embed_sum", "cluster_size"):
            key = f"stages.{stage}.codebook.{name}"
            assert torch.equal(after[key], before[key]), key


def test_bitrate_and_error_are_monotonic_in_the_number_of_codebooks() -> None:
    dim, n = 16, 6
    q = ResidualVQ(dim, num_codebooks=n, codebook_size=32, dropout=0.5, kmeans_init=True, kmeans_iters=5).train()
    for _ in range(60):
        q(correlated_latent(8, dim, 64))
    q.eval()
    z = correlated_latent(16, dim, 128)
    full = q.encode(z)
    errors, bits = [], []
    for k in range(1, n + 1):
        codes = q.encode(z, num_codebooks=k)
        assert torch.equal(codes, full[:, :k])  # a lower bitrate is a prefix of the full stream
        errors.append((q.decode(codes) - z).pow(2).mean().item())
        bits.append(q.bits_per_frame_at(k))
    assert all(b2 > b1 for b1, b2 in itertools.pairwise(bits))
    assert all(e2 < e1 for e1, e2 in itertools.pairwise(errors)), errors
    assert errors[-1] < 0.5 * errors[0]
    assert bits[-1] == q.bits_per_frame == n * 5


def test_factorised_cosine_rvq_learns() -> None:
    """DAC-style stages: low-dimensional projected, L2-normalised codes."""
    dim = 16
    q = ResidualVQ(dim, 4, 32, codebook_dim=4, distance="cosine", kmeans_init=True).train()
    opt = torch.optim.Adam(q.parameters(), lr=1e-2)
    z = correlated_latent(8, dim, 64)
    first = None
    for _ in range(40):
        out = q(z)
        loss = (out.quantized - z).pow(2).mean() + out.loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.7 * first


def test_grvq_codes_are_stage_major_and_truncate_per_stage() -> None:
    dim, groups, stages = 12, 3, 2
    q = GroupResidualVQ(dim, groups=groups, num_codebooks=stages, codebook_size=16).eval()
    z = torch.randn(2, dim, 7)
    codes = q.encode(z)
    assert codes.shape == (2, groups * stages, 7)
    for g, rvq in enumerate(q.rvqs):
        own = rvq.encode(z[:, g * 4 : (g + 1) * 4])
        for s in range(stages):
            assert torch.equal(codes[:, s * groups + g], own[:, s])
    low = q.encode(z, num_codebooks=groups)
    assert torch.equal(low, codes[:, :groups])
    err_low = (q.decode(low) - z).pow(2).mean()
    err_full = (q.decode(codes) - z).pow(2).mean()
    assert err_full < err_low


def test_grvq_dropout_shares_k_across_groups() -> None:
    q = GroupResidualVQ(8, groups=2, num_codebooks=4, codebook_size=8, dropout=1.0).train()
    codes = q(torch.randn(32, 8, 5)).codes
    kept = (codes >= 0).view(32, 4, 2, 5)  # [B, stage, group, T]
    assert torch.equal(kept[:, :, 0], kept[:, :, 1])
    assert kept.sum(dim=1)[:, 0, 0].unique().numel() > 1
