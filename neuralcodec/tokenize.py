"""Tokenize a whole folder of audio into code shards and a JSONL manifest (``codec tokenize``).

Why a separate module: audio language models train on token files, not on waveforms, and a
corpus is too big to encode one file at a time on one device. The work is spread with
Lightning's own predict loop (``Trainer(devices, num_nodes, strategy).predict``): Lightning
replaces the data loader's sampler by its distributed one, so each rank gets a disjoint part
of the file list, and each rank writes its own shards. Nothing here talks to other ranks except
one barrier after prediction, before global rank 0 merges the manifest.

Output folder layout::

    OUT_DIR/shards/tokens-r<rank>-<run>-<n>.safetensors   one shard (written atomically)
        tensors   "codes/<key>"  int16 [Q, F] codes of one utterance (int32 if a codebook has
                                 more than 32768 entries), "lengths" int64 [N] frames per record
        metadata  "neuralcodec_tokens": JSON with the model fingerprint, the number of codebooks,
                                 the manifest records of its utterances and the files that failed
    OUT_DIR/manifest.jsonl   one record per utterance, sorted by key (merged from the shards)
    OUT_DIR/skipped.jsonl    files that were not tokenized, with the reason
    OUT_DIR/tokenizer.json   model facts: id, fingerprint, sample/frame rate, codebooks, dtype

A manifest record: ``{"key", "path", "duration", "sample_rate", "channels", "frames",
"num_codebooks", "shard", "tensor"}``; ``key`` is the file's path relative to IN_DIR (POSIX),
``shard`` is relative to OUT_DIR, ``tensor`` is the name inside the shard.

Audio policy: every file is down-mixed to mono (mean of channels) and resampled to the model's
rate (exactly what ``codec.encode(wav, sample_rate)`` does to a mono file). By default each item
of a batch is encoded at its own length, so the codes equal encoding the file alone, bit for bit;
``padded=True`` (``--padded``) encodes the zero-padded batch in one call with ``lengths`` instead,
faster on GPUs but exact only up to rare floating-point near-ties (see :class:`TokenizerModule`).
Items are ordered longest first so that a batch holds similar lengths (little padding).

Bad input: files that are not readable audio (any extension; hidden files and folders are
ignored) are skipped with one warning and listed in ``skipped.jsonl``; a file that fails while
being decoded (e.g. NaN samples) is skipped the same way and retried by the next run (so is a file
longer than an hour, the limit of :func:`~neuralcodec.media.audio.load_audio`: each file is
encoded whole). A folder without any audio file is an error.

Resuming: shards are complete by construction (atomic rename), so a rerun skips every key found
in ``OUT_DIR/shards`` and encodes the rest; an interrupted run (Ctrl-C included) first flushes
what it has finished. A file is identified by its relative path only: a changed file with the
same name is not redone. Shards made with another model or codebook count are refused.

Multi-node runs need OUT_DIR on a shared file system (every rank reads it to resume; rank 0
merges). Otherwise gather the shard folders into one OUT_DIR/shards and run
``codec tokenize IN_DIR OUT_DIR --merge-only`` (:func:`merge_manifest`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import lightning
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

from neuralcodec.errors import MediaError, ModelError, NeuralCodecError, UsageError

SHARD_DIR = "shards"
MANIFEST = "manifest.jsonl"
SKIPPED = "skipped.jsonl"
TOKENIZER_INFO = "tokenizer.json"
META_KEY = "neuralcodec_tokens"
TOKENS_FORMAT = 1
TENSOR_PREFIX = "codes/"


class TokenizeWarning(UserWarning):
    """Some input files were skipped (they are listed in ``skipped.jsonl``)."""


# ---------------------------------------------------------------------------------------------
# discovery
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioItem:
    """One input file, described from its header alone."""

    key: str  # path relative to IN_DIR, POSIX separators
    path: str  # absolute path (symbolic links kept as named; linked folders are not entered)
    sample_rate: int
    channels: int
    num_samples: int

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate


def discover_audio(in_dir: str | os.PathLike, exclude: Sequence[str | os.PathLike] = ()
                   ) -> tuple[list[AudioItem], list[dict[str, str]]]:
    """Readable audio files under ``in_dir`` (recursively, sorted by key) and the files skipped.

    Every regular, non-hidden file is probed with libsndfile (header only), whatever its
    extension; folders in ``exclude`` (e.g. the output folder) are not entered. Returns
    ``(items, skipped)`` where ``skipped`` holds ``{"path", "reason"}`` dicts.
    """
    from neuralcodec.media.audio import audio_info

    root = Path(in_dir)
    if not root.is_dir():
        raise UsageError(f"input folder not found: {root}")
    excluded = {Path(p).resolve() for p in exclude}
    items: list[AudioItem] = []
    skipped: list[dict[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in excluded)
        for name in sorted(filenames):
            path = here / name
            if name.startswith(".") or not path.is_file():
                continue
            try:
                info = audio_info(path)
            except MediaError as exc:
                skipped.append({"path": os.path.abspath(path), "reason": str(exc)})
                continue
            items.append(AudioItem(key=path.relative_to(root).as_posix(), path=os.path.abspath(path),
                                   sample_rate=info.sample_rate, channels=info.channels, num_samples=info.num_frames))
    items.sort(key=lambda item: item.key)
    return items, skipped


# ---------------------------------------------------------------------------------------------
# data: files -> padded batches
# ---------------------------------------------------------------------------------------------


class AudioItemDataset(torch.utils.data.Dataset):
    """Loads item ``i`` as mono float32 ``[T]`` at ``sample_rate``; decoding errors are returned, not raised."""

    def __init__(self, items: Sequence[AudioItem], sample_rate: int) -> None:
        self.items = list(items)
        self.sample_rate = int(sample_rate)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from neuralcodec.media.audio import load_audio

        try:
            wav, _ = load_audio(self.items[index].path, sample_rate=self.sample_rate, channels="mono")
        except NeuralCodecError as exc:
            return {"index": index, "wav": None, "error": str(exc)}
        return {"index": index, "wav": wav[0], "error": None}


def collate_audio(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Zero-pad the good items to ``wav [B, 1, T_max]`` with ``lengths [B]``; keep the failures aside."""
    good = [s for s in samples if s["wav"] is not None]
    batch: dict[str, Any] = {"index": [s["index"] for s in good],
                             "failed": [(s["index"], s["error"]) for s in samples if s["wav"] is None],
                             "wav": None, "lengths": None}
    if good:
        lengths = torch.tensor([s["wav"].numel() for s in good], dtype=torch.int64)
        wav = torch.zeros(len(good), 1, int(lengths.max()))
        for row, s in enumerate(good):
            wav[row, 0, : s["wav"].numel()] = s["wav"]
        batch["wav"], batch["lengths"] = wav, lengths
    return batch


# ---------------------------------------------------------------------------------------------
# the LightningModule and the shard writer
# ---------------------------------------------------------------------------------------------


def codes_dtype(codebook_sizes: Sequence[int]) -> torch.dtype:
    """Smallest signed integer type that holds every code (int16 up to 32768 entries)."""
    return torch.int16 if max(codebook_sizes) <= 2**15 else torch.int32


@contextlib.contextmanager
def batch_invariant_cpu_kernels() -> Iterator[None]:
    """Turn oneDNN (mkldnn) off for the block: its CPU convolutions round differently for batch sizes > 1.

    Measured with torch 2.11 on the audio encoder: a strided ``Conv1d`` gives ~1e-6 differences
    between an item alone and the same item in a batch of 2; the native kernels give identical
    rows for any batch size. No effect on GPU.
    """
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


class TokenizerModule(lightning.LightningModule):
    """Wraps a codec's ``encode`` as a Lightning predict step over batches from :func:`collate_audio`.

    Two ways to encode a batch:

    * ``padded=False`` (default, exact): each item is encoded at its own length, exactly the call
      ``codec.encode(wav_i[None])``, so the codes equal one-by-one encoding on any device. The
      batch still amortises data loading and the distributed loop.
    * ``padded=True`` (throughput on GPUs): one call ``codec.encode(wav [B, 1, T_max], lengths=...)``
      on the zero-padded batch. ``lengths`` makes every item's codes those of the item alone up to
      floating-point rounding; rounding differs with the batch shape (matrix-product blocking in
      the nearest-codeword search, oneDNN convolutions, cuBLAS kernels), so a frame whose two
      nearest codewords are nearly tied can flip (measured with a tiny random model on noise:
      about 1 code in 300). oneDNN is turned off for this call to remove the convolution part.
    """

    def __init__(self, codec: Any, num_codebooks: int | None = None, padded: bool = False) -> None:
        super().__init__()
        self.codec = codec.eval()
        self.num_codebooks = num_codebooks
        self.padded = bool(padded)
        self.dtype_out = codes_dtype(codec.codebook_sizes)

    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> dict[str, Any]:
        """Batch from :func:`collate_audio` -> ``{"index", "codes": [Q, F_i] per item, "failed"}``."""
        out: dict[str, Any] = {"index": list(batch["index"]), "codes": [], "failed": list(batch["failed"])}
        if batch["wav"] is None:
            return out
        wav: Tensor = batch["wav"]  # [B, 1, T_max], zero-padded
        lengths: list[int] = batch["lengths"].tolist()
        if self.padded:
            with batch_invariant_cpu_kernels():
                codes = self.codec.encode(wav, lengths=batch["lengths"], num_codebooks=self.num_codebooks, exact=False)
            frames = [max(1, math.ceil(n / self.codec.hop_length)) for n in lengths]
            items = [codes[i, :, :f] for i, f in enumerate(frames)]
        else:
            items = [self.codec.encode(wav[i: i + 1, :, :n].contiguous(), num_codebooks=self.num_codebooks)[0]
                     for i, n in enumerate(lengths)]
        out["codes"] = [c.to(self.dtype_out).cpu() for c in items]
        return out


def _shard_meta(fingerprint: str, num_codebooks: int, records: list[dict], failed: list[dict]) -> dict[str, str]:
    body = {"format": TOKENS_FORMAT, "fingerprint": fingerprint, "num_codebooks": num_codebooks,
            "records": records, "failed": failed}
    return {META_KEY: json.dumps(body)}


class ShardWriter(BasePredictionWriter):
    """Collects predictions of one rank and writes a shard every ``shard_size`` utterances.

    The last partial shard is written at the end of the epoch, and also when prediction is
    interrupted (``on_exception``), so finished work survives Ctrl-C.
    """

    def __init__(self, out_dir: Path, items: Sequence[AudioItem], fingerprint: str, num_codebooks: int,
                 shard_size: int) -> None:
        super().__init__(write_interval="batch")
        self.shard_dir = Path(out_dir) / SHARD_DIR
        self.items = list(items)
        self.fingerprint = fingerprint
        self.num_codebooks = num_codebooks
        self.shard_size = int(shard_size)
        self.run = uuid.uuid4().hex[:8]
        self.rank = 0
        self.count = 0
        self.written: list[Path] = []
        self._records: list[tuple[AudioItem, Tensor]] = []
        self._failed: list[dict[str, str]] = []

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.rank = int(trainer.global_rank)

    def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: dict[str, Any], batch_indices: Any,
                           batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        for index, codes in zip(prediction["index"], prediction["codes"]):
            self._records.append((self.items[index], codes))
        for index, error in prediction["failed"]:
            self._failed.append({"path": self.items[index].path, "reason": error})
        while len(self._records) >= self.shard_size:
            self.flush(self.shard_size)

    def on_predict_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.flush()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.flush()

    def flush(self, limit: int | None = None) -> None:
        """Write the first ``limit`` buffered utterances (all when None) and the failures as one shard, atomically."""
        from safetensors.torch import save_file

        from neuralcodec.fileio import atomic_path

        if not self._records and not self._failed:
            return
        taken, rest = (self._records, []) if limit is None else (self._records[:limit], self._records[limit:])
        name = f"tokens-r{self.rank:04d}-{self.run}-{self.count:05d}.safetensors"
        shard = f"{SHARD_DIR}/{name}"
        tensors: dict[str, Tensor] = {}
        records = []
        for item, codes in taken:
            tensor = TENSOR_PREFIX + item.key
            tensors[tensor] = codes.contiguous()
            records.append({"key": item.key, "path": item.path, "duration": item.duration,
                            "sample_rate": item.sample_rate, "channels": item.channels,
                            "frames": int(codes.shape[-1]), "num_codebooks": int(codes.shape[0]),
                            "shard": shard, "tensor": tensor})
        tensors["lengths"] = torch.tensor([r["frames"] for r in records], dtype=torch.int64)
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.shard_dir / name, suffix=".safetensors") as tmp:
            meta = _shard_meta(self.fingerprint, self.num_codebooks, records, self._failed)
            save_file(tensors, str(tmp), metadata=meta)
        self.written.append(self.shard_dir / name)
        self.count += 1
        self._records, self._failed = rest, []


# ---------------------------------------------------------------------------------------------
# shards on disk: resume scan, merge, reading back
# ---------------------------------------------------------------------------------------------


def _shard_files(out_dir: Path) -> list[Path]:
    folder = Path(out_dir) / SHARD_DIR
    return sorted(p for p in folder.glob("*.safetensors") if not p.name.startswith(".")) if folder.is_dir() else []


def read_shard_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of one shard (records, failures, fingerprint); no tensor is loaded."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        body = json.loads(meta[META_KEY])
    except Exception as exc:
        raise NeuralCodecError(f"{path} is not a readable token shard ({exc}); delete it to redo its files") from exc
    if body.get("format") != TOKENS_FORMAT:
        raise NeuralCodecError(f"{path}: token shard format {body.get('format')!r}, expected {TOKENS_FORMAT}")
    return body


def completed_keys(out_dir: str | os.PathLike, fingerprint: str | None = None,
                   num_codebooks: int | None = None) -> set[str]:
    """Keys already tokenized in ``out_dir``; refuses shards made with another model or codebook count."""
    done: set[str] = set()
    for path in _shard_files(Path(out_dir)):
        body = read_shard_metadata(path)
        if fingerprint is not None and body["fingerprint"] != fingerprint:
            raise UsageError(f"{path} was made with another model (fingerprint {body['fingerprint']}); "
                             "use a new output folder")
        if num_codebooks is not None and body["num_codebooks"] != num_codebooks:
            raise UsageError(f"{path} holds {body['num_codebooks']} codebooks, this run asks for {num_codebooks}; "
                             "use a new output folder")
        done.update(r["key"] for r in body["records"])
    return done


def _write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    from neuralcodec.fileio import atomic_output

    with atomic_output(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row, sort_keys=True) + "\n")


def merge_manifest(out_dir: str | os.PathLike, skipped: Sequence[dict[str, str]] = ()) -> Path:
    """Rebuild ``manifest.jsonl`` (and ``skipped.jsonl``) from every shard in ``out_dir/shards``.

    Records are sorted by key; a key present in two shards (only possible when runs overlapped)
    keeps its first occurrence in shard-name order. Failures of files that were tokenized
    later are dropped. Leftover temporary files of killed runs are removed. Call it only when no
    rank is writing.
    """
    out = Path(out_dir)
    records: dict[str, dict] = {}
    failed: dict[str, dict] = {}
    for path in _shard_files(out):
        body = read_shard_metadata(path)
        for record in body["records"]:
            records.setdefault(record["key"], record)
        for row in body["failed"]:
            failed[row["path"]] = row
    done_paths = {r["path"] for r in records.values()}
    skipped_rows = [*skipped, *(row for p, row in sorted(failed.items()) if p not in done_paths)]
    shard_dir = out / SHARD_DIR
    if shard_dir.is_dir():
        for stale in shard_dir.glob(".tokens-*.part*"):
            stale.unlink(missing_ok=True)
    _write_jsonl(out / SKIPPED, skipped_rows)
    manifest = out / MANIFEST
    _write_jsonl(manifest, [records[k] for k in sorted(records)])
    return manifest


def read_manifest(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of ``out_dir/manifest.jsonl``."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise UsageError(f"no manifest in {out_dir}: run 'codec tokenize' first")
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def iter_tokens(out_dir: str | os.PathLike) -> Iterator[tuple[dict[str, Any], Tensor]]:
    """Yield ``(record, codes [Q, F])`` for every utterance of the manifest, one shard open at a time."""
    from safetensors import safe_open

    out = Path(out_dir)
    records = read_manifest(out)
    by_shard: dict[str, list[dict]] = {}
    for record in records:
        by_shard.setdefault(record["shard"], []).append(record)
    for shard in sorted(by_shard):
        with safe_open(str(out / shard), framework="pt") as handle:
            for record in by_shard[shard]:
                yield record, handle.get_tensor(record["tensor"])


# ---------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------


@dataclass
class TokenizeSummary:
    """What a run did (on the calling rank; only global rank 0 writes the manifest)."""

    found: int  # readable audio files under IN_DIR
    already_done: int  # skipped because a shard holds them
    tokenized: int  # utterances encoded by this rank in this run
    skipped: int  # files that are not readable audio
    shards: list[Path] = field(default_factory=list)  # shards this rank wrote
    global_zero: bool = True
    manifest: Path | None = None  # the rest is filled in on global rank 0 only, after the merge
    in_manifest: int = 0  # utterances in the merged manifest
    failed: int = 0  # files that failed while decoding (any rank) and are still not tokenized


def _load_audio_codec(model: Any):
    from neuralcodec.bitstream import Modality
    from neuralcodec.codecs.registry import load_codec

    codec = load_codec(model) if isinstance(model, (str, os.PathLike)) else model
    if getattr(codec, "modality", None) != Modality.AUDIO:
        raise ModelError(f"model {getattr(codec, 'model_id', model)!r} is not an audio codec")
    return codec.eval()


def _check_codebooks(codec: Any, num_codebooks: int | None) -> int:
    q = codec.num_codebooks if num_codebooks is None else int(num_codebooks)
    if not 1 <= q <= codec.num_codebooks:
        raise UsageError(f"--num-codebooks must be in 1..{codec.num_codebooks}, got {q}")
    try:  # surfaces quantizer-specific limits (e.g. GRVQ needs a multiple of its groups) before any work
        codec.encode(torch.zeros(1, 1, codec.hop_length), num_codebooks=q)
    except (ValueError, ModelError) as exc:  # quantizers raise ModelError for such limits
        raise UsageError(f"--num-codebooks {q}: {exc}") from None
    return q


def _tokenizer_info(codec: Any, q: int) -> dict[str, Any]:
    return {"format": TOKENS_FORMAT, "model": codec.model_id, "fingerprint": codec.fingerprint().hex(),
            "sample_rate": codec.sample_rate, "frame_rate": codec.frame_rate, "hop_length": codec.hop_length,
            "num_codebooks": q, "codebook_sizes": list(codec.codebook_sizes[:q]),
            "dtype": str(codes_dtype(codec.codebook_sizes)).replace("torch.", ""), "channels": "mono (mean)"}


def _check_previous_info(out: Path, info: dict[str, Any]) -> None:
    path = out / TOKENIZER_INFO
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is unreadable ({exc}); use a new output folder") from exc
    for key in ("fingerprint", "num_codebooks"):
        if old.get(key) != info[key]:
            raise UsageError(f"{out} holds tokens of another setting ({key} {old.get(key)!r}, this run "
                             f"{info[key]!r}); use a new output folder")


def _warn(message: str) -> None:
    warnings.warn(message, TokenizeWarning, stacklevel=3)


def tokenize_folder(in_dir: str | os.PathLike, out_dir: str | os.PathLike, model: Any = "speech", *,
                    num_codebooks: int | None = None, shard_size: int = 1000, batch_size: int = 8,
                    num_workers: int = 0, accelerator: str = "auto", devices: int | str | list[int] = "auto",
                    num_nodes: int = 1, strategy: str = "auto", padded: bool = False, progress: bool = True,
                    warn: Callable[[str], None] | None = None) -> TokenizeSummary:
    """Tokenize every audio file under ``in_dir`` into shards + manifest in ``out_dir`` (see module doc).

    ``model`` is a shipped name, an exported ``.safetensors`` path or an audio codec instance.
    ``accelerator``/``devices``/``num_nodes``/``strategy`` go to ``lightning.Trainer`` unchanged;
    ``padded`` selects the encoding mode of :class:`TokenizerModule`.
    Skipped files are reported through ``warn`` (default: :class:`TokenizeWarning`).
    """
    warn = warn or _warn
    if shard_size < 1 or batch_size < 1 or num_workers < 0:
        raise UsageError("--shard-size and --batch-size must be >= 1 and --num-workers >= 0")
    src, out = Path(in_dir), Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"output path exists and is not a folder: {out}")
    if src.resolve() == out.resolve():
        raise UsageError("the output folder must differ from the input folder")
    codec = _load_audio_codec(model)
    q = _check_codebooks(codec, num_codebooks)
    info = _tokenizer_info(codec, q)

    items, skipped = discover_audio(src, exclude=[out])
    if not items:
        detail = f" ({len(skipped)} file(s) are not readable audio, e.g. {skipped[0]['path']})" if skipped else ""
        raise MediaError(f"no audio files found in {src}{detail}")

    out.mkdir(parents=True, exist_ok=True)
    _check_previous_info(out, info)
    done = completed_keys(out, info["fingerprint"], q)
    todo = [item for item in items if item.key not in done]
    todo.sort(key=lambda item: (-item.duration, item.key))  # similar lengths per batch: little padding

    writer = ShardWriter(out, [], info["fingerprint"], q, shard_size)
    trainer = lightning.Trainer(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
                                precision="32-true", logger=False, enable_checkpointing=False,
                                enable_model_summary=False, enable_progress_bar=progress, callbacks=[writer],
                                default_root_dir=str(out))
    if skipped and trainer.is_global_zero:
        names = ", ".join(Path(s["path"]).name for s in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        warn(f"skipped {len(skipped)} file(s) that are not readable audio ({names}); see {out / SKIPPED}")
    if todo and len(todo) < trainer.world_size:
        # every rank must get at least one item; repeats are dropped again when the manifest is merged
        todo = (todo * trainer.world_size)[: trainer.world_size]
    writer.items = todo
    if todo:
        loader = torch.utils.data.DataLoader(AudioItemDataset(todo, codec.sample_rate), batch_size=batch_size,
                                             shuffle=False, num_workers=num_workers, collate_fn=collate_audio)
        module = TokenizerModule(codec, q if q != codec.num_codebooks else None, padded=padded)
        trainer.predict(module, dataloaders=loader, return_predictions=False)
        trainer.strategy.barrier("tokenize-merge")  # every rank has flushed its shards
    summary = TokenizeSummary(found=len(items), already_done=len(done), skipped=len(skipped),
                              tokenized=sum(len(read_shard_metadata(p)["records"]) for p in writer.written),
                              shards=list(writer.written), global_zero=trainer.is_global_zero)
    if trainer.is_global_zero:
        from neuralcodec.fileio import atomic_output

        summary.manifest = merge_manifest(out, skipped)
        summary.in_manifest = len(read_manifest(out))
        with open(out / SKIPPED) as handle:
            summary.failed = sum(1 for line in handle if line.strip()) - len(skipped)
        with atomic_output(out / TOKENIZER_INFO, "w") as handle:
            json.dump(info, handle, indent=2, sort_keys=True)
            handle.write("\n")
        if summary.failed:
            warn(f"{summary.failed} file(s) could not be decoded and were skipped; see {out / SKIPPED}")
    return summary


__all__ = ["AudioItem", "AudioItemDataset", "ShardWriter", "TokenizeSummary", "TokenizeWarning", "TokenizerModule",
           "collate_audio", "completed_keys", "discover_audio", "iter_tokens", "merge_manifest", "read_manifest",
           "read_shard_metadata", "tokenize_folder"]
