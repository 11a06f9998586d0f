"""Live accuracy per model version against the real ages people gave (issue 12, item 3)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.files.base import ContentFile
from rest_framework.test import APIClient

from predictor.live_accuracy import live_accuracy
from predictor.models import AgeLabel, Face, ModelVersion, Prediction

pytestmark = pytest.mark.django_db

MONDAY = datetime(2026, 11, 23, 12, tzinfo=UTC)  # a Monday
NEXT_WEDNESDAY = datetime(2026, 12, 2, 12, tzinfo=UTC)


def labelled(version, owner, estimated: float, real: int, uploaded: datetime, consent=False):
    prediction = Prediction(
        owner=owner, status=Prediction.Status.SUCCEEDED, model_version=version,
        created_at=uploaded,
    )  # fmt: skip
    prediction.image.save("p.jpg", ContentFile(b"\xff\xd8x"), save=False)
    prediction.save()
    face = Face.objects.create(prediction=prediction, index=0, left=0, top=0, right=9, bottom=9,
                               age=estimated, age_std=3)  # fmt: skip
    return AgeLabel.give(face, owner, real, consent)


@pytest.fixture
def version():
    return ModelVersion.objects.create(
        name="live-v", artifact="models/live-v.keras", metrics={"mae": 4.0}
    )


def test_figures_per_week_and_decade_with_bias(version, user):
    labelled(version, user, 30.0, 34, MONDAY)  # -4
    labelled(version, user, 40.0, 32, MONDAY, consent=True)  # +8: consent does not matter
    labelled(version, user, 10.0, 9, NEXT_WEDNESDAY)  # +1
    other = ModelVersion.objects.create(name="other", artifact="models/o.keras")
    labelled(other, user, 90.0, 20, MONDAY)  # another version's face: not counted
    report = live_accuracy(version)
    assert report["overall"] == {"count": 3, "mae": 4.33, "cs5": 0.667, "bias": 1.67}
    assert report["by_week"] == {
        "2026-11-23": {"count": 2, "mae": 6.0, "cs5": 0.5, "bias": 2.0},
        "2026-11-30": {"count": 1, "mae": 1.0, "cs5": 1.0, "bias": 1.0},
    }
    assert list(report["by_decade"]) == ["0-9", "30-39"]
    assert report["by_decade"]["30-39"]["bias"] == 2.0
    assert report["test_mae"] == 4.0 and report["drift"] is None


def test_drift_is_flagged_only_with_enough_labels(version, user, settings):
    settings.FACEAGE_LIVE_MIN_LABELS = 3
    settings.FACEAGE_LIVE_DRIFT_MARGIN = 2.0
    for real in (20, 30):
        labelled(version, user, real + 9.0, real, MONDAY)  # MAE 9 against a test MAE of 4
    assert live_accuracy(version)["drift"] is None  # 2 labels: too few to say
    labelled(version, user, 59.0, 50, MONDAY)
    assert live_accuracy(version)["drift"] == 5.0


def test_the_api_gives_it_to_staff_only(version, user, admin_user):
    labelled(version, user, 30.0, 34, MONDAY)
    url = f"/api/v1/models/{version.name}/live-accuracy/"
    assert APIClient().get(url).status_code == 401
    member = APIClient()
    member.force_authenticate(user)
    assert member.get(url).status_code == 403
    staff = APIClient()
    staff.force_authenticate(admin_user)
    body = staff.get(url).json()
    assert body["overall"]["count"] == 1 and body["overall"]["bias"] == -4.0


def test_the_model_page_shows_it_to_staff_with_the_drift_warning(version, user, client, settings):
    settings.FACEAGE_LIVE_MIN_LABELS = 1
    labelled(version, user, 40.0, 30, MONDAY)
    client.force_login(user)
    assert "Live accuracy" not in client.get(f"/models/{version.name}/").content.decode()
    user.is_staff = True
    user.save()
    page = client.get(f"/models/{version.name}/").content.decode()
    assert "Live accuracy" in page and "Drifting" in page and "2026-11-23" in page
    assert "<svg" in page  # the per-decade chart, people's labels beside the test split
