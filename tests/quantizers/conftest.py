"""Quantizer tests use small tensors: one intra-op thread avoids OpenMP barrier stalls when the
2-core test machine is shared (tiny parallel ops can then take milliseconds each)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
