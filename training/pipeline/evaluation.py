"""Test-split metrics for an age network: MAE, CS@5, MAE per decade and per gender.

Ages in years throughout. No Django: the caller stores the returned dict.
"""

from __future__ import annotations

import numpy as np

from predictor.vision.age_network import AgeNetwork

GENDER_NAMES = {0: "female", 1: "male", -1: "unknown"}


def age_metrics(
    predicted: np.ndarray, true: np.ndarray, genders: np.ndarray | None = None, scatter: int = 1500
) -> dict:
    """Metrics of predicted vs true ages ((N,) arrays, years); ``genders`` coded 0/1/-1."""
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
    if genders is not None:
        for code, name in GENDER_NAMES.items():
            mask = np.asarray(genders) == code
            if mask.any():
                metrics["mae_by_gender"][name] = {
                    "mae": float(errors[mask].mean()),
                    "count": int(mask.sum()),
                }
    # A deterministic subsample for the predicted-versus-true plot.
    step = max(1, len(true) // scatter)
    metrics["scatter"] = [
        [round(float(t), 1), round(float(p), 2)]
        for t, p in zip(true[::step], predicted[::step], strict=True)
    ]
    return metrics


def evaluate_network(network: AgeNetwork, split: dict[str, np.ndarray], batch: int = 256) -> dict:
    """Run ``network`` over a split (``chips`` (N, 64, 64, 3) uint8, ``ages``, ``genders``)."""
    chips = split["chips"]
    predicted = np.concatenate(
        [network.predict(chips[i : i + batch]).ages for i in range(0, len(chips), batch)]
        or [np.zeros(0)]
    )
    return age_metrics(predicted, split["ages"], split.get("genders"))
