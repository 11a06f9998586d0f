"""Temperature scaling for a trained age network, and how well its 80% intervals cover.

Two temperatures are fitted on the validation split: the one with the lowest NLL (for age
groups, the highest likelihood of the groups), and the smallest one whose 80% intervals hold
80% of the true ages (for age groups, in expectation with the age uniform in its group). The
second is the one served: on UTKFace the NLL fit over-widens the intervals (a few gross
errors dominate the NLL, see docs/benchmarks.md), on FairFace the group likelihood leaves
them too narrow, and an "80% interval" should hold about 80% of the ages. Coverage is
measured on the test split, before (T = 1) and after each. Definitions:
:mod:`predictor.vision.uncertainty`. No Django: the caller stores the temperature and the
returned report.
"""

from __future__ import annotations

import numpy as np

from predictor.vision.age_network import AgeNetwork
from predictor.vision.uncertainty import (
    class_targets,
    coverage,
    describe,
    fit_coverage_temperature,
    fit_temperature,
    mean_nll,
)


def split_probabilities(network: AgeNetwork, chips: np.ndarray, batch: int = 256) -> np.ndarray:
    """Raw (T = 1) class probabilities ``(N, K)`` for ``(N, 64, 64, 3)`` uint8 chips."""
    if len(chips) == 0:
        return np.zeros((0, network.num_classes), dtype=np.float32)
    return np.concatenate(
        [network.predict(chips[i : i + batch]).probabilities for i in range(0, len(chips), batch)]
    )


def interval_report(
    probabilities: np.ndarray,
    true_ages: np.ndarray,
    class_ages: np.ndarray,
    temperature: float,
    true_high: np.ndarray | None = None,
) -> dict:
    """Coverage of the 80% interval, its mean width and the NLL, overall and for ages 0-12.

    With ``true_high`` the labels are age groups ``[true_ages, true_high]``: the coverage is
    the expected one (:func:`~predictor.vision.uncertainty.coverage`), the NLL is that of the
    group (``-log P(low <= age <= high)``), and the children are the faces whose whole group
    lies in 0-12."""
    true = np.asarray(true_ages, dtype=np.float64)
    top = true if true_high is None else np.asarray(true_high, dtype=np.float64)
    result = describe(probabilities, class_ages, temperature)
    widths = (result.high - result.low).astype(np.float64)
    if true_high is None:
        nll = mean_nll(probabilities, class_targets(true, class_ages), temperature)
    else:
        nll = group_nll(probabilities, true, top, class_ages, temperature)
    report: dict = {
        "coverage_80": coverage(result.low, result.high, true, true_high),
        "mean_width": float(widths.mean()),
        "nll": nll,
    }
    children = top <= 12
    if children.any():
        report["coverage_80_children_0_12"] = coverage(
            result.low[children],
            result.high[children],
            true[children],
            None if true_high is None else top[children],
        )
    return report


# The fewest validation faces a dataset needs for a temperature of its own: a few dozen
# answers (a small set of users' labels) would give a temperature that is mostly noise.
MIN_FACES = 200


def calibrate(
    network: AgeNetwork, val: dict, test: dict, parts: np.ndarray | None = None
) -> tuple[float, dict]:
    """Fit the temperatures on ``val`` and report the test split before and after.

    ``val`` and ``test`` hold ``chips`` (N, 64, 64, 3) uint8 and ``ages`` (years), and
    ``age_high`` where the labels are age groups (FairFace; an exact age is a one-year
    group). The temperature served is the smallest whose 80% intervals hold 80% of the
    validation ages, in expectation for groups (:func:`~predictor.vision.uncertainty.coverage`).

    ``parts`` names the dataset of each validation face, for a run that learned from several:
    the temperature is then the smallest that holds 80% of **each** dataset's validation ages
    (the largest of their own temperatures and the pooled faces' one; a dataset with fewer
    than :data:`MIN_FACES` validation faces has none of its own, and counts in the pooled
    one). This applies when two datasets or more have :data:`MIN_FACES` validation faces;
    otherwise the pooled fit is served, as for one dataset. A single temperature fitted on
    the pooled faces is a compromise that can leave one kind of photo short: the default
    fine-tune on UTKFace and FairFace from faceage-v7 fitted 0.785 on the pooled faces, whose
    intervals held 75.0% of UTKFace's test ages. The report then gives each dataset's
    temperature and validation figures at the served temperature (``temperature_by_dataset``,
    ``validation_by_dataset``) and the pooled fit (``temperature_pooled``).

    The report gives the validation split at that temperature (``validation``) and the test
    split before and after. Returns ``(temperature, report)``; the report is JSON-ready for
    ``ModelVersion.metrics``.
    """
    from training.pipeline.evaluation import has_age_groups

    if parts is not None and len(parts) != len(val["ages"]):
        raise ValueError(f"{len(parts)} dataset names for {len(val['ages'])} validation faces")
    class_ages = network.class_ages
    val_p = split_probabilities(network, val["chips"])
    test_p = split_probabilities(network, test["chips"])
    val_high = val["age_high"] if has_age_groups(val) else None
    test_high = test["age_high"] if has_age_groups(test) else None
    datasets = np.asarray(parts if parts is not None else []).astype(str)
    found, counts = np.unique(datasets, return_counts=True)
    names = [str(name) for name, count in zip(found, counts, strict=True) if count >= MIN_FACES]
    pooled = fit_coverage_temperature(val_p, val["ages"], class_ages, true_high=val_high)
    if len(names) > 1:
        by_dataset = {
            name: fit_coverage_temperature(
                val_p[datasets == name],
                val["ages"][datasets == name],
                class_ages,
                true_high=None if val_high is None else val_high[datasets == name],
            )
            for name in names
        }
        # The pooled fit too, so that a dataset too small for its own still counts.
        temperature = max(pooled, *by_dataset.values())
    else:
        by_dataset = {}
        temperature = pooled
    if val_high is None:
        second, second_key = fit_temperature(val_p, val["ages"], class_ages), "min_nll"
    else:
        # Groups: the likelihood of the groups, as the NLL fit's counterpart.
        second = fit_interval_temperature(val_p, val["ages"], val_high, class_ages)
        second_key = "max_group_likelihood"
    report = {
        "temperature": round(temperature, 4),
        "fitted_on": "validation split: 80% of true ages inside the 80% interval"
        + ("" if val_high is None else " (age groups: expected share, age uniform in its group)"),
        f"temperature_{second_key}": round(second, 4),
        "validation_faces": len(val_p),
        "test_faces": len(test_p),
        # Age groups: the test figures' coverage is an expected share (see coverage()).
        "test_labels": "ages" if test_high is None else "age_groups",
        # The validation split, at the temperature fitted on it.
        "validation": interval_report(val_p, val["ages"], class_ages, temperature, val_high),
        "before": interval_report(test_p, test["ages"], class_ages, 1.0, test_high),
        "after": interval_report(test_p, test["ages"], class_ages, temperature, test_high),
        f"after_{second_key}": interval_report(test_p, test["ages"], class_ages, second, test_high),
    }
    if by_dataset:
        report["fitted_on"] = (
            "validation split: 80% of true ages inside the 80% interval on each dataset's "
            "validation faces (the largest of their temperatures and the pooled one)"
            + ("" if val_high is None else "; age groups: expected share, age uniform in its group")
        )
        report["temperature_by_dataset"] = {
            name: round(value, 4) for name, value in by_dataset.items()
        }
        report["temperature_pooled"] = round(pooled, 4)
        report["validation_by_dataset"] = {
            name: interval_report(
                val_p[datasets == name],
                val["ages"][datasets == name],
                class_ages,
                temperature,
                None if val_high is None else val_high[datasets == name],
            )
            for name in by_dataset
        }
    return temperature, report


def group_nll(
    probabilities: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    class_ages: np.ndarray,
    temperature: float,
) -> float:
    """Mean ``-log P(low <= age <= high)`` under the tempered distribution over whole years
    (:func:`~predictor.vision.uncertainty.per_year`, as the interval is taken)."""
    from predictor.vision.uncertainty import YEARS, per_year, tempered

    years = np.arange(YEARS)[None, :]
    inside = (years >= np.asarray(low)[:, None]) & (years <= np.asarray(high)[:, None])
    mass = (per_year(tempered(probabilities, temperature), class_ages) * inside).sum(axis=1)
    return float(-np.log(np.maximum(mass, 1e-12)).mean())


def fit_interval_temperature(
    probabilities: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    class_ages: np.ndarray,
    bounds: tuple[float, float] = (0.3, 10.0),
) -> float:
    """The temperature that makes age-group labels most likely: the lowest mean of
    ``-log P(low <= age <= high)`` under the tempered distribution, by a golden-section
    search on ``log T`` within ``bounds``. Reported beside the coverage fit for labels that are
    groups (FairFace). Ages in years; ``probabilities`` is ``(N, K)``."""

    def loss(log_t: float) -> float:
        return group_nll(probabilities, low, high, class_ages, float(np.exp(log_t)))

    a, b = np.log(bounds[0]), np.log(bounds[1])
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if loss(c) < loss(d):
            b = d
        else:
            a = c
    return float(np.exp((a + b) / 2))
