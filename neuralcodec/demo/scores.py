"""MUSHRA listener files -> mean score and 95 % confidence interval per condition.

A listener file is the JSON the MUSHRA page exports (``"format": "neuralcodec-mushra"``): per
trial, ``ratings`` maps each condition (``"reference"`` is the hidden reference) to a 0-100 score.
Post-screening as in ITU-R BS.1534-3 (section 4.1.2): a listener who rates the hidden reference
below 90 in more than 15 % of their trials is excluded. The interval is Student's t:
``mean +- t(0.975, n-1) * s / sqrt(n)`` over every rating of the condition (n >= 2).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from neuralcodec.errors import UsageError

FORMAT = "neuralcodec-mushra"
HIDDEN_REFERENCE = "reference"
SCREEN_SCORE, SCREEN_FRACTION = 90.0, 0.15


@dataclass
class ConditionScore:
    condition: str
    n: int
    mean: float
    ci95: float  # half-width; nan when n < 2

    def as_dict(self) -> dict[str, Any]:
        return {"condition": self.condition, "n": self.n, "mean": self.mean, "ci95": self.ci95,
                "low": self.mean - self.ci95, "high": self.mean + self.ci95}


def read_listener(path: Path) -> dict[str, Any]:
    """Read and validate one exported listener file (UsageError naming the file and the problem)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"results file not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(f"{path}: not a MUSHRA results file (expected \"format\": \"{FORMAT}\")")
    trials = data.get("trials")
    if not isinstance(trials, list) or not trials:
        raise UsageError(f"{path}: has no trials")
    for index, trial in enumerate(trials):
        ratings = trial.get("ratings") if isinstance(trial, dict) else None
        if not isinstance(ratings, dict) or not ratings:
            raise UsageError(f"{path}: trial {index + 1} has no ratings")
        for condition, value in ratings.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
                raise UsageError(f"{path}: trial {index + 1}, condition {condition!r}: score {value!r} "
                                 "is not a number in 0..100")
    return data


def fails_screening(listener: dict[str, Any]) -> bool:
    """BS.1534-3 post-screening: hidden reference rated < 90 in more than 15 % of the trials."""
    trials = [t for t in listener["trials"] if HIDDEN_REFERENCE in t["ratings"]]
    if not trials:
        return False
    low = sum(1 for t in trials if t["ratings"][HIDDEN_REFERENCE] < SCREEN_SCORE)
    return low / len(trials) > SCREEN_FRACTION


def t_quantile_975(dof: int) -> float:
    """Two-sided 95 % Student-t quantile for ``dof`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, dof))


def condition_scores(listeners: Iterable[dict[str, Any]]) -> list[ConditionScore]:
    """Mean and 95 % CI per condition over every rating of the given listeners, best mean first."""
    pooled: dict[str, list[float]] = {}
    for listener in listeners:
        for trial in listener["trials"]:
            for condition, value in trial["ratings"].items():
                pooled.setdefault(condition, []).append(float(value))
    out = []
    for condition, values in pooled.items():
        n = len(values)
        mean = sum(values) / n
        if n >= 2:
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
            ci = t_quantile_975(n - 1) * sd / math.sqrt(n)
        else:
            ci = math.nan
        out.append(ConditionScore(condition, n, mean, ci))
    return sorted(out, key=lambda c: (-c.mean, c.condition))


def aggregate(paths: list[Path], screen: bool = True) -> tuple[list[ConditionScore], list[str], list[str]]:
    """(scores, listeners kept, listeners excluded by post-screening) of the given result files."""
    if not paths:
        raise UsageError("no results files given")
    kept, names, excluded = [], [], []
    for path in paths:
        listener = read_listener(path)
        name = f"{listener.get('listener') or '?'} ({Path(path).name})"
        if screen and fails_screening(listener):
            excluded.append(name)
        else:
            kept.append(listener)
            names.append(name)
    if not kept:
        raise UsageError(f"every listener failed post-screening (hidden reference rated < {SCREEN_SCORE:g} in "
                         f"more than {SCREEN_FRACTION:.0%} of trials); pass --no-screen to keep them")
    return condition_scores(kept), names, excluded


def format_table(scores: list[ConditionScore]) -> str:
    """A plain-text table: condition, n, mean, 95 % CI."""
    width = max([len("condition")] + [len(s.condition) for s in scores])
    lines = [f"{'condition':<{width}}  {'n':>4}  {'mean':>6}  95% CI"]
    for s in scores:
        ci = "n/a" if math.isnan(s.ci95) else f"+-{s.ci95:.1f} [{s.mean - s.ci95:.1f}, {s.mean + s.ci95:.1f}]"
        lines.append(f"{s.condition:<{width}}  {s.n:>4}  {s.mean:>6.1f}  {ci}")
    return "\n".join(lines)


def to_csv(scores: list[ConditionScore]) -> str:
    """CSV with columns condition,n,mean,ci95,low,high."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["condition", "n", "mean", "ci95", "low", "high"])
    for s in scores:
        d = s.as_dict()
        writer.writerow([d["condition"], d["n"]] + [f"{d[k]:.4f}" for k in ("mean", "ci95", "low", "high")])
    return buf.getvalue()
