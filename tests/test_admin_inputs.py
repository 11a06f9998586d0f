"""The admin answers bad values in its URLs and forms as it answers other bad lookups, never
with a 500: a year no date can have, in a change list's filter, gets Django's "?e=1" page;
an action on ids that are not the model's ids is refused with a message, and changes
nothing."""

from __future__ import annotations

import pytest

from training.models import Dataset, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/admin/predictor/prediction/?created_at__year=99999999999999999999",
        "/admin/predictor/modelversion/?created_at__year=0",
        "/admin/training/trainingrun/?created_at__year=-1",
        "/admin/predictor/agelabel/?created_at__year=0",
    ],
)
def test_a_year_no_date_can_have_is_the_admins_bad_lookup_page(admin_client, path):
    response = admin_client.get(path)
    assert response.status_code == 302 and response["Location"].endswith("?e=1")


@pytest.mark.parametrize("selected", ["abc", "\x00", "99999999999999999999"])
def test_an_action_on_ids_that_are_not_ids_changes_nothing(admin_client, selected):
    dataset = Dataset.objects.create(name="d", kind="utkface", source="/d", status="succeeded")
    run = TrainingRun.objects.create(dataset=dataset)
    refused = admin_client.post(
        "/admin/training/trainingrun/",
        {"action": "cancel", "_selected_action": [str(run.pk), selected], "index": "0"},
        follow=True,
    )
    assert refused.status_code == 200
    assert "not in the list" in refused.content.decode()
    assert TrainingRun.objects.get(pk=run.pk).status == run.status
    # The same action on the run alone goes through.
    admin_client.post(
        "/admin/training/trainingrun/",
        {"action": "cancel", "_selected_action": [str(run.pk)], "index": "0"},
    )
    assert TrainingRun.objects.get(pk=run.pk).status != run.status
