"""The token-fitting subset: whole folders plus a seeded sample, the same files on every run."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from neuralcodec.errors import NeuralCodecError
from neuralcodec.train.data.subset import main, make_subset


@pytest.fixture()
def corpus(tmp_path):
    root = tmp_path / "speech"
    for folder, count in (("voice_a", 3), ("voice_b", 12)):
        for i in range(count):
            path = root / folder / "sub" / f"f{i:02d}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), np.zeros(800), 16000)
    return root


def test_whole_folders_and_a_seeded_sample(corpus, tmp_path):
    links = make_subset(corpus, tmp_path / "a", take_all=["voice_a"], sample=["voice_b"], per_folder=5, seed=0)
    names = sorted(p.name for p in links)
    assert len(names) == 8 and sum(n.startswith("voice_a__sub__") for n in names) == 3
    assert all(p.is_symlink() and p.resolve().is_file() for p in links)
    again = make_subset(corpus, tmp_path / "b", take_all=["voice_a"], sample=["voice_b"], per_folder=5, seed=0)
    assert sorted(p.name for p in again) == names
    other = make_subset(corpus, tmp_path / "c", sample=["voice_b"], per_folder=5, seed=1)
    assert sorted(p.name for p in other) != [n for n in names if n.startswith("voice_b")]
    # re-running into the same folder keeps the links (resumable), and the CLI does the same
    assert main([str(corpus), str(tmp_path / "a"), "--all", "voice_a", "--sample", "voice_b", "--per-folder", "5"]) == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == names


def test_bad_requests_are_named(corpus, tmp_path):
    with pytest.raises(NeuralCodecError, match="at least one folder"):
        make_subset(corpus, tmp_path / "x")
    with pytest.raises(NeuralCodecError, match="not found"):
        make_subset(corpus, tmp_path / "x", take_all=["nobody"])
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "voice_a__sub__f00.flac").write_text("not a link")
    with pytest.raises(NeuralCodecError, match="not a link"):
        make_subset(corpus, tmp_path / "y", take_all=["voice_a"])
