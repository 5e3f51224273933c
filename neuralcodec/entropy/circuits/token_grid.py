"""A probabilistic circuit as a lossless prior over a quantizer's token grid ``[Q, T]``.

The audio codecs turn a clip into integer codes ``[Q, T]`` (``Q`` residual codebooks of ``K``
entries, ``T`` frames). :class:`CircuitTokenPrior` models them with one HCLT over a *window* of
``W`` consecutive frames: the ``D = Q * W`` tokens of a window are the circuit's variables,
variable ``v = t * Q + q`` holding codebook ``q`` of frame ``t`` of the window. A grid is cut into
``ceil(T / W)`` non-overlapping windows, the rows the circuit coder codes (windows are independent
under this model: it captures dependencies between codebooks and between nearby frames, not
long-range ones).

Emissions are by default shared by all frames of a window, one table per codebook
(``emissions="codebook"``: the token statistics do not depend on where a window starts), so a
window of ``W`` frames has ``Q`` emission tables ``[k, K]``; ``emissions="position"`` gives every
variable its own.

What a circuit gives for free here is *exact marginals*:

* the last window of a grid whose ``T`` is not a multiple of ``W`` is coded with its missing
  frames marginalized (nothing is coded for them, no padding symbols);
* the first ``q < Q`` codebooks alone (the lower bitrates of a codec trained with quantizer
  dropout) are coded under the exact marginal ``p(codes[:q])`` of the same circuit, with no
  retraining and no "absent" tokens; the coded size is ``-log2`` of that marginal.

Coding uses :class:`~neuralcodec.entropy.circuits.coder.CircuitCoder` (exact integer tables,
alphabets of ``K = 1024`` coded as a 32-way group then a 32-way offset). A stream does not store
``T`` or ``q``; the caller keeps them (as the codec's container metadata does for its own prior).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from neuralcodec.entropy.circuits.coder import CODER_VERSION, CircuitCoder
from neuralcodec.entropy.circuits.em import FitConfig, fit_hclt
from neuralcodec.entropy.circuits.hclt import HCLT

#: Layout of the saved file (tensors and metadata keys below).
FORMAT = 1
EMISSIONS = ("codebook", "position")


def emission_groups(num_codebooks: int, window: int, emissions: str = "codebook") -> np.ndarray | None:
    """``emit_groups [Q * W]`` for :class:`HCLT`: the codebook of each variable, or ``None``
    (one table per variable) for ``emissions="position"``."""
    if emissions not in EMISSIONS:
        raise ValueError(f"emissions must be one of {EMISSIONS}, got {emissions!r}")
    if emissions == "position":
        return None
    return np.tile(np.arange(num_codebooks, dtype=np.int64), window)


def grid_to_rows(codes: np.ndarray, num_codebooks: int, window: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Token grid ``codes [q, T]`` (``q <= Q``) -> circuit rows ``[ceil(T / W), Q * W]`` int64
    and the observed-entry mask of the same shape (``None`` when every entry is observed).

    Entries of codebooks ``>= q`` and of frames past ``T`` in the last window are unobserved
    (held as 0)."""
    q, t = codes.shape
    n = -(-t // window)
    padded = np.zeros((num_codebooks, n * window), dtype=np.int64)
    padded[:q, :t] = codes
    rows = padded.reshape(num_codebooks, n, window).transpose(1, 2, 0).reshape(n, window * num_codebooks)
    if q == num_codebooks and t == n * window:
        return np.ascontiguousarray(rows), None
    seen = np.zeros((num_codebooks, n * window), dtype=bool)
    seen[:q, :t] = True
    mask = seen.reshape(num_codebooks, n, window).transpose(1, 2, 0).reshape(n, window * num_codebooks)
    return np.ascontiguousarray(rows), np.ascontiguousarray(mask)


def rows_to_grid(rows: np.ndarray, num_codebooks: int, window: int, q: int, num_frames: int) -> np.ndarray:
    """Inverse of :func:`grid_to_rows`: rows ``[N, Q * W]`` -> codes ``[q, num_frames]`` int64."""
    n = rows.shape[0]
    grid = rows.reshape(n, window, num_codebooks).transpose(2, 0, 1).reshape(num_codebooks, n * window)
    return np.ascontiguousarray(grid[:q, :num_frames]).astype(np.int64)


def training_rows(grids: Sequence[np.ndarray], window: int, stride: int | None = None) -> np.ndarray:
    """All complete windows (every ``stride`` frames, default ``W``: non-overlapping) of full
    grids ``[Q, T_i]``: int64 ``[N, Q * W]`` in the layout of :func:`grid_to_rows`."""
    stride = window if stride is None else int(stride)
    if stride < 1:
        raise ValueError("stride must be >= 1")
    out = []
    for g in grids:
        g = np.asarray(g, dtype=np.int64)
        starts = np.arange(0, g.shape[1] - window + 1, stride)
        if starts.size:
            idx = starts[:, None] + np.arange(window)[None]  # [n, W]
            out.append(g[:, idx].transpose(1, 2, 0).reshape(starts.size, -1))  # [n, W * Q], frame-major
    if not out:
        raise ValueError(f"no grid has {window} frames")
    return np.concatenate(out)


class CircuitTokenPrior:
    """Lossless prior over token grids ``[q, T]`` (``q <= Q`` codebooks of ``K`` tokens) by an
    HCLT over windows of ``W`` frames; see the module docstring.

    Building it freezes the circuit into integer tables (:class:`CircuitCoder`)."""

    def __init__(self, circuit: HCLT, num_codebooks: int, window: int, emissions: str = "codebook",
                 fit: dict[str, Any] | None = None) -> None:
        if num_codebooks < 1 or window < 1:
            raise ValueError("need num_codebooks >= 1 and window >= 1")
        if circuit.num_vars != num_codebooks * window:
            raise ValueError(f"circuit has {circuit.num_vars} variables, a window of {window} frames x "
                             f"{num_codebooks} codebooks has {num_codebooks * window}")
        groups = emission_groups(num_codebooks, window, emissions)
        expected = np.arange(circuit.num_vars) if groups is None else groups
        if not np.array_equal(circuit.emit_index.numpy(), expected):
            raise ValueError(f"circuit's emission groups do not match emissions={emissions!r}")
        self.circuit = circuit
        self.num_codebooks, self.window, self.emissions = int(num_codebooks), int(window), emissions
        self.num_categories = circuit.num_categories
        self.fit_config = dict(fit or {})
        self.coder = CircuitCoder(circuit)

    # -- fitting and files ----------------------------------------------------------------------
    @classmethod
    def fit(cls, grids: Sequence[np.ndarray], num_categories: int, window: int, cfg: FitConfig | None = None, *,
            emissions: str = "codebook", stride: int | None = None, valid: Sequence[np.ndarray] | None = None,
            log: Callable[[str], None] | None = print) -> "CircuitTokenPrior":
        """Fit on full grids ``[Q, T_i]`` (complete windows, every ``stride`` frames) by
        :func:`fit_hclt`; ``valid`` grids are only evaluated for the log."""
        cfg = cfg or FitConfig(init="marginal")
        grids = [np.asarray(g) for g in grids]
        q = grids[0].shape[0]
        if any(g.ndim != 2 or g.shape[0] != q for g in grids):
            raise ValueError("training grids must all be [Q, T_i] with the same Q")
        rows = torch.from_numpy(training_rows(grids, window, stride))
        val = None if not valid else torch.from_numpy(training_rows(valid, window))
        circuit = fit_hclt(rows, num_categories, cfg, valid=val, log=log,
                           emit_groups=emission_groups(q, window, emissions))
        info = {**cfg.to_dict(), "stride": stride or window, "train_windows": int(rows.shape[0])}
        return cls(circuit, q, window, emissions, fit=info)

    @property
    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild the circuit around its parameters."""
        return {"format": FORMAT, "coder_version": CODER_VERSION, "num_codebooks": self.num_codebooks,
                "window": self.window, "num_categories": self.num_categories, "hidden": self.circuit.hidden,
                "emissions": self.emissions, "fit": self.fit_config}

    def save(self, path: str | Path) -> None:
        """Write the parameters and :attr:`config` to one safetensors file."""
        from safetensors.torch import save_file

        c = self.circuit
        tensors = {"parent": c.parent, "prior": c.prior, "trans": c.trans, "emit": c.emit}
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
                  metadata={"neuralcodec_circuit_token_prior": json.dumps(self.config)})

    @classmethod
    def load(cls, path: str | Path) -> "CircuitTokenPrior":
        """Inverse of :meth:`save`."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = (f.metadata() or {}).get("neuralcodec_circuit_token_prior")
            if meta is None:
                raise ValueError(f"{path} is not a circuit token prior file")
            cfg = json.loads(meta)
            tensors = {k: f.get_tensor(k) for k in ("parent", "prior", "trans", "emit")}
        if cfg.get("format") != FORMAT:
            raise ValueError(f"{path}: unsupported circuit token prior format {cfg.get('format')}")
        q, w = int(cfg["num_codebooks"]), int(cfg["window"])
        circuit = HCLT(q * w, int(cfg["num_categories"]), int(cfg["hidden"]), parent=tensors["parent"].numpy(),
                       emit_groups=emission_groups(q, w, cfg["emissions"]))
        for name in ("prior", "trans", "emit"):
            getattr(circuit, name).copy_(tensors[name])
        return cls(circuit, q, w, cfg["emissions"], fit=cfg.get("fit"))

    # -- coding -------------------------------------------------------------------------------------
    def check_codes(self, codes: np.ndarray | torch.Tensor) -> np.ndarray:
        """Validate a token grid ``[q, T]`` (``1 <= q <= Q``, tokens in ``[0, K)``): int64 copy."""
        if isinstance(codes, torch.Tensor):
            codes = codes.detach().cpu().numpy()
        codes = np.asarray(codes)
        if codes.dtype.kind not in "iu":
            raise TypeError(f"token grid must hold integers, got {codes.dtype}")
        if codes.ndim != 2:
            raise ValueError(f"token grid must be [q, T] (codebooks x frames), got shape {codes.shape}")
        q = codes.shape[0]
        if not 1 <= q <= self.num_codebooks:
            raise ValueError(f"token grid has {q} codebooks; this prior models the first 1..{self.num_codebooks}")
        if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= self.num_categories):
            raise ValueError(f"token outside the codebook alphabet [0, {self.num_categories}): "
                             f"values span [{int(codes.min())}, {int(codes.max())}]")
        return codes.astype(np.int64)

    def rows(self, codes: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """Checked :func:`grid_to_rows` of ``codes [q, T]``."""
        return grid_to_rows(self.check_codes(codes), self.num_codebooks, self.window)

    def compress(self, codes: np.ndarray | torch.Tensor) -> bytes:
        """One ANS stream for the token grid ``codes [q, T]``."""
        rows, mask = self.rows(codes)
        return self.coder.encode(rows, mask)

    def decompress(self, data: bytes, num_frames: int, num_codebooks: int | None = None) -> np.ndarray:
        """Inverse of :meth:`compress`: int64 ``[q, num_frames]`` (``q`` default ``Q``)."""
        q = self.num_codebooks if num_codebooks is None else int(num_codebooks)
        if not 1 <= q <= self.num_codebooks:
            raise ValueError(f"num_codebooks must lie in [1, {self.num_codebooks}], got {q}")
        if num_frames < 0:
            raise ValueError("num_frames must be >= 0")
        n = -(-int(num_frames) // self.window)
        _, mask = grid_to_rows(np.zeros((q, int(num_frames)), np.int64), self.num_codebooks, self.window)
        rows = self.coder.decode(data, n, mask)
        return rows_to_grid(rows, self.num_codebooks, self.window, q, int(num_frames))

    # -- measuring ----------------------------------------------------------------------------------
    def nll_bits(self, codes: np.ndarray | torch.Tensor) -> float:
        """The model's ``-log2 p(codes)`` (float64 circuit evaluation, exact marginals)."""
        rows, mask = self.rows(codes)
        if rows.shape[0] == 0:
            return 0.0
        m = None if mask is None else torch.from_numpy(mask)
        ll = self.circuit.log_prob(torch.from_numpy(rows), m, dtype=torch.float64)
        return float(-ll.sum()) / math.log(2.0)

    def code_bits(self, codes: np.ndarray | torch.Tensor) -> float:
        """Information content under the coder's integer tables (a stream is this plus <= 64 bits)."""
        rows, mask = self.rows(codes)
        return float(self.coder.code_bits(rows, mask).sum())


class CircuitTokenPriorModule(nn.Module):
    """A :class:`CircuitTokenPrior` as part of a codec (``AudioCodec.circuit_prior``).

    The HCLT's parameters are this module's buffers (``circuit.parent``, ``circuit.prior``,
    ``circuit.trans``, ``circuit.emit``), so they travel in the codec's state dict and its exported
    file; the shape comes from the config entry (``window``, ``hidden``, ``emissions``). Coding goes
    through a :class:`CircuitTokenPrior` built from the current buffers on first use (the freeze
    step: :class:`CircuitCoder` turns them into integer tables) and rebuilt whenever they change
    (EM updates, ``load_state_dict``). Float16 storage of the buffers costs next to nothing: the
    coder renormalizes each row and rounds it to multiples of ``2**-24``, the resolution float16
    has below ``2**-14`` anyway.

    The module has its own :meth:`fingerprint` (config + buffers); it is part of
    :attr:`entropy_model_id`, which the container records, so a file coded with one circuit is never
    decoded with another. ``compress``/``decompress`` follow :class:`~neuralcodec.entropy.TokenPrior`'s
    batch interface (one byte string per item of ``[B, q, T]``).
    """

    #: prefix of :attr:`entropy_model_id` (what a container header names)
    ID_PREFIX = "circuit-prior/"

    def __init__(self, num_codebooks: int, num_categories: int, window: int = 4, hidden: int = 64,
                 emissions: str = "codebook") -> None:
        super().__init__()
        if num_codebooks < 1 or window < 1 or hidden < 1:
            raise ValueError("need num_codebooks, window and hidden >= 1")
        self.num_codebooks, self.num_categories = int(num_codebooks), int(num_categories)
        self.window, self.emissions = int(window), emissions
        self.circuit = HCLT(self.num_codebooks * self.window, self.num_categories, int(hidden),
                            emit_groups=emission_groups(self.num_codebooks, self.window, emissions))
        self._cache: tuple[tuple, CircuitTokenPrior, bytes] | None = None

    @property
    def config(self) -> dict[str, Any]:
        """The codec-config entry that rebuilds this module (``num_codebooks``/``num_categories``
        come from the codec's quantizer)."""
        return {"window": self.window, "hidden": self.circuit.hidden, "emissions": self.emissions}

    @classmethod
    def from_prior(cls, prior: CircuitTokenPrior) -> "CircuitTokenPriorModule":
        """A module holding the parameters of an already fitted (or loaded) prior."""
        module = cls(prior.num_codebooks, prior.num_categories, prior.window, prior.circuit.hidden, prior.emissions)
        module.circuit.load_state_dict(prior.circuit.state_dict())
        return module

    def _key(self) -> tuple:
        return tuple((t.data_ptr(), t._version) for t in self.circuit.buffers())

    def _frozen(self) -> tuple[CircuitTokenPrior, bytes]:
        key = self._key()
        if self._cache is None or self._cache[0] != key:
            prior = CircuitTokenPrior(self.circuit, self.num_codebooks, self.window, self.emissions)
            digest = hashlib.blake2b(digest_size=16, person=b"nc.circuitprior")
            digest.update(json.dumps({**self.config, "num_codebooks": self.num_codebooks,
                                      "num_categories": self.num_categories, "coder_version": CODER_VERSION},
                                     sort_keys=True).encode())
            for name, t in sorted(self.circuit.state_dict().items()):
                t = t.detach().cpu().contiguous()
                digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
                digest.update(t.numpy().tobytes())
            self._cache = (key, prior, digest.digest())
        return self._cache[1], self._cache[2]

    @property
    def prior(self) -> CircuitTokenPrior:
        """The frozen coder of the current parameters."""
        return self._frozen()[0]

    def fingerprint(self) -> bytes:
        """16-byte BLAKE2b of the config, the coder version and every buffer."""
        return self._frozen()[1]

    @property
    def entropy_model_id(self) -> str:
        """``circuit-prior/hclt-v<coder version>/<first 8 fingerprint bytes, hex>``."""
        return f"{self.ID_PREFIX}hclt-v{CODER_VERSION}/{self.fingerprint()[:8].hex()}"

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._cache = None

    # -- coding (TokenPrior's batch interface) ------------------------------------------------------
    def compress(self, codes: torch.Tensor) -> list[bytes]:
        """One byte string per item of ``codes [B, q, T]`` (``q <= Q``)."""
        if codes.dim() != 3:
            raise ValueError(f"expected codes [B, q, T], got shape {tuple(codes.shape)}")
        prior = self.prior
        return [prior.compress(item) for item in codes.detach().cpu().numpy()]

    def decompress(self, strings: Sequence[bytes], num_frames: int, num_codebooks: int | None = None) -> torch.Tensor:
        """Inverse of :meth:`compress`: codes ``[B, q, num_frames]`` int64."""
        prior = self.prior
        out = [prior.decompress(bytes(s), num_frames, num_codebooks) for s in strings]
        q = self.num_codebooks if num_codebooks is None else int(num_codebooks)
        return torch.from_numpy(np.stack(out)) if out else torch.zeros(0, q, int(num_frames), dtype=torch.int64)

    def bits_per_token(self, codes: torch.Tensor) -> torch.Tensor:
        """Model ``-log2 p`` per observed token of ``codes [B, Q, T]`` (``-1`` = absent: marginalized),
        float64 evaluation of the current parameters (a validation metric, not the coder's)."""
        rows, mask = batch_rows(codes, self.window)
        if rows.shape[0] == 0:
            return torch.zeros((), dtype=torch.float64)
        ll = self.circuit.log_prob(rows, mask, dtype=torch.float64)
        return -ll.sum() / math.log(2.0) / mask.sum().clamp_min(1)


def batch_rows(codes: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training rows of a padded batch ``codes [B, Q, T]`` (``-1`` = absent, as in
    :class:`~neuralcodec.train.data.tokens.TokenDataModule` batches): every window of ``W`` frames
    from the start of each item, ``rows [N, Q * W]`` int64 and the observed mask (windows with no
    observed token are dropped)."""
    b, q, t = codes.shape
    n = -(-t // window)
    padded = torch.full((b, q, n * window), -1, dtype=torch.int64)
    padded[..., :t] = codes
    rows = padded.reshape(b, q, n, window).permute(0, 2, 3, 1).reshape(b * n, window * q)
    mask = rows >= 0
    keep = mask.any(dim=1)
    return rows[keep].clamp_min(0), mask[keep]
