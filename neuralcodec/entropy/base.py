"""Base class of the entropy models: the explicit, versioned freeze step and the fingerprint.

A model's coding path never reads a float that could differ between encoder and decoder: it
reads integer tables (and integer network weights) that :meth:`EntropyModel.freeze` computes once
from the learned parameters and stores as buffers. Buffers travel with ``state_dict``, so a loaded
model codes exactly like the one that was saved; the buffer ``table_version`` records the
construction version (:data:`~neuralcodec.entropy.tables.TABLE_VERSION`) and coding refuses
models frozen under another version or not frozen at all.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

from neuralcodec.entropy.tables import PRECISION, TABLE_VERSION, TableBank
from neuralcodec.errors import ModelError


class EntropyModel(nn.Module):
    """Common freeze / fingerprint / state-dict machinery.

    Subclasses implement :meth:`_build_tables` and list buffers whose shape depends on the
    learned parameters in ``_dynamic_buffers`` (they are resized when a state dict is loaded).
    """

    _dynamic_buffers: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table_version", torch.zeros((), dtype=torch.int64))
        #: eval-mode ``forward`` of a frozen model reports the coder's exact probabilities.
        self.exact_eval_likelihoods = True

    # -- freezing ---------------------------------------------------------------------------
    @property
    def frozen(self) -> bool:
        return int(self.table_version) == TABLE_VERSION

    @torch.no_grad()
    def freeze(self) -> EntropyModel:
        """Turn the learned densities into integer tables (call again after further training)."""
        self._build_tables()
        self.table_version.fill_(TABLE_VERSION)
        return self

    def update(self, force: bool = True) -> bool:
        """CompressAI-style alias of :meth:`freeze`; returns True."""
        self.freeze()
        return True

    def unfreeze(self) -> None:
        """Mark the tables stale (e.g. before resuming training)."""
        self.table_version.zero_()

    def _build_tables(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def require_frozen(self) -> None:
        """Raise :class:`ModelError` unless the tables are built under the current version."""
        version = int(self.table_version)
        if version == 0:
            raise ModelError(f"{type(self).__name__} is not frozen: call freeze() after training")
        if version != TABLE_VERSION:
            raise ModelError(
                f"{type(self).__name__} tables were built with table version {version}, "
                f"this code uses {TABLE_VERSION}: call freeze() again"
            )

    def use_exact_likelihoods(self) -> bool:
        return (not self.training) and self.exact_eval_likelihoods and self.frozen

    # -- identity ---------------------------------------------------------------------------
    def fingerprint(self) -> bytes:
        """SHA-256 over class, versions and every buffer (the integer tables and weights)."""
        self.require_frozen()
        h = hashlib.sha256(f"{type(self).__name__}/v{TABLE_VERSION}/p{PRECISION}".encode())
        for name, buf in sorted(self.named_buffers(), key=lambda kv: kv[0]):
            t = buf.detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes())
        return h.digest()

    # -- table banks ---------------------------------------------------------------------------
    def _register_bank(self, prefix: str, bank: TableBank | None = None) -> None:
        """Create (or overwrite) the three buffers that hold a :class:`TableBank`."""
        freqs = torch.from_numpy(bank.freqs.astype(np.int32)) if bank else torch.zeros(0, dtype=torch.int32)
        starts = torch.from_numpy(bank.starts.copy()) if bank else torch.zeros(1, dtype=torch.int64)
        v_min = torch.from_numpy(bank.v_min.copy()) if bank else torch.zeros(0, dtype=torch.int64)
        for suffix, value in (("freqs", freqs), ("starts", starts), ("v_min", v_min)):
            name = f"{prefix}_{suffix}"
            if name in self._buffers:
                self._buffers[name] = value
            else:
                self.register_buffer(name, value)

    def _bank(self, prefix: str) -> TableBank:
        """The :class:`TableBank` stored in buffers ``prefix_*`` (cached until they change)."""
        tensors = [self._buffers[f"{prefix}_{s}"] for s in ("freqs", "starts", "v_min")]
        key = tuple((t.data_ptr(), t._version, t.numel()) for t in tensors)
        cache = self.__dict__.setdefault("_bank_cache", {})
        hit = cache.get(prefix)
        if hit is None or hit[0] != key:
            freqs, starts, v_min = (t.detach().cpu().numpy().astype(np.int64) for t in tensors)
            hit = (key, TableBank(freqs=freqs, starts=starts, v_min=v_min))
            cache[prefix] = hit
        return hit[1]

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_bank_cache", None)  # holds constriction objects; rebuilt on demand
        return state

    # -- state dict ---------------------------------------------------------------------------
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in self._dynamic_buffers:
            key = prefix + name
            if key in state_dict and name in self._buffers:
                self._buffers[name] = torch.empty_like(state_dict[key], device=self._buffers[name].device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
