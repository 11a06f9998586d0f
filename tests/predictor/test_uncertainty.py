"""Per-face uncertainty: calibrated age distributions, 80% intervals, the aligned crop, the
API's `age_interval` and `?distribution=`, the owner-checked crop view, temperature fitting."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from predictor.models import Face, ModelVersion, Prediction
from predictor.vision.uncertainty import (
    YEARS,
    chip_jpeg,
    class_targets,
    coverage,
    describe,
    fit_coverage_temperature,
    fit_temperature,
    interval_80,
    mean_nll,
    per_year,
    tempered,
)
from tests import images

AGES_0_100 = np.arange(101, dtype=np.float32)
BUNDLED_CLASS_AGES = np.array([0.25, *range(1, 81)], dtype=np.float32)


def normal_rows(means, sd: float, class_ages=AGES_0_100) -> np.ndarray:
    """Softmax-like rows: a discretised normal around each mean."""
    ages = np.asarray(class_ages, dtype=np.float64)
    rows = np.exp(-0.5 * ((ages[None, :] - np.asarray(means, dtype=np.float64)[:, None]) / sd) ** 2)
    return (rows / rows.sum(axis=1, keepdims=True)).astype(np.float32)


# --- the numbers ---------------------------------------------------------------------------


def test_interval_is_the_10th_to_90th_percentile_and_contains_the_expected_age():
    probabilities = normal_rows([30.0, 62.0], sd=5.0)
    result = describe(probabilities, AGES_0_100, temperature=1.0)
    expected_ages = result.years @ np.arange(YEARS)
    assert np.all(result.low <= expected_ages) and np.all(expected_ages <= result.high)
    # A normal's 10th/90th percentiles are mean -/+ 1.2816 sd: 23.6 and 36.4 around 30.
    assert list(result.low) == [24, 56] and list(result.high) == [36, 68]
    cumulative = np.cumsum(result.years, axis=1)
    rows = np.arange(2)
    assert np.all(cumulative[rows, result.low] >= 0.1)
    assert np.all(cumulative[rows, result.low - 1] < 0.1)
    assert np.all(cumulative[rows, result.high] >= 0.9)
    assert np.all(cumulative[rows, result.high - 1] < 0.9)


def test_a_certain_network_gives_a_one_year_interval():
    one_hot = np.zeros((1, 101), dtype=np.float32)
    one_hot[0, 45] = 1.0
    low, high = interval_80(per_year(one_hot, AGES_0_100))
    assert (low[0], high[0]) == (45, 45)


def test_probabilities_sum_to_one_and_bundled_classes_map_to_whole_years():
    probabilities = normal_rows([0.0, 40.0, 80.0], sd=6.0, class_ages=BUNDLED_CLASS_AGES)
    for temperature in (0.5, 1.0, 2.5):
        result = describe(probabilities, BUNDLED_CLASS_AGES, temperature)
        assert result.years.shape == (3, 101)
        np.testing.assert_allclose(result.years.sum(axis=1), 1.0, atol=1e-9)
        assert np.all(result.years >= 0)
        assert np.all(result.years[:, 81:] == 0)  # the bundled network stops at 80
    # The 0.25-year class is age 0, and nothing is lost in the mapping.
    years = per_year(probabilities, BUNDLED_CLASS_AGES)
    assert years[0, 0] == pytest.approx(float(probabilities[0, 0]), rel=1e-6)


def test_temperature_widens_above_one_and_narrows_below_one():
    probabilities = normal_rows([25.0, 50.0, 70.0], sd=4.0)
    widths = {}
    for temperature in (0.5, 1.0, 2.0, 4.0):
        result = describe(probabilities, AGES_0_100, temperature)
        widths[temperature] = (result.high - result.low).mean()
    assert widths[0.5] < widths[1.0] < widths[2.0] < widths[4.0]
    np.testing.assert_allclose(tempered(probabilities, 1.0), probabilities, rtol=1e-5, atol=1e-7)
    # softmax(log p / T) is p ** (1 / T), renormalised.
    manual = probabilities.astype(np.float64) ** 0.5
    manual /= manual.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(tempered(probabilities, 2.0), manual, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_a_bad_temperature_is_refused(bad):
    with pytest.raises(ValueError, match="temperature"):
        tempered(normal_rows([30.0], 5.0), bad)


def test_fitting_recovers_the_temperature_that_generated_the_ages():
    # The "network" says softmax(z); the true ages really follow softmax(z / 2.5).
    rng = np.random.default_rng(0)
    means = rng.uniform(10, 90, size=3000)
    overconfident = normal_rows(means, sd=3.0)
    truth = tempered(overconfident, 2.5)
    true_ages = np.array([rng.choice(101, p=row / row.sum()) for row in truth])
    fitted = fit_temperature(overconfident, true_ages, AGES_0_100)
    assert fitted == pytest.approx(2.5, rel=0.08)
    targets = class_targets(true_ages, AGES_0_100)
    assert mean_nll(overconfident, targets, fitted) < mean_nll(overconfident, targets, 1.0)
    # And calibrating brings the interval's coverage from far too low to about 80%.
    before = describe(overconfident, AGES_0_100, 1.0)
    after = describe(overconfident, AGES_0_100, fitted)
    assert coverage(before.low, before.high, true_ages) < 0.7
    assert coverage(after.low, after.high, true_ages) == pytest.approx(0.8, abs=0.05)


def test_coverage_fit_makes_80_percent_intervals_hold_80_percent_despite_gross_errors():
    rng = np.random.default_rng(1)
    means = rng.uniform(10, 90, size=2000)
    overconfident = normal_rows(means, sd=3.0)
    true_ages = np.rint(means + rng.normal(0, 7.0, size=means.size))  # truth is wider
    gross = rng.random(means.size) < 0.05  # and 5% are far off (label noise, wrong face)
    true_ages[gross] = np.clip(means[gross] + 45, 0, 100)
    fit_half, test_half = slice(0, 1000), slice(1000, None)
    served = fit_coverage_temperature(overconfident[fit_half], true_ages[fit_half], AGES_0_100)
    by_nll = fit_temperature(overconfident[fit_half], true_ages[fit_half], AGES_0_100)
    result = describe(overconfident[test_half], AGES_0_100, served)
    assert coverage(result.low, result.high, true_ages[test_half]) == pytest.approx(0.8, abs=0.04)
    # The NLL fit is pulled up by the few gross errors: wider intervals than needed.
    assert by_nll > served
    before = describe(overconfident[test_half], AGES_0_100, 1.0)
    assert coverage(before.low, before.high, true_ages[test_half]) < 0.5


def stand_in_split(rng, size: int, ages=(5, 90), sd: float = 6.0, groups: bool = False) -> dict:
    """Chips that :class:`_FakeNetwork` reads the age from (one pixel holds the true age
    ``sd`` years off on average), with their labels; with ``groups`` the labels are the
    decades, as FairFace labels its photos."""
    true = rng.integers(*ages, size=size)
    chips = np.zeros((size, 64, 64, 3), dtype=np.uint8)
    chips[:, 0, 0, 0] = np.clip(true + rng.normal(0, sd, size=size), 0, 100).astype(np.uint8)
    data = {"chips": chips, "ages": true.astype(np.float64), "genders": np.zeros(size)}
    if groups:
        low = (true // 10) * 10
        data.update(ages=low.astype(np.float64), age_low=low, age_high=low + 9)
    return data


def test_training_calibration_reports_the_test_split_before_and_after():
    from training.pipeline.calibration import calibrate

    rng = np.random.default_rng(2)
    val, test = stand_in_split(rng, 400), stand_in_split(rng, 400)  # truth ~6 years off
    temperature, report = calibrate(_FakeNetwork(1.0), val, test)
    assert temperature > 1.0  # sd 4 where the truth is ~6 years off: it had to widen
    assert report["temperature"] == pytest.approx(temperature, abs=1e-4)
    assert report["before"]["coverage_80"] < report["after"]["coverage_80"]
    assert report["after"]["coverage_80"] == pytest.approx(0.8, abs=0.07)
    assert report["after"]["mean_width"] > report["before"]["mean_width"]
    assert {"nll", "coverage_80_children_0_12"} <= set(report["after"])
    assert report["test_faces"] == 400 and "temperature_min_nll" in report


def test_coverage_of_age_groups_is_the_share_of_the_group_the_interval_holds():
    low, high = np.array([5, 0, 30, 12, 20]), np.array([8, 40, 35, 12, 20])
    groups_low, groups_high = np.array([3, 20, 20, 12, 20]), np.array([9, 29, 29, 12, 29])
    # 4 of 3-9's 7 years; all of 20-29; none of it; a one-year group held; 1 of 10 years.
    expected = np.mean([4 / 7, 1.0, 0.0, 1.0, 1 / 10])
    assert coverage(low, high, groups_low, groups_high) == pytest.approx(expected)
    # One-year groups are exact ages.
    ages = np.array([6, 50, 33, 12, 21])
    assert coverage(low, high, ages, ages) == coverage(low, high, ages) == 0.6
    with pytest.raises(ValueError, match="low <= high"):
        coverage(low, high, groups_high, groups_low)


def test_coverage_fit_on_age_groups_is_a_little_wider_than_exact_ages_need():
    # The truth is wider than the network thinks; only the decade is labelled, as FairFace
    # labels its photos. Counting a face for the share of its decade the interval holds is
    # as if the age were spread over the decade (sd 2.9 years) on top of the network's
    # error (sd 8 here): a somewhat higher temperature than exact ages would give, and
    # intervals that hold at least 80% of the exact ages, never fewer.
    rng = np.random.default_rng(3)
    means = rng.uniform(20, 80, size=3000)
    overconfident = normal_rows(means, sd=3.0)
    true_ages = np.clip(np.rint(means + rng.normal(0, 8.0, size=means.size)), 0, 100)
    decade_low = (true_ages // 10) * 10
    fit_half, test_half = slice(0, 1500), slice(1500, None)
    exact = fit_coverage_temperature(overconfident[fit_half], true_ages[fit_half], AGES_0_100)
    by_groups = fit_coverage_temperature(
        overconfident[fit_half],
        decade_low[fit_half],
        AGES_0_100,
        true_high=decade_low[fit_half] + 9,
    )
    # Temperature scales the variance here: (8^2 + 10^2 / 12) / 8^2 = 1.13 times exact's.
    assert exact < by_groups < 1.4 * exact
    result = describe(overconfident[test_half], AGES_0_100, by_groups)
    held = coverage(result.low, result.high, true_ages[test_half])
    assert 0.8 <= held <= 0.88
    exact_result = describe(overconfident[test_half], AGES_0_100, exact)
    assert coverage(exact_result.low, exact_result.high, true_ages[test_half]) < held


def test_training_calibration_fits_age_groups_by_coverage_too():
    from training.pipeline.calibration import calibrate

    rng = np.random.default_rng(4)
    val = stand_in_split(rng, 600, ages=(20, 80), sd=8.0, groups=True)
    test = stand_in_split(rng, 600, ages=(20, 80), sd=8.0, groups=True)
    temperature, report = calibrate(_FakeNetwork(1.0), val, test)
    assert temperature > 1.0
    assert report["after"]["coverage_80"] == pytest.approx(0.8, abs=0.06)
    # Fitted on the validation split: the smallest temperature reaching 80% there.
    assert report["validation"]["coverage_80"] == pytest.approx(0.8, abs=0.01)
    assert report["before"]["coverage_80"] < report["after"]["coverage_80"]
    # The group likelihood's temperature is reported beside it, with its figures.
    assert report["temperature_max_group_likelihood"] > 0
    assert "after_max_group_likelihood" in report and "age groups" in report["fitted_on"]


def test_training_calibration_holds_80_percent_on_each_dataset_it_learned_from():
    """A run on two datasets: the network (sd 4) is about right on one (truth 3 years off) and
    too sure on the other (10 years off). One temperature fitted on the pooled faces is a
    compromise that leaves the second short of 80%; fitted per dataset, the served one is the
    larger, and every dataset's validation and test faces are held at least 80%."""
    from training.pipeline.calibration import calibrate
    from training.runner import concatenate_splits

    rng = np.random.default_rng(5)
    sharp = [stand_in_split(rng, 800, sd=3.0) for _ in range(2)]
    noisy = [stand_in_split(rng, 400, sd=10.0) for _ in range(2)]
    val = concatenate_splits([sharp[0], noisy[0]])
    parts = np.array(["sharp"] * 800 + ["noisy"] * 400)
    network = _FakeNetwork(1.0)
    pooled, _ = calibrate(network, val, noisy[1])
    served, report = calibrate(network, val, noisy[1], parts=parts)
    by_dataset = report["temperature_by_dataset"]
    assert by_dataset["noisy"] > by_dataset["sharp"]
    assert served == pytest.approx(by_dataset["noisy"], abs=1e-3) and served > pooled
    assert set(report["validation_by_dataset"]) == {"sharp", "noisy"}
    for name, held in report["validation_by_dataset"].items():
        assert held["coverage_80"] >= 0.8 - 1e-6, name
    assert report["temperature_pooled"] == pytest.approx(pooled, abs=1e-4)
    # On the noisy dataset's test faces: short with the pooled fit, about 80% now.
    short = describe(network.predict(noisy[1]["chips"]).probabilities, AGES_0_100, pooled)
    assert coverage(short.low, short.high, noisy[1]["ages"]) < 0.76
    assert report["after"]["coverage_80"] == pytest.approx(0.8, abs=0.05)
    assert "each dataset" in report["fitted_on"]
    # One dataset named, or none: the pooled fit, as before. So is a dataset with too few
    # validation faces for a temperature of its own (a few users' labels).
    assert calibrate(network, val, noisy[1], parts=np.array(["one"] * 1200))[0] == pooled
    few = np.array(["sharp"] * 1150 + ["labels"] * 50)
    assert calibrate(network, val, noisy[1], parts=few)[0] == pooled
    with pytest.raises(ValueError, match="dataset names"):
        calibrate(network, val, noisy[1], parts=parts[:10])


def test_a_dataset_too_small_for_its_own_temperature_still_counts_in_the_pooled_one():
    """Two large datasets that are about right, and a small one (a few users' labels, too few
    for a temperature of its own) that needs far wider intervals: the pooled fit, which the
    small one pulls up, is served when it is the largest."""
    from training.pipeline.calibration import MIN_FACES, calibrate
    from training.runner import concatenate_splits

    rng = np.random.default_rng(6)
    large = [stand_in_split(rng, 600, sd=4.0) for _ in range(2)]
    small = stand_in_split(rng, MIN_FACES - 1, sd=40.0, ages=(20, 80))
    val = concatenate_splits([*large, small])
    parts = np.array(["a"] * 600 + ["b"] * 600 + ["labels"] * (MIN_FACES - 1))
    network = _FakeNetwork(1.0)
    served, report = calibrate(network, val, large[1], parts=parts)
    assert set(report["temperature_by_dataset"]) == {"a", "b"}
    assert report["temperature_pooled"] > max(report["temperature_by_dataset"].values())
    assert served == pytest.approx(report["temperature_pooled"], abs=1e-4)


def test_fitting_needs_faces():
    with pytest.raises(ValueError, match="at least one face"):
        fit_temperature(np.zeros((0, 101)), np.zeros(0), AGES_0_100)


def test_targets_clip_ages_beyond_the_last_class():
    assert list(class_targets(np.array([0, 1, 80, 95]), BUNDLED_CLASS_AGES)) == [0, 1, 80, 80]


def test_chip_jpeg_is_a_64px_jpeg():
    chip = np.zeros((64, 64, 3), dtype=np.uint8)
    chip[:, :32] = (200, 30, 30)
    with Image.open(io.BytesIO(chip_jpeg(chip))) as image:
        assert image.format == "JPEG" and image.size == (64, 64)
        assert image.getpixel((10, 30))[0] > 150 and image.getpixel((50, 30))[0] < 60


# --- the estimator, with a stand-in network (no TensorFlow run) --------------------------------


class _FakeNetwork:
    class_ages = AGES_0_100
    num_classes = 101
    chip_size = 64

    def __init__(self, temperature: float) -> None:
        self.temperature = temperature

    def predict(self, chips):
        from predictor.vision.age_network import distribution_from_probabilities

        means = chips[:, 0, 0, 0].astype(np.float64)  # the test encodes the age in a pixel
        return distribution_from_probabilities(normal_rows(means, sd=4.0), AGES_0_100)


class _FakeAligner:
    def align_many(self, rgb, boxes, chip_size):
        return np.stack(
            [np.full((chip_size, chip_size, 3), box.left, dtype=np.uint8) for box in boxes]
        )


def test_estimator_gives_each_face_its_interval_distribution_and_crop():
    from predictor.vision.estimator import AgeEstimator
    from predictor.vision.face_detection import FaceBox

    boxes = [FaceBox(20, 0, 30, 10, 1.0, "hog"), FaceBox(60, 0, 70, 10, 1.0, "hog")]
    rgb = np.zeros((80, 80, 3), dtype=np.uint8)
    widths = []
    for temperature in (1.0, 3.0):
        estimator = AgeEstimator(
            _FakeNetwork(temperature), detector=object(), aligner=_FakeAligner()
        )
        (faces,) = estimator.estimate_many_boxes([(rgb, boxes)])
        for face, age in zip(faces, (20, 60), strict=True):
            assert face.age == pytest.approx(age, abs=0.01)
            assert face.age_low <= face.age <= face.age_high
            assert len(face.distribution) == 101
            assert sum(face.distribution) == pytest.approx(1.0, abs=5e-3)
            with Image.open(io.BytesIO(face.chip_jpeg)) as chip:
                assert chip.size == (64, 64)
            # age_std is the spread of the same calibrated distribution.
            years = np.asarray(face.distribution)
            mean = years @ np.arange(101)
            spread = np.sqrt(years @ (np.arange(101) - mean) ** 2)
            assert face.age_std == pytest.approx(spread, rel=0.01)
        widths.append((faces[0].age_high - faces[0].age_low, faces[0].age_std))
    assert widths[1][0] > widths[0][0] and widths[1][1] > widths[0][1]


# --- storage, API and pages ---------------------------------------------------------------


def _succeeded_prediction(client, owner=None) -> Prediction:
    data = images.encode(Image.new("RGB", (120, 90), "teal"))
    if owner is None:
        client.post("/", {"image": SimpleUploadedFile("a.jpg", data, "image/jpeg")})
        prediction = Prediction.objects.order_by("-created_at").first()
    else:
        prediction = Prediction(owner=owner)
        prediction.image.save("p.jpg", ContentFile(data), save=False)
        prediction.save()
    prediction.status = Prediction.Status.SUCCEEDED
    prediction.save()
    distribution = [0.0] * 101
    distribution[33], distribution[34], distribution[35] = 0.25, 0.5, 0.25
    Face.objects.create(
        prediction=prediction,
        index=0,
        left=1,
        top=2,
        right=30,
        bottom=40,
        age=34.0,
        age_std=0.7,
        age_low=33,
        age_high=35,
        distribution=distribution,
        chip_jpeg=chip_jpeg(np.full((64, 64, 3), 128, dtype=np.uint8)),
    )
    return prediction


@pytest.mark.django_db
def test_api_gives_the_interval_always_and_the_distribution_on_request(api_client, user):
    api_client.force_authenticate(user)
    prediction = _succeeded_prediction(None, owner=user)
    url = f"/api/v1/predictions/{prediction.pk}/"

    (face,) = api_client.get(url).json()["faces"]
    assert face["age_interval"] == [33, 35]
    assert "distribution" not in face
    assert face["chip_url"].endswith(f"/p/{prediction.pk}/faces/0/chip.jpg")

    for value in ("1", "true"):
        (face,) = api_client.get(url, {"distribution": value}).json()["faces"]
        assert len(face["distribution"]) == 101 and face["distribution"][34] == 0.5
        assert sum(face["distribution"]) == pytest.approx(1.0)
    (face,) = api_client.get(url, {"distribution": "0"}).json()["faces"]
    assert "distribution" not in face
    listed = api_client.get("/api/v1/predictions/", {"distribution": "1"}).json()
    assert len(listed["results"][0]["faces"][0]["distribution"]) == 101


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["2", "maybe", "1.0", "yes", "yes please"])
def test_a_bad_distribution_value_is_a_400_in_the_error_shape(api_client, user, bad):
    api_client.force_authenticate(user)
    prediction = _succeeded_prediction(None, owner=user)
    for url in (f"/api/v1/predictions/{prediction.pk}/", "/api/v1/predictions/"):
        response = api_client.get(url, {"distribution": bad})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["field"] == "distribution" and error["code"] == "invalid"
        assert "'distribution'" in error["message"]


@pytest.mark.django_db
def test_faces_stored_before_intervals_have_a_null_interval(api_client, user):
    api_client.force_authenticate(user)
    prediction = _succeeded_prediction(None, owner=user)
    Face.objects.filter(prediction=prediction).update(
        age_low=None, age_high=None, distribution=[], chip_jpeg=b""
    )
    (face,) = api_client.get(f"/api/v1/predictions/{prediction.pk}/").json()["faces"]
    assert face["age_interval"] is None and face["chip_url"] is None


@pytest.mark.django_db
def test_the_crop_is_for_the_owner_only(client, enqueued):
    prediction = _succeeded_prediction(client)
    url = f"/p/{prediction.pk}/faces/0/chip.jpg"
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert "private" in response["Cache-Control"]
    with Image.open(io.BytesIO(response.content)) as chip:
        assert chip.size == (64, 64)
    assert Client().get(url).status_code == 404  # another visitor
    assert client.get(f"/p/{prediction.pk}/faces/1/chip.jpg").status_code == 404  # no such face


@pytest.mark.django_db
def test_the_crop_of_another_users_prediction_is_a_404(client, user, other_user):
    prediction = _succeeded_prediction(None, owner=other_user)
    client.force_login(user)
    assert client.get(f"/p/{prediction.pk}/faces/0/chip.jpg").status_code == 404
    client.force_login(other_user)
    assert client.get(f"/p/{prediction.pk}/faces/0/chip.jpg").status_code == 200


@pytest.mark.django_db
def test_result_page_explains_the_interval_and_asks_for_the_distribution(client, enqueued):
    prediction = _succeeded_prediction(client)
    html = client.get(f"/p/{prediction.pk}/").content.decode()
    assert "80% interval" in html and 'id="interval-note"' in html
    with open("static/js/result.js", encoding="utf-8") as script:
        source = script.read()
    assert "?distribution=1" in source and "age_interval" in source and "chip_url" in source


@pytest.mark.django_db
def test_model_page_shows_children_mae_and_calibration(client):
    version = ModelVersion.objects.create(
        name="calibrated",
        artifact="models/x.keras",
        temperature=1.7,
        metrics={
            "dataset": "utk",
            "mae": 5.5,
            "cs5": 0.6,
            "count": 100,
            "mae_children_0_12": 3.21,
            "mae_by_decade": {"0-9": {"mae": 3.0, "count": 10}},
            "calibration": {
                "temperature": 1.7,
                "test_faces": 100,
                "before": {"coverage_80": 0.41, "mean_width": 6.0, "nll": 4.2},
                "after": {"coverage_80": 0.79, "mean_width": 15.0, "nll": 3.6},
            },
        },
    )
    html = client.get(f"/models/{version.name}/").content.decode()
    assert "3.21" in html  # children's MAE
    assert "41%" in html and "79%" in html and "1.700" in html
    body = client.get("/api/v1/models/").json()
    rows = body["results"] if isinstance(body, dict) else body
    (row,) = [r for r in rows if r["name"] == "calibrated"]
    assert row["temperature"] == 1.7 and row["metrics"]["mae_children_0_12"] == 3.21


@pytest.mark.django_db
def test_the_bundled_version_carries_its_fitted_temperature():
    bundled = ModelVersion.objects.get(name=ModelVersion.BUNDLED_NAME)
    assert bundled.temperature == pytest.approx(ModelVersion.BUNDLED_TEMPERATURE)
    assert bundled.temperature != 1.0  # fitted by bench/calibration.py, not left at default
    calibration = bundled.metrics["calibration"]
    assert calibration["temperature"] == bundled.temperature
    assert calibration["before"]["coverage_80"] < calibration["after"]["coverage_80"]


@pytest.mark.django_db
def test_bundled_model_page_shows_its_calibration_and_childrens_mae(client):
    html = client.get(f"/models/{ModelVersion.BUNDLED_NAME}/").content.decode()
    assert "37%" in html and "81%" in html  # coverage of the 80% interval, before and after
    assert "3.64" in html and "6.39" in html  # MAE for children 0-12 and all ages, same sample
    # The page neither says it has no test figures above the table of them, nor names a
    # script people cannot run from a browser.
    assert "No test-split metrics recorded" not in html
    assert "bench/calibration.py" not in html


@pytest.mark.django_db
def test_the_admin_lists_the_bundled_networks_test_mae(admin_client):
    listing = admin_client.get("/admin/predictor/modelversion/").content.decode()
    assert "6.39" in listing  # calibration's test split: it showed "-"
    bundled = ModelVersion.objects.get(name=ModelVersion.BUNDLED_NAME)
    assert bundled.test_mae == pytest.approx(6.389)


@pytest.mark.django_db
def test_the_worker_stores_interval_distribution_and_crop_with_the_real_network(client):
    from predictor import tasks
    from tests.datasets import sample_utkface

    photo, _ = images.face_photo(sample_utkface(1, seed=3))
    prediction = Prediction()
    prediction.image.save("p.jpg", ContentFile(images.encode(photo)), save=False)
    prediction.save()
    tasks.predict.run(str(prediction.pk))
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED, prediction.error_message
    face = prediction.faces.get()
    # Whole years: year y stands for [y - 0.5, y + 0.5) (the bundled 0.25-year class is 0).
    assert face.age_low - 0.5 <= face.age < face.age_high + 0.5
    assert len(face.distribution) == 101
    assert sum(face.distribution) == pytest.approx(1.0, abs=5e-3)
    with Image.open(io.BytesIO(bytes(face.chip_jpeg))) as chip:
        assert chip.size == (64, 64)


@pytest.mark.django_db
@pytest.mark.parametrize("labels", ["ages", "age_groups"])
def test_a_training_run_fits_and_stores_its_temperature(monkeypatch, tmp_path, settings, labels):
    """execute_run's wiring, with stand-ins for the chips, the fit and the baseline; for a
    dataset of exact ages and for one of age groups (decades, as FairFace labels them)."""
    from training import runner
    from training.models import Dataset, TrainingRun
    from training.pipeline import fit as fit_module
    from training.pipeline import tfrecords

    settings.FACEAGE_TRAINING_DIR = str(tmp_path / "runs")
    rng = np.random.default_rng(4)
    splits = {
        name: stand_in_split(rng, size, groups=labels == "age_groups")
        for name, size in (("train", 50), ("val", 300), ("test", 300))
    }

    class Network(_FakeNetwork):
        def save(self, path):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"stand-in model")
            return path

    manifest = {"counts": {"train": 50, "val": 300, "test": 300}, "how": {}}
    monkeypatch.setattr(
        runner, "prepare_chips", lambda dataset, progress=None, chip_size=64: (tmp_path, manifest)
    )
    monkeypatch.setattr(tfrecords, "load_split", lambda cache, manifest, name: splits[name])
    monkeypatch.setattr(
        fit_module,
        "fit",
        lambda *args, **kwargs: fit_module.FitResult(network=Network(1.0), best_val_mae=5.0),
    )
    monkeypatch.setattr(runner, "serving_network", lambda version: _FakeNetwork(1.0))
    dataset = Dataset.objects.create(name="d", kind="utkface", source="/tmp", status="succeeded")
    run = TrainingRun.objects.create(dataset=dataset, epochs=1, status="running")
    runner.execute_run(run)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error_message
    version = run.model_version
    calibration = version.metrics["calibration"]
    assert version.temperature > 1.0 and calibration["temperature"] == pytest.approx(
        version.temperature, abs=1e-4
    )
    assert calibration["before"]["coverage_80"] < calibration["after"]["coverage_80"]
    assert calibration["after"]["coverage_80"] == pytest.approx(0.8, abs=0.07)
    assert ("age groups" in calibration["fitted_on"]) == (labels == "age_groups")
    assert f"calibration: temperature {version.temperature:.3f}" in run.log
    assert ("in expectation" in run.log) == (labels == "age_groups")
    assert calibration["test_labels"] == labels
    if labels == "ages":
        assert "mae_children_0_12" in version.metrics
