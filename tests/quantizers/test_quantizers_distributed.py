"""Data-parallel sync: two gloo processes (started by the test, never by the library) keep
identical codebooks, and synced EMA statistics equal a single process on the joint batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from neuralcodec.quantizers import ResidualVQ, VectorQuantizer

WORLD = 2


def rank_batch(rank: int, step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 * step + rank)
    return torch.randn(2, 6, 40, generator=g) + 3.0 * rank


def _worker(rank: int, init_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        # 1) synced EMA == one process seeing both ranks' rows
        torch.manual_seed(0)
        synced = VectorQuantizer(6, 16, decay=0.5, replace_dead_codes=False).train()
        torch.manual_seed(0)
        reference = VectorQuantizer(6, 16, decay=0.5, replace_dead_codes=False, sync=False).train()
        for step in range(3):
            synced(rank_batch(rank, step))
            reference(torch.cat([rank_batch(r, step) for r in range(WORLD)], dim=2))
        for key, value in reference.state_dict().items():
            torch.testing.assert_close(synced.state_dict()[key], value, rtol=1e-5, atol=1e-5)

        # 2) k-means init and dead-code revival draw jointly: every rank ends identical
        torch.manual_seed(rank)  # different local RNG streams on purpose
        rvq = ResidualVQ(6, 2, 16, kmeans_init=True, kmeans_iters=3, dead_code_threshold=0.5, decay=0.8).train()
        for step in range(4):
            rvq(rank_batch(rank, step))
        for value in rvq.state_dict().values():
            gathered = [torch.empty_like(value) for _ in range(WORLD)]
            dist.all_gather(gathered, value.contiguous())
            assert torch.equal(gathered[0], gathered[1])

        # 3) sync=False keeps statistics local
        torch.manual_seed(0)
        local = VectorQuantizer(6, 16, decay=0.5, replace_dead_codes=False, sync=False).train()
        local(rank_batch(rank, 0))
        size = local.codebook.cluster_size.clone()
        gathered = [torch.empty_like(size) for _ in range(WORLD)]
        dist.all_gather(gathered, size)
        assert not torch.equal(gathered[0], gathered[1])
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_two_process_sync(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "store"),), nprocs=WORLD, join=True)


def test_sync_true_without_group_is_an_error() -> None:
    q = VectorQuantizer(4, 8, sync=True).train()
    with pytest.raises(RuntimeError, match="process group"):
        q(torch.randn(1, 4, 10))
