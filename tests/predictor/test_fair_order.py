"""One person's many photos cannot make another's photo wait behind all of them, and a
photo's cost is bounded before a worker takes it (issue 13, item 1)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from predictor import tasks
from predictor.models import Prediction
from tests import images

pytestmark = pytest.mark.django_db

Status = Prediction.Status
START = timezone.now() - timedelta(minutes=10)


def queued(label: str, second: int, size=(200, 200), **owner) -> Prediction:
    prediction = Prediction(
        original_name=label,
        created_at=START + timedelta(seconds=second),
        width=size[0],
        height=size[1],
        **owner,
    )
    prediction.image.save("x.jpg", ContentFile(b"\xff\xd8not decoded here"), save=False)
    prediction.save()
    return prediction


def names(rows) -> list[str]:
    return [row.original_name for row in rows]


def test_the_queue_runs_round_robin_between_owners(user, other_user):
    for n in range(1, 6):
        queued(f"alice{n}", n, owner=user)
    queued("visitor1", 10, anonymous_owner="session-b")
    queued("bob1", 11, owner=other_user)
    queued("bob2", 12, owner=other_user)
    queued("visitor-c1", 13, anonymous_owner="session-c")
    Prediction.objects.filter(original_name="alice1").update(
        status=Status.SUCCEEDED, started_at=timezone.now()
    )

    order = tasks.in_fair_order(Prediction.objects.filter(status=Status.QUEUED), 20)
    assert [Prediction.objects.get(pk=pk).original_name for pk in order] == [
        "visitor1", "bob1", "visitor-c1", "alice2", "bob2", "alice3", "alice4", "alice5",
    ]  # fmt: skip


def test_a_small_photo_waits_for_one_of_a_heavy_batch_not_all_of_it(user, other_user, settings):
    """Twenty queue messages for A's photos arrive before B's one; each message runs the
    photo whose turn it is, so B's runs second, and every photo runs exactly once."""
    settings.FACEAGE_INFERENCE_BATCH_SIZE = 1
    heavy = [queued(f"a{n}", n, size=(6000, 6000), owner=user) for n in range(20)]
    small = queued("b", 30, owner=other_user)

    ran = []
    for message in [*heavy, small]:  # the broker's order: upload order
        claimed = tasks.claim_next(message.pk)
        assert claimed is not None, f"message for {message.original_name} ran nothing"
        ran.append(claimed.original_name)
        Prediction.objects.filter(pk=claimed.pk).update(status=Status.SUCCEEDED)

    assert ran.index("b") == 1
    assert sorted(ran) == sorted(names([*heavy, small]))  # none skipped, none twice
    assert not Prediction.objects.exclude(status=Status.SUCCEEDED).exists()


def test_a_message_whose_photo_already_ran_runs_nothing_when_the_queue_is_empty(user):
    prediction = queued("only", 1, owner=user)
    assert tasks.claim_next(prediction.pk).pk == prediction.pk
    Prediction.objects.filter(pk=prediction.pk).update(status=Status.SUCCEEDED)
    assert tasks.claim_next(prediction.pk) is None


def test_a_batch_is_filled_in_turn_too(user, other_user, settings):
    first = queued("a0", 0, owner=user)
    for n in range(1, 6):
        queued(f"a{n}", n, owner=user)
    queued("b0", 20, owner=other_user)
    claimed = tasks.claim_next(first.pk)
    assert claimed.original_name == "a0"
    # A has one photo running now, so B's waiting photo comes before A's next.
    assert names(tasks.claim_waiting(claimed, 1)) == ["b0"]


def upload(api_client, size, colour=(90, 120, 150)):
    data = images.encode(Image.new("RGB", size, colour), "PNG")
    return api_client.post(
        "/api/v1/predictions/",
        {"image": SimpleUploadedFile("big.png", data, "image/png")},
        format="multipart",
    )


def test_a_huge_photo_is_stored_at_the_working_side(api_client, enqueued, settings):
    settings.FACEAGE_MAX_WORKING_SIDE = 1000
    response = upload(api_client, (3000, 1800))
    assert response.status_code == 202, response.content
    prediction = Prediction.objects.get(pk=response.json()["id"])
    assert (prediction.width, prediction.height) == (1000, 600)
    with prediction.image.open("rb") as stored, Image.open(stored) as copy:
        assert copy.size == (1000, 600)


def test_a_photo_within_the_working_side_is_stored_whole(api_client, enqueued, settings):
    settings.FACEAGE_MAX_WORKING_SIDE = 1000
    response = upload(api_client, (1000, 400))
    prediction = Prediction.objects.get(pk=response.json()["id"])
    assert (prediction.width, prediction.height) == (1000, 400)
