"""The promotion gate: a candidate model is judged on every benchmark, not on one split.

Staff mark datasets as benchmarks (``Dataset.is_benchmark``): aligned crops, in-the-wild
portraits, children... After a training run, the candidate and the active model are both
evaluated on each benchmark's test split (:func:`benchmark_results`). Auto-promotion needs
the candidate to beat the active model on the run's own test split **and** to be no worse,
beyond a stated tolerance, on any benchmark (:func:`regressions`). A fine-tune that wins on
its own kind of photo and loses on another is not promoted; a staff member may still
promote it, with a written reason that is stored and shown
(``ModelVersion.promotion_override``).

The compared figures, with the tolerance each gets (settings, in years or shares):
``mae`` and ``mae_children_0_12`` (lower is better, ``FACEAGE_GATE_MAE_TOLERANCE``) and, on
age-group benchmarks, ``accuracy`` (higher is better, ``FACEAGE_GATE_ACCURACY_TOLERANCE``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

LOWER_IS_BETTER = ("mae", "mae_children_0_12")
HIGHER_IS_BETTER = ("accuracy",)


@dataclass(frozen=True)
class Regression:
    benchmark: str
    metric: str
    candidate: float
    active: float

    def as_dict(self) -> dict:
        return {
            "benchmark": self.benchmark,
            "metric": self.metric,
            "candidate": round(self.candidate, 4),
            "active": round(self.active, 4),
        }

    def __str__(self) -> str:
        return f"{self.benchmark}: {self.metric} {self.active:.3f} -> {self.candidate:.3f}"


def regressions(benchmark: str, candidate: dict, active: dict) -> list[Regression]:
    """Where ``candidate``'s metrics on one benchmark are worse than ``active``'s by more
    than the tolerance (both dicts as :func:`training.pipeline.evaluation.evaluate_network`
    returns them)."""
    found = []
    mae_tolerance = settings.FACEAGE_GATE_MAE_TOLERANCE
    accuracy_tolerance = settings.FACEAGE_GATE_ACCURACY_TOLERANCE
    for metric in (*LOWER_IS_BETTER, *HIGHER_IS_BETTER):
        ours, theirs = candidate.get(metric), active.get(metric)
        if ours is None or theirs is None:
            continue
        worse = (
            ours > theirs + mae_tolerance
            if metric in LOWER_IS_BETTER
            else ours < theirs - accuracy_tolerance
        )
        if worse:
            found.append(Regression(benchmark, metric, float(ours), float(theirs)))
    return found


def benchmark_results(
    benchmarks: list[tuple[str, Any]],
    evaluate_candidate: Callable[[Any], dict],
    evaluate_active: Callable[[Any], dict],
) -> tuple[dict, list[Regression]]:
    """Evaluate both models on each ``(name, test split)`` of ``benchmarks``.

    Returns the results by benchmark name (``{"candidate": ..., "active": ...,
    "regressions": [...]}``, the big scatter left out) and every regression found."""
    results: dict = {}
    found: list[Regression] = []
    for name, split in benchmarks:
        candidate = _compact(evaluate_candidate(split))
        active = _compact(evaluate_active(split))
        worse = regressions(name, candidate, active)
        found += worse
        results[name] = {
            "candidate": candidate,
            "active": active,
            "regressions": [regression.as_dict() for regression in worse],
        }
    return results, found


def _compact(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if key != "scatter"}
