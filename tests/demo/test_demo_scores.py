"""MUSHRA result aggregation: means, 95 % t intervals (checked by hand), post-screening, bad files."""

from __future__ import annotations

import json
import math

import pytest

from neuralcodec.cli import main
from neuralcodec.demo.scores import aggregate, condition_scores, fails_screening
from neuralcodec.errors import UsageError


def _listener(name: str, trials: list[dict[str, float]]) -> dict:
    return {"format": "neuralcodec-mushra", "version": 1, "listener": name,
            "trials": [{"id": f"t{i}", "ratings": r} for i, r in enumerate(trials)]}


def _write(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def test_mean_and_ci_match_a_hand_computation():
    # ratings of "codec": 40, 50, 60, 70 -> mean 55, s = sqrt(((15^2 + 5^2) * 2) / 3) = 12.9099,
    # t(0.975, 3) = 3.182446, half-width = 3.182446 * 12.9099 / 2 = 20.5426
    a = _listener("a", [{"reference": 100, "codec": 40}, {"reference": 95, "codec": 50}])
    b = _listener("b", [{"reference": 100, "codec": 60}, {"reference": 100, "codec": 70}])
    scores = {s.condition: s for s in condition_scores([a, b])}
    assert scores["codec"].n == 4 and scores["codec"].mean == pytest.approx(55.0)
    assert scores["codec"].ci95 == pytest.approx(20.5426, abs=1e-3)
    assert scores["reference"].mean == pytest.approx(98.75)
    single = condition_scores([_listener("c", [{"x": 10}])])[0]
    assert single.n == 1 and math.isnan(single.ci95)


def test_post_screening_drops_listeners_who_miss_the_reference(tmp_path):
    good = _listener("good", [{"reference": 100, "c": 30}] * 7)
    bad = _listener("bad", [{"reference": 100, "c": 30}] * 5 + [{"reference": 50, "c": 90}] * 2)  # 2/7 > 15 %
    assert not fails_screening(good) and fails_screening(bad)
    paths = [_write(tmp_path / "good.json", good), _write(tmp_path / "bad.json", bad)]
    scores, kept, excluded = aggregate([tmp_path / "good.json", tmp_path / "bad.json"])
    assert len(kept) == 1 and excluded == ["bad (bad.json)"]
    assert {s.condition: s.mean for s in scores} == {"reference": 100.0, "c": 30.0}
    out = tmp_path / "summary.csv"
    assert main(["demo", "--score", *paths, "--out", str(out)]) == 0
    assert out.read_text().splitlines()[0] == "condition,n,mean,ci95,low,high"
    assert main(["demo", "--score", *paths, "--no-screen", "--out", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["excluded"] == []


@pytest.mark.parametrize("content, message", [
    ("not json", "not a JSON file"),
    (json.dumps({"trials": []}), "not a MUSHRA results file"),
    (json.dumps({"format": "neuralcodec-mushra", "trials": []}), "has no trials"),
    (json.dumps(_listener("x", [{"reference": 150}])), "not a number in 0..100"),
])
def test_bad_results_files(tmp_path, content, message, capsys):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        aggregate([path])
    assert main(["demo", "--score", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("codec: error: results.json") or "results.json" in err
    assert main(["demo", "--score", str(tmp_path / "missing.json")]) == 1
    assert "not found" in capsys.readouterr().err
