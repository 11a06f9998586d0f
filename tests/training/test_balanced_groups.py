"""`build_bundled_model`: rare age groups repeated, capped, rows traceable; its options."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from training.management.commands.build_bundled_model import balanced


def split(groups: dict[tuple[int, int], int]) -> dict[str, np.ndarray]:
    low = np.concatenate([np.full(n, g[0]) for g, n in groups.items()])
    high = np.concatenate([np.full(n, g[1]) for g, n in groups.items()])
    return {"chips": np.arange(len(low)), "ages": low, "age_low": low, "age_high": high}


def count(data: dict[str, np.ndarray], low: int) -> int:
    return int((data["age_low"] == low).sum())


def test_rare_groups_are_repeated_by_the_square_root_and_capped():
    data = split({(20, 29): 400, (0, 2): 100, (70, 100): 4})
    out = balanced(data, cap=4.0, seed=0)
    assert count(out, 20) == 400  # the largest group is left as it is
    assert count(out, 0) == 200  # sqrt(400 / 100) = 2 times
    assert count(out, 70) == 16  # sqrt(100) = 10, capped at 4
    # Every row is a copy of an original row, and every original row is kept.
    np.testing.assert_array_equal(out["chips"], data["chips"][out["index"]])
    assert set(out["index"].tolist()) == set(range(len(data["chips"])))


def test_a_cap_of_one_changes_nothing_but_the_index():
    data = split({(20, 29): 50, (70, 100): 5})
    out = balanced(data, cap=1.0, seed=0)
    np.testing.assert_array_equal(out["index"], np.arange(55))
    np.testing.assert_array_equal(out["age_high"], data["age_high"])


def test_the_registry_compares_a_build_with_the_network_it_replaces():
    """A shipped build's registry row (the model page, /api/v1/models/) sets its benchmarks
    beside the shipped network it would replace when the build measured it, else beside the
    dlib network."""
    from training.management.commands.build_bundled_model import registry_metrics

    def figures(accuracy: float, mae: float) -> dict:
        return {
            "fairface_test": {"count": 100, "accuracy": accuracy, "balanced_accuracy": accuracy},
            "utkface_test": {"count": 100, "mae": mae, "cs5": 0.6, "mae_children_0_12": 2.0},
        }

    ours = figures(0.50, 5.6)
    dlib = figures(0.43, 6.3)
    shipped = figures(0.49, 5.5)
    alone = registry_metrics({**ours, "bundled_dlib_network": dlib}, "faceage-v2")
    assert alone["gate"]["active_model"] == "dlib-age-v1"
    assert alone["benchmarks"]["utkface-test"]["active"]["mae"] == 6.3
    beside = registry_metrics(
        {**ours, "bundled_dlib_network": dlib, "shipped:faceage-v2": shipped}, "faceage-v2"
    )
    assert beside["gate"]["active_model"] == "faceage-v2"
    assert beside["benchmarks"]["utkface-test"]["active"]["mae"] == 5.5
    assert beside["benchmarks"]["fairface-val"]["active"]["accuracy"] == 0.49


def test_a_soup_needs_at_least_one_network():
    """``--soup 0`` is refused before anything is read or trained."""
    with pytest.raises(CommandError, match="--soup"):
        call_command("build_bundled_model", "--soup", "0")


def test_a_network_joins_a_soup_only_if_it_is_shipped_and_reads_the_builds_chips():
    """``--soup-with`` is checked before anything is read or trained."""
    with pytest.raises(CommandError, match="no shipped network 'nowhere'"):
        call_command("build_bundled_model", "--soup-with", "nowhere")
    with pytest.raises(CommandError, match="reads 64 px chips, this build 96 px"):
        call_command("build_bundled_model", "--chip-size", "96", "--soup-with", "faceage-v2")


def test_shares_of_augmented_chips_are_checked_before_anything_is_read():
    """``--scan-look`` and ``--low-resolution`` are shares from 0 to 1."""
    with pytest.raises(CommandError, match="--scan-look is a share from 0 to 1"):
        call_command("build_bundled_model", "--scan-look", "1.5")
    with pytest.raises(CommandError, match="--low-resolution is a share from 0 to 1"):
        call_command("build_bundled_model", "--low-resolution", "-0.1")


def test_a_build_starts_from_a_shipped_network_of_its_chip_size_only():
    """``--start`` is checked before anything is read or trained."""
    with pytest.raises(CommandError, match=r"^--start: no shipped network 'nowhere'"):
        call_command("build_bundled_model", "--start", "nowhere")
    with pytest.raises(CommandError, match=r"^--start: faceage-v3 reads 64 px chips, this build"):
        call_command("build_bundled_model", "--chip-size", "96", "--start", "faceage-v3")


def test_a_build_does_not_overwrite_the_network_a_shipped_version_serves():
    """faceage-v6, faceage-v7 and faceage-v8 serve faceage-v5's weights with a second opinion
    fitted to them: a build into the repository under that name is refused before anything is
    read or trained."""
    with pytest.raises(
        CommandError, match="faceage-v6, faceage-v7, faceage-v8 serve the weights of faceage-v5"
    ):
        call_command("build_bundled_model", "--name", "faceage-v5")
