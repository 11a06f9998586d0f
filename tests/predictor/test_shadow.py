"""Shadow runs: a candidate also estimates a share of uploads, stored apart, never shown to
the person, compared by staff (issue 12, item 4)."""

from __future__ import annotations

import uuid

import pytest
from django.core.files.base import ContentFile
from rest_framework.test import APIClient

from predictor import tasks
from predictor.live_accuracy import shadow_comparison
from predictor.models import AgeLabel, Face, ModelVersion, Prediction, ShadowEstimate
from tests import images
from tests.datasets import sample_utkface

pytestmark = pytest.mark.django_db


@pytest.fixture
def candidate():
    ModelVersion.active()  # the shipped default (faceage-v8)
    return ModelVersion.ensure_bundled()  # dlib-age-v1: a different network to compare


def test_one_candidate_at_a_time_and_promotion_ends_it(candidate):
    other = ModelVersion.objects.create(name="other", artifact="models/o.keras")
    candidate.start_shadow(0.2)
    assert ModelVersion.in_shadow() == candidate
    other.start_shadow(0.5)
    candidate.refresh_from_db()
    assert ModelVersion.in_shadow() == other and candidate.shadow_share == 0
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValueError):
            candidate.start_shadow(bad)
    with pytest.raises(ValueError):
        ModelVersion.active().start_shadow(0.2)  # the active model has nothing to shadow
    other.activate()
    other.refresh_from_db()
    assert other.shadow_share == 0 and ModelVersion.in_shadow() is None


def test_the_share_of_photos_is_fixed_by_their_ids(candidate):
    candidate.shadow_share = 0.2
    ids = [uuid.UUID(int=n * 7919 + 13) for n in range(2000)]
    chosen = [candidate.takes_photo_in_shadow(pk) for pk in ids]
    assert 0.17 < sum(chosen) / len(ids) < 0.23
    assert chosen == [candidate.takes_photo_in_shadow(pk) for pk in ids]  # the same again
    candidate.shadow_share = 1.0
    assert all(candidate.takes_photo_in_shadow(pk) for pk in ids[:50])


def stored_photo() -> Prediction:
    photo, _ = images.face_photo(sample_utkface(2, seed=11))
    prediction = Prediction()
    prediction.image.save("p.jpg", ContentFile(images.encode(photo)), save=False)
    prediction.save()
    return prediction


def test_the_worker_stores_the_candidates_ages_apart_and_shows_only_the_active_ones(
    candidate, user
):
    candidate.start_shadow(1.0)
    prediction = stored_photo()
    Prediction.objects.filter(pk=prediction.pk).update(owner=user)
    tasks.predict.run(str(prediction.pk))
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED, prediction.error_message
    assert prediction.model_version.name == ModelVersion.DEFAULT_NAME
    faces = list(prediction.faces.order_by("index"))
    shadows = {s.face_id: s for s in ShadowEstimate.objects.filter(model_version=candidate)}
    assert set(shadows) == {face.pk for face in faces} and len(faces) == 2
    assert any(abs(shadows[f.pk].age - f.age) > 0.01 for f in faces)  # another network
    client = APIClient()
    client.force_authenticate(user)
    shown = client.get(f"/api/v1/predictions/{prediction.pk}/").json()
    assert [face["age"] for face in shown["faces"]] == [face.age for face in faces]
    assert "shadow" not in str(shown).lower()  # nothing of the candidate reaches the person
    # The shadow run ends: the next task lets the worker drop the candidate's network.
    import predictor.serving

    assert predictor.serving._shadow["version_id"] == candidate.pk
    ModelVersion.objects.filter(pk=candidate.pk).update(shadow_share=0.0)
    tasks.predict.run(str(stored_photo().pk))
    assert predictor.serving._shadow["estimator"] is None


def test_a_failing_shadow_never_fails_the_persons_prediction(candidate, monkeypatch):
    import predictor.serving

    def broken(*args):
        raise RuntimeError("the candidate's file is damaged")

    monkeypatch.setattr(predictor.serving, "shadow_estimator_for", broken)
    candidate.start_shadow(1.0)
    prediction = stored_photo()
    tasks.predict.run(str(prediction.pk))
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED and prediction.faces.count() == 2
    assert not ShadowEstimate.objects.exists()


def test_staff_compare_the_two_on_the_same_faces_and_on_labels(candidate, user, admin_user):
    for active_age, shadow_age, real in [(30, 32, 33), (40, 50, None), (20, 21, 25)]:
        prediction = Prediction.objects.create(owner=user, status=Prediction.Status.SUCCEEDED)
        face = Face.objects.create(prediction=prediction, index=0, left=0, top=0, right=9,
                                   bottom=9, age=active_age, age_std=3)  # fmt: skip
        ShadowEstimate.objects.create(face=face, model_version=candidate, age=shadow_age, age_std=3)
        if real is not None:
            AgeLabel.give(face, user, real, consent=False)
    report = shadow_comparison(candidate)
    assert report["count"] == 3
    assert report["mean_abs_difference"] == pytest.approx((2 + 10 + 1) / 3, abs=0.01)
    assert report["agreement"] == pytest.approx(2 / 3, abs=0.001)
    assert report["labelled"] == {"count": 2, "shadow_mae": 2.5, "active_mae": 4.0}
    staff = APIClient()
    staff.force_authenticate(admin_user)
    body = staff.get(f"/api/v1/models/{candidate.name}/live-accuracy/").json()
    assert body["shadow"]["labelled"]["shadow_mae"] == 2.5


def test_the_admin_starts_and_ends_a_shadow_run(candidate, admin_client):
    changelist = "/admin/predictor/modelversion/"
    admin_client.post(changelist, {"action": "shadow", "_selected_action": [candidate.pk]})
    candidate.refresh_from_db()
    assert candidate.shadow_share == 0.2
    page = admin_client.get(f"/models/{candidate.name}/").content.decode()
    assert "Runs in shadow on 20% of uploads" in page
    admin_client.post(changelist, {"action": "end_shadow", "_selected_action": [candidate.pk]})
    candidate.refresh_from_db()
    assert candidate.shadow_share == 0
