"""`manage.py calibrate_shipped_model`: refits a shipped network's temperature on the
FairFace validation split's age groups and rewrites its card, leaving the weights alone.
Tiny splits stand in for the real ones (bench/intervals.py and docs/benchmarks.md measure
the real ones)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from predictor.vision.bundled_models import (
    DEFAULT_SHIPPED_MODEL,
    shipped_model_card,
    shipped_model_path,
    shipped_weights_name,
)
from training.management.commands import calibrate_shipped_model as command

# The network the default serves (its own card and weights).
NAME = shipped_weights_name(DEFAULT_SHIPPED_MODEL)


def split(size: int, seed: int, groups: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    low = rng.choice([0, 3, 10, 20, 30, 40, 50, 60], size=size)
    high = low + np.where(low == 0, 2, np.where(low == 3, 6, 9)) if groups else low
    return {
        "chips": rng.integers(0, 256, size=(size, 64, 64, 3), dtype=np.uint8),
        "ages": low.astype(np.int32),
        "age_low": low.astype(np.int32),
        "age_high": high.astype(np.int32),
    }


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    for suffix in (".keras", ".json"):
        source = shipped_model_path(NAME).with_suffix(suffix)
        shutil.copy(source, tmp_path / source.name)
    card_path = tmp_path / f"{NAME}.json"
    card = json.loads(card_path.read_text())
    card["figures"]["utkface_test"]["count"] = 30
    card["temperature"] = 0.9  # as a build left it: an old fit, to see it replaced
    card.pop("calibration", None)
    card_path.write_text(json.dumps(card))
    monkeypatch.setattr(command, "MODELS_DIR", tmp_path)
    cut = []

    def held_out_splits(chip_size, workers, utkface_test):
        cut.append((chip_size, utkface_test))
        return split(40, 1, True), split(50, 2, True), split(utkface_test, 3, False)

    monkeypatch.setattr(command, "held_out_splits", held_out_splits)
    return tmp_path, cut


def test_it_refits_the_temperature_and_rewrites_the_card_but_not_the_weights(models_dir):
    folder, cut = models_dir
    weights = folder / f"{NAME}.keras"
    before = hashlib.sha256(weights.read_bytes()).hexdigest()
    call_command("calibrate_shipped_model", NAME, stdout=io.StringIO())
    card = json.loads((folder / f"{NAME}.json").read_text())
    assert cut == [(64, 30)]
    assert card["calibration"]["build_temperature"] == 0.9
    assert card["calibration"]["command"] == f"manage.py calibrate_shipped_model {NAME}"
    calibration = card["figures"]["registry"]["calibration"]
    assert card["temperature"] == calibration["temperature"] != 0.9
    assert "FairFace validation" in calibration["fitted_on"]
    assert calibration["validation_faces"] == 40 and calibration["test_faces"] == 30
    assert {"coverage_80", "mean_width", "nll"} <= set(calibration["after"])
    # Fitted to hold 80% of the validation groups' years in expectation.
    assert card["figures"]["fairface_validation_intervals"]["coverage_80"] == pytest.approx(
        0.8, abs=0.03
    )
    assert card["figures"]["fairface_test_intervals"]["mean_width"] > 0
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == before
    # Run again: the same fit, and the build's temperature is still the one on record.
    call_command("calibrate_shipped_model", NAME, stdout=io.StringIO())
    again = json.loads((folder / f"{NAME}.json").read_text())
    assert again["temperature"] == card["temperature"]
    assert again["calibration"]["build_temperature"] == 0.9


def test_an_unknown_network_is_refused(models_dir):
    with pytest.raises(CommandError, match="no shipped network 'faceage-v0'"):
        call_command("calibrate_shipped_model", "faceage-v0")


def test_a_version_served_with_a_second_opinion_is_calibrated_with_it(tmp_path, monkeypatch):
    """The default's card (faceage-v8's) names faceage-v5's weights and a second opinion: its
    temperature is fitted on the mix, not on the network alone, and the card keeps both."""
    served = DEFAULT_SHIPPED_MODEL
    network = shipped_weights_name(served)
    assert network != served
    for source in (
        shipped_model_path(network),
        shipped_model_path(network).with_suffix(".json"),
        shipped_model_path(network).with_name(f"{served}.json"),
    ):
        shutil.copy(source, tmp_path / source.name)
    for name in (served, network):
        card = json.loads((tmp_path / f"{name}.json").read_text())
        card["figures"]["utkface_test"]["count"] = 30
        (tmp_path / f"{name}.json").write_text(json.dumps(card))
    monkeypatch.setattr(command, "MODELS_DIR", tmp_path)
    monkeypatch.setattr(
        command,
        "held_out_splits",
        lambda chip_size, workers, count: (
            split(40, 1, True),
            split(50, 2, True),
            split(count, 3, False),
        ),
    )
    fitted = {}
    for name in (served, network):
        call_command("calibrate_shipped_model", name, stdout=io.StringIO())
        fitted[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert fitted[served]["weights"] == network
    assert fitted[served]["second_opinion"] == shipped_model_card(served)["second_opinion"]
    # The same faces, two distributions: the mix's likelihood before any temperature differs.
    before = {
        name: card["figures"]["registry"]["calibration"]["before"] for name, card in fitted.items()
    }
    assert before[served]["nll"] != pytest.approx(before[network]["nll"], abs=1e-3)
