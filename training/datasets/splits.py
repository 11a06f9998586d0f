"""Deterministic train/val/test splits that never put one group on two sides.

Each group's side comes from a SHA-1 hash of the seed and the group, not from Python's
``hash`` (randomised per process) nor from a shuffle of the whole list: so a group keeps its
side across processes and machines, and adding or removing other records never moves it.
The fractions are therefore met per group, and only roughly per record.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping

from training.datasets.records import FaceRecord

SPLITS = ("train", "val", "test")
_HASH_SPACE = float(16**15)


def assign_splits(
    records: Iterable[FaceRecord],
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> dict[str, str]:
    """Map each record's path to ``"train"``, ``"val"`` or ``"test"``.

    ``fractions`` are the shares of groups for train, val and test (non-negative, summing to
    1). All records of a group get the same split; the result depends only on each record's
    group, the fractions and ``seed``. Raises ``ValueError`` for bad fractions.
    """
    if len(fractions) != len(SPLITS) or any(not f >= 0 for f in fractions):
        raise ValueError(f"fractions must be three non-negative numbers, got {fractions!r}")
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must sum to 1, got {fractions!r} (sum {sum(fractions)})")
    train_end = fractions[0]
    val_end = fractions[0] + fractions[1]
    by_group: dict[str, str] = {}
    assignments: dict[str, str] = {}
    for record in records:
        split = by_group.get(record.group)
        if split is None:
            position = group_position(record.group, seed)
            split = "train" if position < train_end else "val" if position < val_end else "test"
            by_group[record.group] = split
        assignments[record.path] = split
    return assignments


def group_position(group: str, seed: int = 0) -> float:
    """A stable pseudo-random number in [0, 1) for ``group`` under ``seed``."""
    digest = hashlib.sha1(f"{seed}\x00{group}".encode()).hexdigest()
    return int(digest[:15], 16) / _HASH_SPACE


def split_counts(assignments: Mapping[str, str]) -> dict[str, int]:
    """How many paths each split holds: ``{"train": n, "val": n, "test": n}``."""
    counts = dict.fromkeys(SPLITS, 0)
    for split in assignments.values():
        counts[split] = counts.get(split, 0) + 1
    return counts
