"""The default network, trained by `manage.py build_bundled_model` and shipped in the
repository: registered, active on a fresh install, served, and better than the dlib network
on real faces it never trained on."""

from __future__ import annotations

import csv
import random

import numpy as np
import pytest

from predictor.models import ModelVersion
from predictor.vision.bundled_models import (
    DEFAULT_SHIPPED_MODEL,
    shipped_model_card,
    shipped_model_path,
    shipped_weights_name,
)
from tests.datasets import require_dataset, sample_utkface, utkface_age

pytestmark = pytest.mark.django_db
NAME = DEFAULT_SHIPPED_MODEL
# The network whose weights the default serves (faceage-v8 serves faceage-v5's).
NETWORK = shipped_weights_name(NAME)


def test_it_ships_small_with_a_card_naming_redistributable_data_only():
    assert shipped_model_path(NAME).stat().st_size < 40 * 1024 * 1024
    assert shipped_model_path(NAME) == shipped_model_path(NETWORK)
    card = shipped_model_card(NAME)
    assert card["training_data"]["licence"] == "CC BY 4.0"
    assert card["training_data"]["dataset"].startswith("FairFace")
    assert "build_bundled_model" in shipped_model_card(NETWORK)["command"]
    if NETWORK != NAME:
        # Its second opinion's head: trained on FairFace too, by the command its card names.
        assert "build_second_opinion" in card["command"] and card["second_opinion"]
        head = shipped_model_card(card["second_opinion"]["head"])
        assert head["training_data"]["licence"] == "CC BY 4.0"
        assert head["command"] == card["command"]
    assert 0.3 < card["temperature"] < 10


def test_a_fresh_install_serves_it_and_keeps_the_dlib_network_to_roll_back_to():
    active = ModelVersion.active()
    assert active.name == NAME and active.is_shipped and not active.is_bundled
    assert active.temperature == pytest.approx(shipped_model_card(NAME)["temperature"])
    assert ModelVersion.objects.filter(name=ModelVersion.BUNDLED_NAME, is_active=False).exists()
    # With nothing registered at all, the default registers itself.
    ModelVersion.objects.all().delete()
    assert ModelVersion.active().name == NAME


def test_its_page_and_card_show_the_benchmarks_and_the_licence(client):
    page = client.get(f"/models/{NAME}/").content.decode()
    assert "fairface-val" in page and "utkface-test" in page
    # The calibration table: the 80% interval's coverage before and after.
    calibration = shipped_model_card(NAME)["figures"]["registry"]["calibration"]
    before, after = (round(100 * calibration[side]["coverage_80"]) for side in ("before", "after"))
    assert f"<td>{before}%</td><td>{after}%</td>" in page
    card = client.get(f"/models/{NAME}/card.md").content.decode()
    assert "CC BY 4.0" in card and "FairFace" in card
    opinion = shipped_model_card(NAME).get("second_opinion")
    assert ("faceage serves this network with a second opinion" in card) == bool(opinion)
    assert ("faceage serves this network with a second opinion" in page) == bool(opinion)
    training = shipped_model_card(NETWORK)["training"]
    members = 1 + len(training.get("soup") or []) + len(training.get("soup_with") or [])
    assert ("a model soup" in card) == (members > 1)
    start = training.get("start_network")
    assert (f"It continues the training of {start}" in card) == bool(start)
    if start and training.get("soup_with") and not training.get("soup"):
        names = ", ".join(training["soup_with"])
        assert f"the mean of this fine-tune's and those of {names}" in card
        assert "such networks" not in card  # they were not all trained the same way
    elif members > 1:
        assert f"the mean of {members} such networks" in card


def test_a_shipped_soup_says_how_many_networks_its_weights_average(client, monkeypatch):
    from predictor.vision import bundled_models

    card = shipped_model_card(NETWORK)
    training = {
        **card["training"],
        "soup": [{"seed": 1}, {"seed": 2}],
        "soup_with": [],
        "start_network": None,
    }
    monkeypatch.setattr(
        bundled_models, "shipped_model_card", lambda name: {**card, "training": training}
    )
    for path in (f"/models/{NAME}/card.md", f"/models/{NAME}/"):
        page = client.get(path).content.decode()
        assert "the mean of 3 such networks" in page and "a model soup" in page
        assert "shipped before it" not in page
    # A shipped network that joined the mean (--soup-with) is counted and named.
    training["soup_with"] = ["faceage-v1a"]
    for path in (f"/models/{NAME}/card.md", f"/models/{NAME}/"):
        page = client.get(path).content.decode()
        assert "the mean of 4 such networks" in page
        assert "Networks shipped before it are among them: faceage-v1a." in page
    # A fine-tune of a shipped network (--start), its weights averaged with that network's
    # alone: not "such networks, each trained the same way".
    training.update(soup=[], soup_with=["faceage-v1a"], start_network="faceage-v1a")
    for path in (f"/models/{NAME}/card.md", f"/models/{NAME}/"):
        page = client.get(path).content.decode()
        assert "It continues the training of faceage-v1a, a network shipped before it." in page
        assert "the mean of this fine-tune" in page and "and those of faceage-v1a" in page
        assert "such network" not in page and "a model soup" in page


@pytest.fixture(scope="module")
def networks():
    from predictor.vision.age_network import AgeNetwork

    ours = AgeNetwork.shipped(NAME)  # with its second opinion, as served
    dlib = AgeNetwork.bundled()
    for network in (ours, dlib):
        network.mirrored = True
    return ours, dlib


def chips_of(paths, chip_size: int) -> np.ndarray:
    """Each photo's largest face, cut as training and serving cut them, at ``chip_size``."""
    from predictor.vision.alignment import FaceAligner
    from predictor.vision.centerface import CenterFaceDetector
    from training.pipeline.chips import ChipSource, cut_chip

    detector, aligner = CenterFaceDetector(), FaceAligner(chip_size=chip_size)
    results = [
        cut_chip(ChipSource(path.name, 0, "", "test"), path.parent, detector, aligner)
        for path in paths
    ]
    return np.stack([result.chip for result in results])


def test_it_beats_the_dlib_network_on_aligned_crops_and_children(networks):
    """UTKFace faces (never trained on): MAE overall and for children 0-12."""
    ours, dlib = networks
    paths = sample_utkface(1000, seed=77)
    true = np.array([utkface_age(path) for path in paths])
    errors = {
        name: np.abs(np.round(network.predict(chips_of(paths, network.chip_size)).ages) - true)
        for name, network in (("ours", ours), ("dlib", dlib))
    }
    # On these 1,000 faces: faceage-v8 5.32 years (children 1.64), faceage-v7 5.49 (1.61), the
    # dlib network 5.88 (2.86).
    # (160 faces were too few: there the dlib network was 5.33 and faceage-v7 5.36, while on
    # 3,000 others faceage-v7 is 5.41 and the dlib network 6.06.)
    assert errors["ours"].mean() < errors["dlib"].mean()
    children = true <= 12
    assert children.sum() >= 10
    assert errors["ours"][children].mean() <= errors["dlib"][children].mean()


def test_it_beats_the_dlib_network_on_in_the_wild_portraits(networks):
    """FairFace validation photos (never trained on): age-group accuracy."""
    ours, dlib = networks
    root = require_dataset("fairface")
    with open(root / "labels.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["path"].startswith("val/")]
    rows = random.Random(78).sample(rows, 160)
    bounds = {"70+": (70, 100)}
    low, high = zip(
        *(bounds.get(r["age_group"]) or map(int, r["age_group"].split("-")) for r in rows),
        strict=True,
    )
    paths = [root / r["path"] for r in rows]

    def accuracy(network) -> float:
        served = np.round(network.predict(chips_of(paths, network.chip_size)).ages)
        return float(((served >= np.array(low)) & (served <= np.array(high))).mean())

    assert accuracy(ours) > accuracy(dlib)


def test_its_80_percent_intervals_hold_about_80_percent_of_real_ages(networks):
    """UTKFace faces (never trained or calibrated on): the card's temperature, fitted on
    FairFace's age groups, gives intervals that hold about 80% of exact ages; uncalibrated
    (T = 1) they hold fewer."""
    from predictor.vision.uncertainty import coverage, describe

    ours, _ = networks
    paths = sample_utkface(240, seed=79)
    true = np.array([utkface_age(path) for path in paths])
    probabilities = ours.predict(chips_of(paths, ours.chip_size)).probabilities
    served = describe(probabilities, ours.class_ages, shipped_model_card(NAME)["temperature"])
    raw = describe(probabilities, ours.class_ages, 1.0)
    held, raw_held = coverage(served.low, served.high, true), coverage(raw.low, raw.high, true)
    # 81.3% for faceage-v8 on these faces (uncalibrated 77.9%); 81.3% for faceage-v7
    # (uncalibrated 75.8%); 82.5% for faceage-v6
    # (uncalibrated 77.1%); 77.9% for faceage-v5
    # (uncalibrated 58.3%) and for faceage-v4, whose first temperature (fitted on the groups'
    # likelihood, 1.349) held 74.2%.
    assert 0.76 <= held <= 0.9
    # The temperature widens what was too narrow (T > 1), never the other way.
    assert shipped_model_card(NAME)["temperature"] > 1 and held > raw_held
