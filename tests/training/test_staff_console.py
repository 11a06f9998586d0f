"""The staff console (/staff/): the active model and the candidates side by side, Promote
(with a written reason where the gate found a regression) and Roll back."""

from __future__ import annotations

import pytest

from predictor.models import ModelVersion
from training.models import Dataset, TrainingRun

pytestmark = pytest.mark.django_db


def metrics(mae: float, children: float, regressions: list | None = None) -> dict:
    return {
        "dataset": "utk",
        "mae": mae,
        "cs5": 0.6,
        "count": 100,
        "mae_children_0_12": children,
        "mae_by_decade": {
            "0-9": {"mae": children, "count": 10},
            "20-29": {"mae": mae, "count": 50},
            "70-79": {"mae": 9.0, "count": 3},
            "80-89": {"mae": 13.0, "count": 1},
        },
        "gate": {"active_model": "faceage-v2", "regressions": regressions or []},
    }


@pytest.fixture
def staff_client(client, django_user_model):
    staff = django_user_model.objects.create_superuser("boss", password="long-staff-pass-1")
    client.force_login(staff)
    return client


@pytest.fixture
def candidates():
    good = ModelVersion.objects.create(
        name="good-run", artifact="models/good.keras", metrics=metrics(4.8, 2.5)
    )
    regression = {
        "benchmark": "fairface-val",
        "metric": "accuracy",
        "candidate": 0.4,
        "active": 0.5,
    }
    worse = ModelVersion.objects.create(
        name="worse-run", artifact="models/worse.keras", metrics=metrics(4.5, 5.9, [regression])
    )
    return good, worse


def test_only_staff_who_may_change_models_see_the_console(client, user, django_user_model):
    assert client.get("/staff/").status_code == 302
    client.force_login(user)
    response = client.get("/staff/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    # Staff without the permission the admin's Promote needs: refused, and no header link.
    helper = django_user_model.objects.create_user(
        "helper", password="x-long-pass-4", is_staff=True
    )
    client.force_login(helper)
    assert client.get("/staff/").status_code == 403
    assert client.post("/staff/roll-back/").status_code == 403
    assert 'href="/staff/"' not in client.get("/").content.decode()


def test_the_console_shows_the_active_model_the_candidates_and_the_runs(staff_client, candidates):
    dataset = Dataset.objects.create(name="utk", kind=Dataset.Kind.UTKFACE, status="succeeded")
    TrainingRun.objects.create(dataset=dataset, status=TrainingRun.Status.RUNNING, progress=0.4)
    html = staff_client.get("/staff/").content.decode()
    assert ModelVersion.DEFAULT_NAME in html and "good-run" in html and "worse-run" in html
    assert "4.80" in html and "2.50" in html  # MAE and children's MAE side by side
    # The per-decade chart: 70+ pools 70-79 and 80-89 by their counts (3 x 9 + 1 x 13) / 4.
    assert "70+ 10.0" in html
    assert "Worse than the active model on: fairface-val (accuracy)" in html
    assert 'id="reason-' in html  # the reason box, for the candidate with a regression only
    assert html.count('name="reason"') == 1
    assert 'value="0.4"' in html and "Training run" in html
    assert "/admin/training/trainingrun/start/" in html  # Train a new model


def test_promote_and_roll_back(staff_client, candidates):
    good, _ = candidates
    before = ModelVersion.active()
    response = staff_client.post(f"/staff/models/{good.name}/promote/", follow=True)
    assert "good-run is now active." in response.content.decode()
    assert ModelVersion.active() == good
    page = staff_client.get("/staff/").content.decode()
    assert f'name="from" value="{good.name}"' in page  # the active version the page shows
    response = staff_client.post("/staff/roll-back/", {"from": good.name}, follow=True)
    assert f"Rolled back: {before.name} is active again." in response.content.decode()
    assert ModelVersion.active() == before
    # The same click again (a double click, or a second person with the same page) finds
    # it done, and does not flip back.
    again = staff_client.post("/staff/roll-back/", {"from": good.name}, follow=True)
    assert f"Nothing changed: {before.name} is the active version now" in again.content.decode()
    assert ModelVersion.active() == before


def test_a_candidate_with_a_regression_needs_a_written_reason(staff_client, candidates):
    _, worse = candidates
    refused = staff_client.post(f"/staff/models/{worse.name}/promote/", {"reason": "  "})
    assert refused.status_code == 302 and refused["Location"].endswith(f"#candidate-{worse.pk}")
    assert not ModelVersion.objects.get(pk=worse.pk).is_active
    staff_client.post(
        f"/staff/models/{worse.name}/promote/", {"reason": "children fixed in the next run"}
    )
    worse.refresh_from_db()
    assert worse.is_active and worse.promotion_override == "children fixed in the next run"


def test_a_nul_in_the_written_reason_is_not_stored(staff_client, candidates):
    """PostgreSQL refuses a NUL in text (a 500 there); a reason of NULs alone is none."""
    _, worse = candidates
    staff_client.post(f"/staff/models/{worse.name}/promote/", {"reason": "\x00\x00"})
    assert not ModelVersion.objects.get(pk=worse.pk).is_active
    staff_client.post(f"/staff/models/{worse.name}/promote/", {"reason": "fixed\x00 soon"})
    worse.refresh_from_db()
    assert worse.is_active and worse.promotion_override == "fixed soon"


def test_nothing_to_roll_back_to_says_so(staff_client):
    ModelVersion.objects.exclude(is_active=True).update(activated_at=None)
    active = ModelVersion.active().name
    response = staff_client.post("/staff/roll-back/", {"from": active}, follow=True)
    assert "No earlier active version to roll back to." in response.content.decode()


def test_the_admins_roll_back_names_the_version_it_leaves(admin_client, candidates):
    good, _ = candidates
    before = ModelVersion.active()
    good.promote()

    def roll_back(version):
        return admin_client.post(
            "/admin/predictor/modelversion/",
            {"action": "roll_back", "_selected_action": [str(version.pk)]},
            follow=True,
        ).content.decode()

    assert f"Rolled back: {before.name} is active again." in roll_back(good)
    assert "is not the active version, so nothing was rolled back" in roll_back(good)
    assert ModelVersion.active() == before
