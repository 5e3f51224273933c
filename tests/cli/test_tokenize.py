"""`codec tokenize`: folder -> shards + manifest, exact codes, resume, bad input, atomic output."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from neuralcodec.cli import main
from neuralcodec.cli.tokenize import parse_devices
from neuralcodec.codecs.registry import build_codec, load_codec, save_codec
from neuralcodec.media.audio import load_audio
from neuralcodec.tokenize import (SHARD_DIR, TokenizerModule, TokenizeWarning, iter_tokens, read_manifest,
                                  tokenize_folder)

REPO = Path(__file__).resolve().parents[2]

#: a tiny random audio codec (as in tests/codecs/audio/conftest.py): 16 kHz, 50 frames/s, 3 x 64 codes
TINY = {
    "codec": "audio", "name": "tiny-tokenize", "sample_rate": 16000, "hop_length": 320, "latent_dim": 16,
    "encoder": {"channels": [32, 48], "depths": [1, 1], "strides": [2]},
    "decoder": {"type": "vocos", "dim": 32, "depth": 1, "upsample": 2},
    "quantizer": {"name": "rvq", "num_codebooks": 3, "codebook_size": 64, "codebook_dim": 4},
    "prior": {"context": "static"},
}

#: (relative path, seconds, sample rate, channels): rates and channel counts the tokenizer must handle
FILES = [("a.wav", 1.0, 16000, 1), ("b.flac", 0.7, 22050, 1), ("sub/c.flac", 1.3, 16000, 2),
         ("sub/d.wav", 0.35, 8000, 1), ("sub/deeper/e.ogg", 0.6, 16000, 1)]


def _tiny_codec(seed: int = 0):
    torch.manual_seed(seed)
    codec = build_codec(TINY)
    codec.train()
    with torch.no_grad():
        codec(torch.randn(4, 1, 16000) * 0.1)  # k-means init of the codebooks from real latents
    return codec.eval().freeze_entropy_models()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return str(save_codec(_tiny_codec(), tmp_path_factory.mktemp("model") / "tiny.safetensors"))


def _make_folder(root: Path, files=FILES, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for rel, seconds, rate, channels in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(seconds * rate)) / rate
        tone = 0.3 * np.sin(2 * math.pi * rng.uniform(100, 800) * t)
        data = tone[:, None] + 0.05 * rng.standard_normal((t.size, channels))
        sf.write(str(path), data if channels > 1 else data[:, 0], rate)
    return root


def _alone(codec, path: str, num_codebooks=None) -> torch.Tensor:
    wav, rate = load_audio(path, channels="mono")
    return codec.encode(wav[None], sample_rate=rate, num_codebooks=num_codebooks)[0]


def _run(in_dir, out_dir, model_path, *extra) -> int:
    return main(["tokenize", str(in_dir), str(out_dir), "--model", model_path, "--quiet", *extra])


def test_tokenizes_folder_into_shards_and_manifest(model_path, tmp_path):
    src = _make_folder(tmp_path / "in")
    out = tmp_path / "out"
    assert _run(src, out, model_path, "--shard-size", "2", "--batch-size", "3", "--accelerator", "cpu",
                "--devices", "1") == 0
    codec = load_codec(model_path)
    records = read_manifest(out)
    assert [r["key"] for r in records] == sorted(rel for rel, *_ in FILES)
    assert len(list((out / SHARD_DIR).glob("*.safetensors"))) == math.ceil(len(FILES) / 2)
    for (rel, seconds, rate, channels), record in zip(sorted(FILES), records):
        info = sf.info(str(src / rel))
        assert record["path"] == str(src / rel)
        assert record["sample_rate"] == rate and record["channels"] == channels
        assert record["duration"] == pytest.approx(info.frames / rate)
        assert record["frames"] == math.ceil(math.ceil(info.frames * 16000 / rate) / 320)
        assert record["num_codebooks"] == 3 and (out / record["shard"]).is_file()
    tokens = dict((r["key"], c) for r, c in iter_tokens(out))
    for record in records:
        codes = tokens[record["key"]]
        assert codes.dtype == torch.int16 and codes.shape == (3, record["frames"])
        assert torch.equal(codes.long(), _alone(codec, record["path"])), record["key"]
    info = json.loads((out / "tokenizer.json").read_text())
    assert info["fingerprint"] == codec.fingerprint().hex() and info["frame_rate"] == 50.0
    assert info["codebook_sizes"] == [64, 64, 64]
    assert (out / "skipped.jsonl").read_text() == ""


def test_fewer_codebooks(model_path, tmp_path, capsys):
    src = _make_folder(tmp_path / "in", FILES[:2])
    assert _run(src, tmp_path / "out", model_path, "--num-codebooks", "2") == 0
    codec = load_codec(model_path)
    for record, codes in iter_tokens(tmp_path / "out"):
        assert codes.shape[0] == 2 and torch.equal(codes.long(), _alone(codec, record["path"], 2))
    assert _run(src, tmp_path / "out4", model_path, "--num-codebooks", "4") == 1
    assert "--num-codebooks must be in 1..3" in capsys.readouterr().err
    assert not (tmp_path / "out4").exists()


def test_padded_batches_agree_with_one_by_one(model_path, tmp_path):
    """Padded mode: right shapes, and codes equal to single encoding except a rare near-tie."""
    src = _make_folder(tmp_path / "in")
    assert _run(src, tmp_path / "out", model_path, "--padded", "--batch-size", "5") == 0
    codec = load_codec(model_path)
    for record, codes in iter_tokens(tmp_path / "out"):
        alone = _alone(codec, record["path"])
        assert codes.shape == alone.shape
        # Without `lengths` masking, every padded item differs in 3-4 codes of its last frames here.
        assert int((codes.long() != alone).sum()) <= 1, record["key"]


class _Boom(RuntimeError):
    pass


def _counting_predict(monkeypatch, fail_at: int | None = None) -> list[str]:
    """Wrap TokenizerModule.predict_step: record how many items it encodes; raise at batch ``fail_at``."""
    seen: list[int] = []
    original = TokenizerModule.predict_step

    def wrapped(self, batch, batch_idx=0):
        if fail_at is not None and batch_idx == fail_at:
            raise _Boom("interrupted")
        seen.extend(batch["index"])
        return original(self, batch, batch_idx)

    monkeypatch.setattr(TokenizerModule, "predict_step", wrapped)
    return seen


def _no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if ".part" in p.name]


def test_resume_skips_done_work(model_path, tmp_path, monkeypatch):
    src = _make_folder(tmp_path / "in")
    out = tmp_path / "out"
    seen = _counting_predict(monkeypatch, fail_at=3)
    with pytest.raises(_Boom):
        tokenize_folder(src, out, model_path, shard_size=2, batch_size=1, progress=False)
    assert len(seen) == 3  # two in a full shard, the third flushed when the run was interrupted
    assert len(list((out / SHARD_DIR).glob("*.safetensors"))) == 2
    assert not (out / "manifest.jsonl").exists() and _no_temp_files(out)

    monkeypatch.undo()
    seen = _counting_predict(monkeypatch)
    summary = tokenize_folder(src, out, model_path, shard_size=2, batch_size=1, progress=False)
    assert len(seen) == len(FILES) - 3 and summary.already_done == 3 and summary.tokenized == len(FILES) - 3
    assert summary.in_manifest == len(FILES)
    codec = load_codec(model_path)
    for record, codes in iter_tokens(out):
        assert torch.equal(codes.long(), _alone(codec, record["path"]))

    manifest = (out / "manifest.jsonl").read_text()
    seen.clear()
    summary = tokenize_folder(src, out, model_path, shard_size=2, batch_size=1, progress=False)
    assert seen == [] and summary.tokenized == 0 and (out / "manifest.jsonl").read_text() == manifest


def test_interrupted_run_keeps_previous_manifest(model_path, tmp_path, monkeypatch):
    src = _make_folder(tmp_path / "in", FILES[:2])
    out = tmp_path / "out"
    tokenize_folder(src, out, model_path, progress=False)
    manifest = (out / "manifest.jsonl").read_text()
    _make_folder(src, FILES[2:3], seed=1)
    _counting_predict(monkeypatch, fail_at=0)
    with pytest.raises(_Boom):
        tokenize_folder(src, out, model_path, progress=False)
    assert (out / "manifest.jsonl").read_text() == manifest and _no_temp_files(out)
    monkeypatch.undo()
    tokenize_folder(src, out, model_path, progress=False)
    assert len(read_manifest(out)) == 3


def test_output_must_be_a_folder_and_match_the_model(model_path, tmp_path, capsys):
    src = _make_folder(tmp_path / "in", FILES[:1])
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert _run(src, not_a_dir, model_path) == 1
    assert "not a folder" in capsys.readouterr().err
    assert _run(src, src, model_path) == 1
    assert "must differ" in capsys.readouterr().err
    assert _run(src, tmp_path / "out", model_path) == 0
    other = str(save_codec(_tiny_codec(seed=1), tmp_path / "other.safetensors"))
    assert _run(src, tmp_path / "out", other) == 1
    assert "another" in capsys.readouterr().err


def test_bad_inputs(model_path, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run(empty, tmp_path / "o1", model_path) == 1
    err = capsys.readouterr().err
    assert "no audio files found" in err and err.startswith("codec: error:")
    assert _run(tmp_path / "missing", tmp_path / "o2", model_path) == 1
    assert "input folder not found" in capsys.readouterr().err

    src = _make_folder(tmp_path / "mixed", FILES[:2])
    (src / "notes.txt").write_text("not audio")
    (src / "broken.wav").write_bytes(b"RIFF" + bytes(100))
    (src / ".hidden.wav").write_bytes(b"ignored")
    sf.write(str(src / "nan.wav"), np.array([0.0, np.nan, 0.1] * 1000, dtype=np.float32), 16000, subtype="FLOAT")
    out = tmp_path / "out"
    assert _run(src, out, model_path) == 0
    err = capsys.readouterr().err
    assert "skipped 2 file(s) that are not readable audio" in err and "1 file(s) could not be decoded" in err
    assert [r["key"] for r in read_manifest(out)] == ["a.wav", "b.flac"]
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert sorted(Path(s["path"]).name for s in skipped) == ["broken.wav", "nan.wav", "notes.txt"]
    assert all(s["reason"] for s in skipped)

    only_text = tmp_path / "text"
    only_text.mkdir()
    (only_text / "readme.md").write_text("hello")
    assert _run(only_text, tmp_path / "o3", model_path) == 1
    assert "readme.md" in capsys.readouterr().err


def test_merge_only_rebuilds_the_manifest(model_path, tmp_path):
    src = _make_folder(tmp_path / "in", FILES[:3])
    (src / "x.txt").write_text("x")
    out = tmp_path / "out"
    assert _run(src, out, model_path, "--shard-size", "1") == 0
    manifest, skipped = (out / "manifest.jsonl").read_text(), (out / "skipped.jsonl").read_text()
    (out / "manifest.jsonl").unlink()
    (out / SHARD_DIR / ".tokens-r0000-dead-00009.safetensors.abc.part.safetensors").write_bytes(b"partial")
    assert _run(src, out, model_path, "--merge-only") == 0
    assert (out / "manifest.jsonl").read_text() == manifest and (out / "skipped.jsonl").read_text() == skipped
    assert _no_temp_files(out)


def test_warnings_through_the_api(model_path, tmp_path):
    src = _make_folder(tmp_path / "in", FILES[:1])
    (src / "x.txt").write_text("x")
    with pytest.warns(TokenizeWarning, match="not readable audio"):
        tokenize_folder(src, tmp_path / "out", model_path, progress=False)


def test_parse_devices():
    assert parse_devices("auto") == "auto" and parse_devices("4") == 4 and parse_devices("0,1") == [0, 1]


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(model_path, tmp_path):
    """Lightning's DDP (2 CPU processes, gloo) splits the files; the merged manifest equals a 1-process run."""
    src = _make_folder(tmp_path / "in")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "neuralcodec", "tokenize", str(src), str(tmp_path / "ddp"), "--model", model_path,
           "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--batch-size", "1", "--shard-size", "1",
           "--quiet"]
    subprocess.run(cmd, check=True, env=env, cwd=tmp_path, timeout=300)
    shards = sorted(p.name for p in (tmp_path / "ddp" / SHARD_DIR).glob("*.safetensors"))
    assert {name.split("-")[1] for name in shards} == {"r0000", "r0001"}  # both ranks wrote shards
    assert len(shards) == len(FILES)  # no file was done twice
    codec = load_codec(model_path)
    for record, codes in iter_tokens(tmp_path / "ddp"):
        assert torch.equal(codes.long(), _alone(codec, record["path"]))
    assert len(read_manifest(tmp_path / "ddp")) == len(FILES)
