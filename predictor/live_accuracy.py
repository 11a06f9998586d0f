"""Live accuracy: how a model version does on the photos people upload, measured against the
real ages they gave ("Is this right?", ``AgeLabel``).

Every label counts, with consent to training or without. A face's error is its estimated
age minus the real age (positive: estimated too old). Figures per ISO week of the upload and
per decade of real age: count, MAE, CS@5 (share within 5 years) and bias (mean signed error).
A version whose live MAE is above the MAE of its test split by more than
``FACEAGE_LIVE_DRIFT_MARGIN`` years, over at least ``FACEAGE_LIVE_MIN_LABELS`` labels, is
flagged as drifting.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from predictor.models import AgeLabel, ModelVersion, ShadowEstimate


def _figures(errors: list[float]) -> dict:
    count = len(errors)
    return {
        "count": count,
        "mae": round(sum(abs(e) for e in errors) / count, 2),
        "cs5": round(sum(abs(e) <= 5 for e in errors) / count, 3),
        "bias": round(sum(errors) / count, 2),
    }


def live_accuracy(version: ModelVersion) -> dict:
    """The version's live figures: ``overall``, ``by_week`` (oldest first, keyed by the
    Monday of the week), ``by_decade`` (of real age), the test split's ``test_mae`` where
    known, and ``drift`` (None, or the excess over the test MAE in years)."""
    rows = AgeLabel.objects.filter(face__prediction__model_version=version).values_list(
        "face__age", "age", "face__prediction__created_at"
    )
    errors: list[float] = []
    by_week: dict[str, list[float]] = defaultdict(list)
    by_decade: dict[int, list[float]] = defaultdict(list)
    for estimated, real, uploaded in rows:
        error = float(estimated) - real
        errors.append(error)
        day = timezone.localtime(uploaded).date()
        by_week[(day - timedelta(days=day.weekday())).isoformat()].append(error)
        by_decade[real // 10 * 10].append(error)
    test_mae = version.test_mae
    report: dict = {
        "model_version": version.name,
        "overall": _figures(errors) if errors else {"count": 0},
        "by_week": {week: _figures(found) for week, found in sorted(by_week.items())},
        "by_decade": {
            f"{decade}-{decade + 9}": _figures(found)  # as training's evaluation names them
            for decade, found in sorted(by_decade.items())
        },
        "test_mae": test_mae,
        "drift": None,
        "drift_margin": settings.FACEAGE_LIVE_DRIFT_MARGIN,
        "min_labels": settings.FACEAGE_LIVE_MIN_LABELS,
    }
    if test_mae is not None and len(errors) >= settings.FACEAGE_LIVE_MIN_LABELS:
        excess = report["overall"]["mae"] - float(test_mae)
        if excess > settings.FACEAGE_LIVE_DRIFT_MARGIN:
            report["drift"] = round(excess, 2)
    return report


def shadow_comparison(version: ModelVersion) -> dict:
    """A version run in shadow against the model that was active on the same faces:
    ``count``, ``mean_abs_difference`` (years), ``agreement`` (share of faces within 5
    years of each other), and on the faces people labelled, each one's MAE (``labelled``)."""
    rows = list(
        ShadowEstimate.objects.filter(model_version=version).values_list(
            "age", "face__age", "face__label__age"
        )
    )
    report: dict = {
        "model_version": version.name,
        "share": version.shadow_share,
        "count": len(rows),
    }
    if not rows:
        return report
    differences = [abs(shadow - active) for shadow, active, _ in rows]
    report["mean_abs_difference"] = round(sum(differences) / len(rows), 2)
    report["agreement"] = round(sum(d <= 5 for d in differences) / len(rows), 3)
    labelled = [(shadow, active, real) for shadow, active, real in rows if real is not None]
    if labelled:
        report["labelled"] = {
            "count": len(labelled),
            "shadow_mae": round(sum(abs(s - r) for s, _, r in labelled) / len(labelled), 2),
            "active_mae": round(sum(abs(a - r) for _, a, r in labelled) / len(labelled), 2),
        }
    return report
