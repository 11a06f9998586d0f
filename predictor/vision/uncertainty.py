"""How sure the age network is: calibrated age distributions and 80% intervals.

Definitions used everywhere (API, pages, benchmarks):

* **Temperature scaling.** The network gives softmax probabilities ``p_k`` over its age
  classes. With a temperature ``T`` the calibrated probabilities are
  ``softmax(log p / T)``, i.e. ``p_k ** (1 / T)`` renormalised, which is exactly
  ``softmax(logits / T)``. ``T > 1`` widens the distribution, ``T < 1`` sharpens it,
  ``T = 1`` leaves it unchanged. ``T`` is fitted by minimising the negative log-likelihood
  (NLL) of the true age's class on a validation split (:func:`fit_temperature`).
* **Distribution over whole years.** Each class's probability goes to the whole year
  nearest its class age (the bundled network's 0.25-year class counts as age 0), giving
  101 probabilities for ages 0..100 (:func:`per_year`).
* **80% interval.** ``[low, high]`` in whole years, where ``low`` is the smallest age whose
  cumulative probability reaches 0.10 and ``high`` the smallest age whose cumulative
  probability reaches 0.90 (the 10th and 90th percentiles of the whole-year
  distribution). Both ends are included; under the model the true age falls inside with
  probability at least 80%. Coverage on real data is what ``bench/calibration.py``
  measures.

No Django, no TensorFlow: NumPy (and Pillow for the crop's JPEG).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MAX_YEAR",
    "AgeIntervals",
    "chip_jpeg",
    "class_targets",
    "coverage",
    "describe",
    "fit_coverage_temperature",
    "fit_temperature",
    "interval_80",
    "mean_nll",
    "per_year",
    "tempered",
]

MAX_YEAR = 100
YEARS = MAX_YEAR + 1
LOW_QUANTILE = 0.10
HIGH_QUANTILE = 0.90
# Probabilities below this are treated as this when taking logarithms: float32 softmax
# outputs can underflow to 0, and (1e-30) ** (1 / T) is still negligible for any sane T.
_FLOOR = 1e-30


def _check_temperature(temperature: float) -> float:
    temperature = float(temperature)
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    return temperature


def tempered(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)`` row by row: ``(N, K)`` probabilities in, float64 out."""
    temperature = _check_temperature(temperature)
    logs = np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), _FLOOR))
    scaled = logs / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    weights = np.exp(scaled)
    return weights / weights.sum(axis=1, keepdims=True)


def per_year(probabilities: np.ndarray, class_ages: Sequence[float] | np.ndarray) -> np.ndarray:
    """``(N, K)`` class probabilities to ``(N, 101)`` probabilities of ages 0..100."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    years = np.clip(np.rint(np.asarray(class_ages, dtype=np.float64)), 0, MAX_YEAR).astype(int)
    if probabilities.ndim != 2 or probabilities.shape[1] != years.shape[0]:
        raise ValueError(f"{probabilities.shape} probabilities for {years.shape[0]} classes")
    out = np.zeros((probabilities.shape[0], YEARS), dtype=np.float64)
    for column, year in enumerate(years):
        out[:, year] += probabilities[:, column]
    return out


def interval_80(distribution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """10th and 90th percentiles (whole years, int) of ``(N, 101)`` year distributions."""
    distribution = np.asarray(distribution, dtype=np.float64)
    cumulative = np.cumsum(distribution, axis=1)
    cumulative /= cumulative[:, -1:]  # guard against rounding: the total is exactly 1
    # A small tolerance so that a cumulative 0.8999999 from float sums counts as 0.9.
    low = np.argmax(cumulative >= LOW_QUANTILE - 1e-9, axis=1)
    high = np.argmax(cumulative >= HIGH_QUANTILE - 1e-9, axis=1)
    return low.astype(int), high.astype(int)


@dataclass(frozen=True)
class AgeIntervals:
    """Calibrated uncertainty for N faces.

    Attributes:
        years: ``(N, 101)`` float64, probability of each whole age 0..100 (rows sum to 1).
        low: ``(N,)`` int, 10th percentile in whole years.
        high: ``(N,)`` int, 90th percentile in whole years.
        std: ``(N,)`` float64, standard deviation of ``years`` (the calibrated spread).
        temperature: the temperature that was applied.
    """

    years: np.ndarray
    low: np.ndarray
    high: np.ndarray
    std: np.ndarray
    temperature: float


def describe(
    probabilities: np.ndarray, class_ages: Sequence[float] | np.ndarray, temperature: float = 1.0
) -> AgeIntervals:
    """Apply ``temperature``, map to whole years and take the 80% interval."""
    years = per_year(tempered(probabilities, temperature), class_ages)
    low, high = interval_80(years)
    ages = np.arange(YEARS, dtype=np.float64)
    mean = years @ ages
    std = np.sqrt((years * (ages[None, :] - mean[:, None]) ** 2).sum(axis=1))
    return AgeIntervals(years=years, low=low, high=high, std=std, temperature=float(temperature))


def class_targets(true_ages: np.ndarray, class_ages: Sequence[float] | np.ndarray) -> np.ndarray:
    """Index of the class whose age is nearest each true age (ages beyond the last class go
    to the last class)."""
    ages = np.asarray(class_ages, dtype=np.float64)
    true = np.asarray(true_ages, dtype=np.float64)
    return np.abs(true[:, None] - ages[None, :]).argmin(axis=1)


def mean_nll(probabilities: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the ``targets`` classes after temperature scaling."""
    calibrated = tempered(probabilities, temperature)
    picked = calibrated[np.arange(len(targets)), np.asarray(targets, dtype=int)]
    return float(-np.log(np.maximum(picked, _FLOOR)).mean())


def fit_temperature(
    probabilities: np.ndarray,
    true_ages: np.ndarray,
    class_ages: Sequence[float] | np.ndarray,
    bounds: tuple[float, float] = (0.05, 20.0),
    tolerance: float = 1e-4,
) -> float:
    """The temperature with the lowest mean NLL of the true ages' classes.

    Golden-section search on ``log T`` within ``bounds`` (NLL is smooth and, in practice,
    unimodal in ``T``). Raises ``ValueError`` when there is nothing to fit on.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] == 0:
        raise ValueError("need at least one face to fit a temperature")
    targets = class_targets(true_ages, class_ages)
    # Work in log-probabilities once; each evaluation is then one softmax.
    logs = np.log(np.maximum(probabilities, _FLOOR))
    rows = np.arange(len(targets))

    def nll(log_t: float) -> float:
        scaled = logs / np.exp(log_t)
        scaled -= scaled.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scaled).sum(axis=1))
        return float((log_norm - scaled[rows, targets]).mean())

    a, b = np.log(bounds[0]), np.log(bounds[1])
    ratio = (np.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    while b - a > tolerance:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return float(np.exp((a + b) / 2))


def fit_coverage_temperature(
    probabilities: np.ndarray,
    true_ages: np.ndarray,
    class_ages: Sequence[float] | np.ndarray,
    target: float = HIGH_QUANTILE - LOW_QUANTILE,
    bounds: tuple[float, float] = (0.05, 20.0),
    true_high: np.ndarray | None = None,
) -> float:
    """The smallest temperature whose 80% intervals hold ``target`` of the true ages.

    The interval widens as ``T`` grows, so its coverage grows with ``T``: a bisection on
    ``log T`` (30 steps) within ``bounds`` finds the point. Unlike the NLL fit, a few gross
    errors cannot pull it far: each face counts once, inside or outside. With ``true_high``
    the labels are age groups ``[true_ages, true_high]`` (FairFace) and the coverage is the
    expected one of :func:`coverage`. Raises ``ValueError`` when there is nothing to fit on.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] == 0:
        raise ValueError("need at least one face to fit a temperature")
    true = np.asarray(true_ages, dtype=np.float64)
    low, high = np.log(bounds[0]), np.log(bounds[1])
    for _ in range(30):
        middle = (low + high) / 2
        result = describe(probabilities, class_ages, float(np.exp(middle)))
        if coverage(result.low, result.high, true, true_high) < target:
            low = middle
        else:
            high = middle
    return float(np.exp(high))


def coverage(
    low: np.ndarray,
    high: np.ndarray,
    true_ages: np.ndarray,
    true_high: np.ndarray | None = None,
) -> float:
    """Share of faces whose true age lies in ``[low, high]`` (both ends included).

    With ``true_high`` each label is an age group ``[true_ages, true_high]`` in whole years
    (FairFace's ``20-29``), whose exact age is unknown. A face then counts for the share of
    its group's whole years that the interval holds: the expected coverage if the age is
    equally likely to be any year of its group. A one-year group counts 1 or 0, as an exact
    age does. It never credits the network with knowing where in its group an age lies:
    where intervals are wider than the groups, a temperature fitted on it comes out a little
    higher than the exact ages would call for. It also gives part credit to an interval that
    misses the age but overlaps its group, so it is no bound either way.
    """
    true = np.asarray(true_ages, dtype=np.float64)
    if true.size == 0:
        raise ValueError("no faces")
    if true_high is None:
        return float(((true >= low) & (true <= high)).mean())
    top = np.asarray(true_high, dtype=np.float64)
    if top.shape != true.shape or np.any(top < true):
        raise ValueError("each age group needs its low and high end, low <= high")
    overlap = np.minimum(high, top) - np.maximum(low, true) + 1
    return float((np.clip(overlap, 0, None) / (top - true + 1)).mean())


def chip_jpeg(chip: np.ndarray, quality: int = 90) -> bytes:
    """An aligned ``(64, 64, 3)`` uint8 RGB chip as JPEG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(chip, dtype=np.uint8), "RGB").save(
        buffer, format="JPEG", quality=quality
    )
    return buffer.getvalue()
