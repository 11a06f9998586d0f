"""The promotion gate: a candidate that wins on its own split but loses on a benchmark is
not promoted (a tiny rigged run), and the comparison rules themselves."""

from __future__ import annotations

import numpy as np
import pytest

from predictor.models import ModelVersion
from predictor.vision.age_network import distribution_from_probabilities
from training import runner
from training.gate import regressions
from training.models import Dataset, TrainingRun

pytestmark = pytest.mark.django_db
AGES = np.arange(101, dtype=np.float32)


class PixelNetwork:
    """Reads the age from a chip's first pixel, plus ``bias`` years for children."""

    class_ages = AGES
    num_classes = 101
    temperature = 1.0

    def __init__(self, child_bias: float = 0.0, noise: float = 0.0, chip_size: int = 64) -> None:
        self.child_bias, self.noise, self.chip_size = child_bias, noise, chip_size

    def predict(self, chips):
        assert chips.shape[1:3] == (self.chip_size, self.chip_size), "chips cut for another net"
        true = chips[:, 0, 0, 0].astype(np.float64)
        means = true + np.where(true <= 12, self.child_bias, 0.0) + self.noise
        rows = np.exp(-0.5 * ((AGES[None, :] - means[:, None]) / 2.0) ** 2)
        return distribution_from_probabilities(rows / rows.sum(axis=1, keepdims=True), AGES)

    def save(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"stand-in model")
        return path


def split(ages, chip_size: int = 64) -> dict:
    ages = np.asarray(ages, dtype=np.int32)
    chips = np.zeros((len(ages), chip_size, chip_size, 3), dtype=np.uint8)
    chips[:, 0, 0, 0] = ages
    return {"chips": chips, "ages": ages, "genders": np.zeros(len(ages), np.int32)}


@pytest.fixture
def rigged(monkeypatch, tmp_path, settings):
    """A run whose candidate is 1 year better than the active model on its own adult test
    split, and 8 years worse on children (the benchmark "family")."""
    from predictor import serving
    from training.pipeline import fit as fit_module
    from training.pipeline import tfrecords

    settings.FACEAGE_TRAINING_DIR = str(tmp_path / "runs")
    rng = np.random.default_rng(0)
    adults = {name: split(rng.integers(20, 70, 200)) for name in ("train", "val", "test")}
    children = split(rng.integers(1, 12, 200))

    def prepare(dataset, progress=None, chip_size=64):
        counts = {"train": 200, "val": 200, "test": 200}
        return dataset.name, {"counts": counts, "how": {}, "chip_size": chip_size}

    def load(cache, manifest, name):
        faces = children if cache == "family" else adults[name]
        return split(faces["ages"], manifest["chip_size"])  # the same faces, at the size asked

    candidate = PixelNetwork(child_bias=8.0)
    monkeypatch.setattr(runner, "prepare_chips", prepare)
    monkeypatch.setattr(tfrecords, "load_split", load)
    # The start's copy is a stand-in file, not a model to read the chip size from.
    monkeypatch.setattr(runner, "start_chip_size", lambda *args: 64)
    monkeypatch.setattr(
        fit_module, "fit", lambda *a, **k: fit_module.FitResult(network=candidate, best_val_mae=1)
    )
    # The active model: off by a year everywhere, children included.
    monkeypatch.setattr(serving, "load_network", lambda version: PixelNetwork(noise=1.0))
    own = Dataset.objects.create(name="adults", kind="utkface", source="/x", status="succeeded")
    Dataset.objects.create(
        name="family", kind="csv", source="/y", status="succeeded", is_benchmark=True
    )
    return TrainingRun.objects.create(dataset=own, epochs=1, status="running", auto_promote=True)


def test_a_candidate_that_regresses_on_a_benchmark_is_not_promoted(rigged):
    runner.execute_run(rigged)
    rigged.refresh_from_db()
    assert rigged.status == TrainingRun.Status.SUCCEEDED, rigged.error_message
    version = rigged.model_version
    assert version.metrics["mae"] < 1.0  # it does beat the active model on its own split
    assert not version.is_active
    assert ModelVersion.active().name == ModelVersion.DEFAULT_NAME
    family = version.metrics["benchmarks"]["family"]
    assert family["candidate"]["mae"] == pytest.approx(8.0, abs=0.3)
    assert family["active"]["mae"] == pytest.approx(1.0, abs=0.3)
    assert [r["metric"] for r in family["regressions"]] == ["mae", "mae_children_0_12"]
    assert version.metrics["gate"]["regressions"] == family["regressions"]
    assert "not promoted: worse than the active model on family: mae" in rigged.log
    # Started from the active model, it keeps that model's second opinion (refitted).
    assert version.second_opinion["head"] == ModelVersion.active().second_opinion["head"]
    assert f"second opinion: {version.second_opinion['head']}" in rigged.log


def test_without_a_regression_the_better_candidate_is_promoted(rigged, monkeypatch):
    from training.pipeline import fit as fit_module

    monkeypatch.setattr(
        fit_module,
        "fit",
        lambda *a, **k: fit_module.FitResult(network=PixelNetwork(), best_val_mae=1),
    )
    runner.execute_run(rigged)
    rigged.refresh_from_db()
    assert rigged.model_version.is_active
    assert rigged.model_version.metrics["gate"]["regressions"] == []
    assert "is no worse on 1 benchmark(s)" in rigged.log


def test_a_candidate_and_the_active_model_are_each_judged_on_chips_cut_for_them(
    rigged, monkeypatch
):
    """A run that starts from a network reading 96 px chips trains and is measured on 96 px
    chips; the active model (64 px) is measured on 64 px chips of the same faces. (The
    networks refuse chips of another size.)"""
    from training.pipeline import fit as fit_module

    trained_on = []

    def fit(train, *args, **kwargs):
        trained_on.append(train["chips"].shape[1])
        return fit_module.FitResult(network=PixelNetwork(chip_size=96), best_val_mae=1)

    monkeypatch.setattr(runner, "start_chip_size", lambda *args: 96)
    monkeypatch.setattr(fit_module, "fit", fit)
    runner.execute_run(rigged)
    rigged.refresh_from_db()
    assert rigged.status == TrainingRun.Status.SUCCEEDED, rigged.error_message
    assert trained_on == [96]
    metrics = rigged.model_version.metrics
    assert metrics["training"]["chip_size"] == 96 == rigged.model_version.chip_size
    assert ModelVersion.active().chip_size == 96  # promoted: the next run's active size
    assert metrics["mae"] < metrics["baseline"]["mae"] == pytest.approx(1.0, abs=0.3)
    family = metrics["benchmarks"]["family"]
    assert family["active"]["mae"] == pytest.approx(1.0, abs=0.3)
    assert family["candidate"]["mae"] < 0.5
    assert rigged.model_version.is_active


def test_regressions_compare_within_the_stated_tolerance(settings):
    settings.FACEAGE_GATE_MAE_TOLERANCE = 0.2
    settings.FACEAGE_GATE_ACCURACY_TOLERANCE = 0.01
    active = {"mae": 5.0, "mae_children_0_12": 3.0, "accuracy": 0.50}
    assert (
        regressions("b", {"mae": 5.19, "mae_children_0_12": 3.1, "accuracy": 0.495}, active) == []
    )
    found = regressions("b", {"mae": 5.3, "mae_children_0_12": 3.0, "accuracy": 0.48}, active)
    assert [(r.metric, r.candidate, r.active) for r in found] == [
        ("mae", 5.3, 5.0),
        ("accuracy", 0.48, 0.5),
    ]
    # A figure that one side lacks (no children in the set) is not compared.
    assert regressions("b", {"mae": 4.0}, {"mae": 5.0, "mae_children_0_12": 1.0}) == []


def regressed_version() -> ModelVersion:
    regression = {"benchmark": "family", "metric": "mae", "candidate": 8.1, "active": 1.2}
    return ModelVersion.objects.create(
        name="utk-run9",
        artifact="models/utk-run9.keras",
        metrics={"mae": 4.9, "gate": {"regressions": [regression]}},
    )


def promote(admin_client, version, **extra):
    return admin_client.post(
        "/admin/predictor/modelversion/",
        {"action": "activate", "_selected_action": [version.pk], **extra},
    )


def test_staff_promote_a_regressed_version_only_with_a_written_reason(admin_client):
    version = regressed_version()
    asked = promote(admin_client, version)
    assert asked.status_code == 200
    page = asked.content.decode()
    assert "family: mae 1.2 → 8.1" in page and 'name="reason"' in page
    version.refresh_from_db()
    assert not version.is_active
    # Sent without a reason: asked again, still not active.
    again = promote(admin_client, version, apply="1", reason="  ")
    assert again.status_code == 200 and "Write a reason." in again.content.decode()
    version.refresh_from_db()
    assert not version.is_active
    done = promote(admin_client, version, apply="1", reason="Children are rare in our traffic.")
    assert done.status_code == 302
    version.refresh_from_db()
    assert version.is_active
    assert version.promotion_override == "Children are rare in our traffic."
    shown = admin_client.get(f"/models/{version.name}/").content.decode()
    assert "Children are rare in our traffic." in shown


def test_a_version_without_regressions_is_promoted_at_once(admin_client):
    version = ModelVersion.objects.create(name="fine", artifact="models/fine.keras")
    assert promote(admin_client, version).status_code == 302
    version.refresh_from_db()
    assert version.is_active and version.promotion_override == ""


def test_the_model_page_shows_each_benchmark_per_gender_and_race(client):
    """FairFace's fairness report on the model page: accuracy per race and gender on an
    age-group benchmark, MAE per race on an exact-age one, this model beside the active."""
    version = ModelVersion.objects.create(
        name="ff-run2",
        artifact="models/ff-run2.keras",
        metrics={
            "gate": {"active_model": "faceage-v2"},
            "benchmarks": {
                "ff": {
                    "candidate": {
                        "accuracy": 0.5,
                        "accuracy_by_race": {"East Asian": {"accuracy": 0.47, "count": 30}},
                        "accuracy_by_gender": {"female": {"accuracy": 0.52, "count": 55}},
                    },
                    "active": {
                        "accuracy": 0.49,
                        "accuracy_by_race": {"East Asian": {"accuracy": 0.41, "count": 30}},
                    },
                },
                "utk": {
                    "candidate": {"mae": 5.0, "mae_by_race": {"Indian": {"mae": 6.25, "count": 9}}},
                    "active": {"mae": 5.5, "mae_by_race": {"Indian": {"mae": 7.5, "count": 9}}},
                },
            },
        },
    )
    page = client.get(f"/models/{version.name}/").content.decode()
    assert "By gender and race" in page
    rows = " ".join(page.split()).replace("> <", "><")
    assert "<td>East Asian</td><td>47%</td><td>41%</td><td>30</td>" in rows
    assert "<td>Indian</td><td>6.25</td><td>7.50</td><td>9</td>" in rows
    assert "<td>female</td><td>52%</td><td>–</td><td>55</td>" in rows  # no active figure
