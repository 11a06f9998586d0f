"""The inference task with the real network, in this process: faces stored once, and a newly
promoted model version used on the next task without a restart."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from predictor import tasks
from predictor.models import ModelVersion, Prediction
from tests import images
from tests.datasets import sample_utkface

pytestmark = pytest.mark.django_db


def stored_prediction(photo_bytes: bytes) -> Prediction:
    prediction = Prediction()
    prediction.image.save("p.jpg", ContentFile(photo_bytes), save=False)
    prediction.save()
    return prediction


@pytest.fixture
def two_face_photo():
    photo, boxes = images.face_photo(sample_utkface(2, seed=11))
    return images.encode(photo), boxes


def test_a_photo_is_estimated_once_even_when_delivered_twice(two_face_photo):
    data, expected_boxes = two_face_photo
    prediction = stored_prediction(data)
    tasks.predict.run(str(prediction.pk))
    tasks.predict.run(str(prediction.pk))  # a redelivered message
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED, prediction.error
    assert prediction.attempts == 1
    assert prediction.faces.count() == 2
    for face, expected in zip(prediction.faces.order_by("left"), expected_boxes, strict=True):
        centre_x, centre_y = (face.left + face.right) / 2, (face.top + face.bottom) / 2
        assert expected[0] < centre_x < expected[2] and expected[1] < centre_y < expected[3]
        assert 0 <= face.age <= 100 and face.age_std > 0


def test_a_newly_promoted_version_serves_the_next_task(two_face_photo, media_root):
    from predictor.vision.age_network import AgeNetwork
    from training.pipeline.fit import CLASS_AGES, build_training_model

    data, _ = two_face_photo
    first = stored_prediction(data)
    tasks.predict.run(str(first.pk))
    bundled_ages = sorted(first.faces.values_list("age", flat=True))

    # A different (untrained, 101-class) network, stored like a training run stores one.
    path = media_root / "models" / "other.keras"
    path.parent.mkdir(parents=True)
    AgeNetwork(build_training_model("scratch"), CLASS_AGES).save(path)
    other = ModelVersion.objects.create(name="other", artifact="models/other.keras")
    other.activate()

    second = stored_prediction(data)
    tasks.predict.run(str(second.pk))
    second.refresh_from_db()
    first.refresh_from_db()
    assert first.model_version.name == "dlib-age-v1"
    assert second.model_version == other
    assert sorted(second.faces.values_list("age", flat=True)) != pytest.approx(
        bundled_ages, abs=0.5
    )
    assert ModelVersion.objects.filter(is_active=True).count() == 1
