"""Test-split metrics for an age network: MAE, CS@5, MAE per decade, per gender and per race
where the dataset labels race (FairFace's fairness report); age-group accuracy the same ways.

Ages in years throughout. No Django: the caller stores the returned dict.
"""

from __future__ import annotations

import numpy as np

from predictor.vision.age_network import AgeNetwork

GENDER_NAMES = {0: "female", 1: "male", -1: "unknown"}


def _by_label(labels, names: dict | None = None) -> dict[str, np.ndarray]:
    """A mask per label value (``names`` renames values; an empty label is left out)."""
    labels = np.asarray(labels)
    masks = {}
    for value in sorted(set(labels.tolist()), key=str):
        name = names.get(value, str(value)) if names else str(value)
        if name != "":
            masks[name] = labels == value
    return masks


def _breakdowns(genders, races) -> dict[str, dict[str, np.ndarray]]:
    """The per-group masks a report has: by gender, and by race where labels exist."""
    found = {}
    if genders is not None:
        found["gender"] = _by_label(genders, GENDER_NAMES)
    if races is not None and any(str(race) for race in np.asarray(races).tolist()):
        found["race"] = _by_label(races)
    return found


def age_metrics(
    predicted: np.ndarray,
    true: np.ndarray,
    genders: np.ndarray | None = None,
    scatter: int = 1500,
    races: np.ndarray | None = None,
) -> dict:
    """Metrics of predicted vs true ages ((N,) arrays, years); ``genders`` coded 0/1/-1,
    ``races`` the dataset's labels (strings, empty where unknown)."""
    predicted = np.asarray(predicted, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    errors = np.abs(predicted - true)
    metrics: dict = {
        "count": len(true),
        "mae": float(errors.mean()) if len(true) else None,
        "cs5": float((errors <= 5).mean()) if len(true) else None,
        "mae_by_decade": {},
        "mae_by_gender": {},
    }
    for decade in range(0, 110, 10):
        mask = (true >= decade) & (true < decade + 10)
        if mask.any():
            metrics["mae_by_decade"][f"{decade}-{decade + 9}"] = {
                "mae": float(errors[mask].mean()),
                "count": int(mask.sum()),
            }
    children = true <= 12
    if children.any():
        metrics["mae_children_0_12"] = float(errors[children].mean())
    for kind, masks in _breakdowns(genders, races).items():
        metrics[f"mae_by_{kind}"] = {
            name: {
                "mae": float(errors[mask].mean()),
                "cs5": float((errors[mask] <= 5).mean()),
                "count": int(mask.sum()),
            }
            for name, mask in masks.items()
        }
    # A deterministic subsample for the predicted-versus-true plot.
    step = max(1, len(true) // scatter)
    metrics["scatter"] = [
        [round(float(t), 1), round(float(p), 2)]
        for t, p in zip(true[::step], predicted[::step], strict=True)
    ]
    return metrics


def group_metrics(
    predicted: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    genders: np.ndarray | None = None,
    races: np.ndarray | None = None,
) -> dict:
    """Metrics against age-group labels (FairFace's ``20-29``): ``accuracy``, the share of
    served (rounded) ages inside the group; ``balanced_accuracy``, the mean over groups (as
    on a set with equal groups); ``mae``, the mean distance in years from the group (0
    inside it); per group, accuracy and count; and the same accuracy and distance per gender
    and per race where the labels exist (``accuracy_by_gender``, ``accuracy_by_race``)."""
    served = np.round(np.asarray(predicted, dtype=np.float64))
    low, high = np.asarray(low), np.asarray(high)
    inside = (served >= low) & (served <= high)
    by_group = {}
    for first, last in sorted(set(zip(low.tolist(), high.tolist(), strict=True))):
        mask = (low == first) & (high == last)
        by_group[f"{first}-{last}"] = {
            "accuracy": float(inside[mask].mean()),
            "count": int(mask.sum()),
        }
    distance = np.maximum(low - served, 0) + np.maximum(served - high, 0)
    reports = {
        f"accuracy_by_{kind}": {
            name: {
                "accuracy": float(inside[mask].mean()),
                "mae": float(distance[mask].mean()),
                "count": int(mask.sum()),
            }
            for name, mask in masks.items()
        }
        for kind, masks in _breakdowns(genders, races).items()
    }
    return {
        **reports,
        "count": len(served),
        "accuracy": float(inside.mean()) if len(served) else None,
        "balanced_accuracy": float(np.mean([g["accuracy"] for g in by_group.values()]))
        if by_group
        else None,
        "mae": float(distance.mean()) if len(served) else None,
        "accuracy_by_group": by_group,
    }


def has_age_groups(split: dict[str, np.ndarray]) -> bool:
    return "age_high" in split and bool(np.any(split["age_high"] != split["ages"]))


def evaluate_network(network: AgeNetwork, split: dict[str, np.ndarray], batch: int = 256) -> dict:
    """Run ``network`` over a split (``chips`` (N, 64, 64, 3) uint8, ``ages``, ``genders``,
    and for age groups ``age_high``): :func:`age_metrics`, or :func:`group_metrics` with
    ``"labels": "age_groups"`` where the labels are groups."""
    chips = split["chips"]
    predicted = np.concatenate(
        [network.predict(chips[i : i + batch]).ages for i in range(0, len(chips), batch)]
        or [np.zeros(0)]
    )
    if has_age_groups(split):
        return {
            "labels": "age_groups",
            **group_metrics(
                predicted,
                split["ages"],
                split["age_high"],
                split.get("genders"),
                split.get("races"),
            ),
        }
    return age_metrics(predicted, split["ages"], split.get("genders"), races=split.get("races"))
