"""Batches: several photos or a zip in one upload (API and form), the cap, zip safety,
per-file errors, the owner check on the batch endpoint, and the upload rate per photo."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from predictor.models import Batch, Prediction
from tests import images

pytestmark = pytest.mark.django_db

URL = "/api/v1/predictions/"


def jpeg_bytes(size=(160, 120), colour=(90, 120, 150)) -> bytes:
    return images.encode(Image.new("RGB", size, colour))


def jpeg(name="photo.jpg", size=(160, 120)) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, jpeg_bytes(size), "image/jpeg")


def zip_upload(members: dict[str, bytes], name="photos.zip", **kwargs) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data, **kwargs)
    return SimpleUploadedFile(name, buffer.getvalue(), "application/zip")


def batch_error(response, status, code):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


def test_several_image_parts_make_a_batch(api_client, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            URL, {"image": [jpeg("a.jpg"), jpeg("b.jpg"), jpeg("c.jpg")]}, format="multipart"
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert set(body) == {"batch", "predictions", "errors"}
    assert body["errors"] == []
    assert [p["name"] for p in body["predictions"]] == ["a.jpg", "b.jpg", "c.jpg"]
    assert all(p["status"] == "queued" for p in body["predictions"])
    batch = Batch.objects.get(pk=body["batch"]["id"])
    assert response["Location"] == body["batch"]["url"]
    assert body["batch"]["url"].endswith(f"/api/v1/batches/{batch.pk}/")
    assert sorted(enqueued) == sorted(p["id"] for p in body["predictions"])
    assert set(batch.predictions.values_list("original_name", flat=True)) == {
        "a.jpg",
        "b.jpg",
        "c.jpg",
    }
    # The batch endpoint: counts, done flag, and each prediction.
    detail = api_client.get(body["batch"]["url"]).json()
    assert detail["total"] == 3
    assert detail["counts"] == {"queued": 3, "running": 0, "succeeded": 0, "failed": 0}
    assert detail["done"] is False
    assert len(detail["predictions"]) == 3
    Prediction.objects.filter(batch=batch).update(status=Prediction.Status.SUCCEEDED)
    detail = api_client.get(body["batch"]["url"]).json()
    assert detail["done"] is True
    assert detail["counts"]["succeeded"] == 3


def test_single_image_keeps_the_single_response(api_client, enqueued):
    response = api_client.post(URL, {"image": jpeg()}, format="multipart")
    assert response.status_code == 202
    assert set(response.json()) == {"id", "status", "url"}
    assert Batch.objects.count() == 0


def test_zip_batch_in_archive_part_and_in_image_part(api_client, enqueued):
    members = {
        "one.jpg": jpeg_bytes(),
        "sub/two.png": images.encode(Image.new("RGB", (64, 64)), "PNG"),
    }
    for field in ("archive", "image"):
        response = api_client.post(URL, {field: zip_upload(members)}, format="multipart")
        assert response.status_code == 202, response.content
        body = response.json()
        assert sorted(p["name"] for p in body["predictions"]) == ["one.jpg", "two.png"]
        assert body["errors"] == []
    assert Batch.objects.count() == 2
    assert Prediction.objects.count() == 4


def test_bad_files_are_listed_and_good_ones_kept(api_client, enqueued):
    members = {
        "good.jpg": jpeg_bytes(),
        "notes.txt": b"just some text",
        "../escape.jpg": jpeg_bytes(),
        "inner.zip": zip_upload({"x.jpg": jpeg_bytes()}).read(),
        "tiny.jpg": jpeg_bytes(size=(8, 8)),
    }
    response = api_client.post(URL, {"archive": zip_upload(members)}, format="multipart")
    assert response.status_code == 202, response.content
    body = response.json()
    assert [p["name"] for p in body["predictions"]] == ["good.jpg"]
    errors = {error["name"]: error for error in body["errors"]}
    assert set(errors) == {"notes.txt", "../escape.jpg", "inner.zip", "tiny.jpg"}
    assert errors["notes.txt"]["code"] == "not_an_image"
    assert errors["../escape.jpg"]["code"] == "unsafe_path"
    assert errors["inner.zip"]["code"] == "nested_archive"
    assert errors["tiny.jpg"]["code"] == "image_too_small"
    assert all(error["message"] for error in errors.values())
    assert Prediction.objects.count() == 1


def test_multipart_batch_reports_the_bad_part_by_name(api_client, enqueued):
    bad = SimpleUploadedFile("broken.jpg", b"\xff\xd8\xff\xe0 not really", "image/jpeg")
    response = api_client.post(URL, {"image": [jpeg("ok.jpg"), bad]}, format="multipart")
    assert response.status_code == 202, response.content
    body = response.json()
    assert [p["name"] for p in body["predictions"]] == ["ok.jpg"]
    assert [e["name"] for e in body["errors"]] == ["broken.jpg"]


def test_no_usable_file_rejects_the_batch_with_every_reason(api_client, enqueued):
    response = api_client.post(
        URL, {"archive": zip_upload({"a.txt": b"text", "b.txt": b"more"})}, format="multipart"
    )
    error = batch_error(response, 400, "no_usable_images")
    assert [f["name"] for f in error["files"]] == ["a.txt", "b.txt"]
    assert "a.txt" in error["message"]
    assert Batch.objects.count() == 0 and Prediction.objects.count() == 0


def test_cap_on_parts_and_on_zip_members(api_client, enqueued, settings):
    settings.FACEAGE_BATCH_MAX_FILES = 2
    parts = [jpeg(f"{i}.jpg") for i in range(3)]
    error = batch_error(
        api_client.post(URL, {"image": parts}, format="multipart"), 413, "too_many_files"
    )
    assert "3" in error["message"] and "2" in error["message"]
    members = {f"{i}.jpg": jpeg_bytes() for i in range(3)}
    response = api_client.post(URL, {"archive": zip_upload(members)}, format="multipart")
    batch_error(response, 413, "too_many_files")
    assert Prediction.objects.count() == 0
    # At the cap is fine.
    response = api_client.post(URL, {"image": [jpeg("0.jpg"), jpeg("1.jpg")]}, format="multipart")
    assert response.status_code == 202


def test_more_parts_than_django_parses_get_the_caps_message(client, api_client, settings):
    """Past DATA_UPLOAD_MAX_NUMBER_FILES Django stops parsing before our cap is checked:
    the answer is still the cap's 413, in the API's error shape or on the error page."""
    settings.FACEAGE_BATCH_MAX_FILES = 2
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    parts = [jpeg(f"{i}.jpg") for i in range(5)]
    error = batch_error(
        api_client.post(URL, {"image": parts}, format="multipart"), 413, "too_many_files"
    )
    assert "more than 3 files" in error["message"] and "at most 2" in error["message"]
    response = client.post("/", {"image": [jpeg(f"{i}.jpg") for i in range(5)]})
    assert response.status_code == 413
    assert "more than 3 files" in response.content.decode()
    assert Prediction.objects.count() == 0


def test_zip_bomb_is_refused_before_unpacking(api_client, enqueued, settings):
    settings.FACEAGE_BATCH_MAX_FILES = 2
    settings.FACEAGE_MAX_UPLOAD_BYTES = 64 * 1024
    # 1 MB of zeros compresses to about 1 KB; two of them exceed 2 x 64 KB unpacked.
    bomb = zip_upload({"a.jpg": bytes(1024 * 1024), "b.jpg": bytes(1024 * 1024)})
    assert bomb.size < 16 * 1024
    error = batch_error(
        api_client.post(URL, {"archive": bomb}, format="multipart"), 413, "archive_too_large"
    )
    assert "MB" in error["message"]
    assert Prediction.objects.count() == 0


def test_member_over_the_per_file_limit_is_skipped(api_client, enqueued, settings):
    settings.FACEAGE_MAX_UPLOAD_BYTES = 64 * 1024
    members = {"big.jpg": bytes(100 * 1024), "ok.jpg": jpeg_bytes()}
    body = api_client.post(URL, {"archive": zip_upload(members)}, format="multipart").json()
    assert [p["name"] for p in body["predictions"]] == ["ok.jpg"]
    assert [(e["name"], e["code"]) for e in body["errors"]] == [("big.jpg", "file_too_large")]


def test_encrypted_and_damaged_archives(api_client, enqueued):
    archive = zip_upload({"a.jpg": jpeg_bytes()})
    raw = bytearray(archive.read())
    # Set the "encrypted" flag bit in the local and central headers.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.find(signature)
        raw[at + offset] |= 0x1
    encrypted = SimpleUploadedFile("secret.zip", bytes(raw), "application/zip")
    error = batch_error(
        api_client.post(URL, {"archive": encrypted}, format="multipart"), 400, "encrypted_archive"
    )
    assert "secret.zip" in error["message"]
    damaged = SimpleUploadedFile("damaged.zip", b"PK\x03\x04" + b"\x00" * 40, "application/zip")
    batch_error(api_client.post(URL, {"archive": damaged}, format="multipart"), 400, "bad_archive")
    # A zip declaring a format version zipfile cannot read (7.0) raised NotImplementedError.
    newer = bytearray(zip_upload({"a.jpg": jpeg_bytes()}).read())
    newer[newer.rfind(b"PK\x01\x02") + 6] = 70
    for part in ("archive", "image"):
        upload = SimpleUploadedFile("newer.zip", bytes(newer), "application/zip")
        error = batch_error(
            api_client.post(URL, {part: upload}, format="multipart"), 400, "bad_archive"
        )
        assert "newer.zip" in error["message"]
    assert not Prediction.objects.exists() and not enqueued


def test_batch_endpoint_is_owner_checked(api_client, enqueued, user, other_user):
    api_client.force_authenticate(user)
    created = api_client.post(URL, {"image": [jpeg("a.jpg"), jpeg("b.jpg")]}, format="multipart")
    url = created.json()["batch"]["url"]
    assert api_client.get(url).status_code == 200
    api_client.force_authenticate(other_user)
    assert api_client.get(url).status_code == 404
    api_client.force_authenticate(None)
    assert api_client.get(url).status_code == 404
    # An anonymous visitor's batch belongs to its session only.
    from rest_framework.test import APIClient

    anonymous = APIClient()
    anon_url = anonymous.post(URL, {"image": [jpeg(), jpeg()]}, format="multipart").json()
    anon_url = anon_url["batch"]["url"]
    assert anonymous.get(anon_url).status_code == 200
    assert APIClient().get(anon_url).status_code == 404
    api_client.force_authenticate(user)
    assert api_client.get(anon_url).status_code == 404


def test_each_photo_counts_against_the_upload_rate(api_client, enqueued, settings):
    settings.FACEAGE_UPLOAD_RATE = "3/minute"
    response = api_client.post(URL, {"image": [jpeg(), jpeg()]}, format="multipart")
    assert response.status_code == 202
    # One left: a batch of two is refused whole, with nothing created.
    before = Prediction.objects.count()
    response = api_client.post(URL, {"image": [jpeg(), jpeg()]}, format="multipart")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert Prediction.objects.count() == before


def test_form_with_several_files_shows_the_batch_page(client, enqueued):
    response = client.post("/", {"image": [jpeg("a.jpg"), jpeg("b.jpg")]})
    assert response.status_code == 302
    batch = Batch.objects.get()
    assert response["Location"] == f"/batch/{batch.pk}/"
    page = client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    for prediction in batch.predictions.all():
        assert f"/p/{prediction.pk}/" in html
    assert "a.jpg" in html and "b.jpg" in html
    assert 'data-api-url="/api/v1/batches/' in html
    # Someone else's browser cannot see it.
    from django.test import Client

    assert Client().get(response["Location"]).status_code == 404


def test_form_with_one_file_still_goes_to_the_result(client, enqueued):
    response = client.post("/", {"image": jpeg("solo.jpg")})
    assert response.status_code == 302
    assert response["Location"].startswith("/p/")
    assert Batch.objects.count() == 0


def test_form_batch_lists_skipped_files_and_cap(client, enqueued, settings):
    bad = SimpleUploadedFile("notes.txt", b"hello", "text/plain")
    response = client.post("/", {"image": [jpeg("a.jpg"), bad]}, follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "notes.txt" in html and "a.jpg" in html
    settings.FACEAGE_BATCH_MAX_FILES = 1
    response = client.post("/", {"image": [jpeg("a.jpg"), jpeg("b.jpg")]})
    assert response.status_code == 413
    assert "at most 1" in response.content.decode()


def test_upload_page_offers_several_files_and_a_hidden_camera(client):
    html = client.get("/").content.decode()
    assert 'type="file"' in html and "multiple" in html
    assert ".zip" in html
    # The camera block stays hidden until upload.js finds getUserMedia on a secure page,
    # so without JavaScript or a camera only the file picker shows.
    assert '<div id="camera" class="camera" hidden>' in html
    assert 'id="camera-open"' in html and 'id="camera-take"' in html
    assert 'id="camera-photo" alt="' in html


def test_form_batch_counts_each_photo_against_the_upload_rate(client, enqueued, settings):
    settings.FACEAGE_UPLOAD_RATE = "3/minute"
    response = client.post("/", {"image": [jpeg("a.jpg"), jpeg("b.jpg"), jpeg("c.jpg")]})
    assert response.status_code == 302
    response = client.post("/", {"image": jpeg("d.jpg")})
    assert response.status_code == 429
    assert response["Retry-After"]
    assert Prediction.objects.count() == 3


def test_batch_page_and_endpoint_of_an_unknown_id_are_404(client, api_client):
    missing = "00000000-0000-4000-8000-000000000000"
    assert client.get(f"/batch/{missing}/").status_code == 404
    response = api_client.get(f"/api/v1/batches/{missing}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_an_anonymous_batch_follows_its_photos_to_the_account(client, enqueued, user):
    response = client.post("/", {"image": [jpeg("a.jpg"), jpeg("b.jpg")]})
    batch_url = response["Location"]
    client.post("/accounts/login/", {"username": "alice", "password": "correct-horse-9"})
    assert client.get(batch_url).status_code == 200
    assert Batch.objects.get().owner == user


def test_delete_all_removes_the_batches_too(client, api_client, enqueued, user):
    client.post("/", {"image": [jpeg("a.jpg"), jpeg("b.jpg")]})
    assert Batch.objects.count() == 1
    client.post("/history/delete-all/")
    assert Batch.objects.count() == 0 and Prediction.objects.count() == 0
    api_client.force_authenticate(user)
    api_client.post(URL, {"image": [jpeg("a.jpg"), jpeg("b.jpg")]}, format="multipart")
    assert api_client.delete(f"{URL}all/").status_code == 204
    assert Batch.objects.count() == 0 and Prediction.objects.count() == 0


def test_a_zip_is_unpacked_one_photo_at_a_time(rf, settings):
    """A zip of zero-filled entries (a 206 KB request unpacked to 200 MB in memory) holds one
    entry in memory at a time: the peak allocation stays near one entry, not the sum."""
    import tracemalloc

    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore

    from predictor.archives import BatchRejected, collect_batch_files, create_batch

    entry = 2 * 1024 * 1024
    settings.FACEAGE_MAX_UPLOAD_BYTES = entry
    upload = zip_upload({f"zeros-{n}.jpg": bytes(entry) for n in range(8)})
    assert upload.size < 100_000
    request = rf.post(URL)
    request.user = AnonymousUser()
    request.session = SessionStore()
    tracemalloc.start()
    try:
        with pytest.raises(BatchRejected) as rejected:
            create_batch(request, collect_batch_files([upload]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rejected.value.code == "no_usable_images"
    assert [problem.code for problem in rejected.value.problems] == ["not_an_image"] * 8
    assert peak < 3 * entry, f"peak {peak / entry:.1f} entries held at once"


def test_a_web_process_decodes_only_so_many_photos_at_once(rf, monkeypatch):
    """Sixteen threads uploading big photos at once hold at most FACEAGE_DECODES_PER_PROCESS
    decoded photos between them: the others wait for a slot."""
    import threading
    import time

    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore

    import predictor.uploads as uploads

    lock, inside, most = threading.Lock(), [0], [0]

    def counting(real):
        def decode(*args):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            try:
                time.sleep(0.05)  # long enough for the other threads to pile up at the door
                return real(*args)
            finally:
                with lock:
                    inside[0] -= 1

        return decode

    from django.conf import settings

    # The process's own semaphore is sized by the setting (2 by default) ...
    assert uploads._decoding._initial_value == settings.FACEAGE_DECODES_PER_PROCESS == 2
    # Both ways a photo is decoded: a JPEG kept as it was compressed, and any other decoded at
    # full size (half of the uploads each).
    monkeypatch.setattr(uploads, "load_photo", counting(uploads.load_photo))
    monkeypatch.setattr(uploads, "keep_jpeg", counting(uploads.keep_jpeg))
    # ... and a fresh one of that size, so this test starts from an idle process.
    monkeypatch.setattr(uploads, "_decoding", threading.BoundedSemaphore(2))
    request = rf.post(URL)
    request.user = AnonymousUser()
    request.session = SessionStore()
    request.session.save()
    photos = [jpeg_bytes(), images.encode(Image.new("RGB", (300, 200), "olive"), "PNG")]
    made = []
    threads = [
        threading.Thread(
            target=lambda n=n: made.append(uploads.unsaved_prediction(request, "p", photos[n % 2]))
        )
        for n in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 16
    assert most[0] == 2


def test_a_damaged_compressed_member_is_skipped_with_a_reason(api_client, enqueued):
    """Flipped bytes inside a deflated member: zlib's own error, not a 500."""
    good = jpeg_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("good.jpg", good)
        archive.writestr("bad.jpg", bytes(range(256)) * 64)
    data = bytearray(buffer.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("bad.jpg")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for offset in range(start + 2, start + 40):
        data[offset] ^= 0xA5  # the deflate stream itself, not the headers
    upload = SimpleUploadedFile("photos.zip", bytes(data), "application/zip")
    response = api_client.post(URL, {"archive": upload}, format="multipart")
    assert response.status_code == 202, response.content
    body = response.json()
    assert [p["name"] for p in body["predictions"]] == ["good.jpg"]
    assert [(e["name"], e["code"]) for e in body["errors"]] == [("bad.jpg", "bad_archive_member")]


def test_queue_positions_of_a_batch_are_right_and_asked_for_once(api_client, enqueued):
    """Each queued photo says how many photos (anyone's) were queued before it, and a batch
    of any size asks the database for that once, not once per photo."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    someone_else = api_client.post(URL, {"image": jpeg("x.jpg")}, format="multipart").json()

    def batch_of(count: int) -> tuple[list, int]:
        files = [jpeg(f"{n}.jpg") for n in range(count)]
        body = api_client.post(URL, {"image": files}, format="multipart").json()
        with CaptureQueriesContext(connection) as queries:
            answer = api_client.get(body["batch"]["url"]).json()
        return [p["queue_position"] for p in answer["predictions"]], len(queries)

    positions, small = batch_of(2)
    assert positions == [1, 2]  # someone else's photo is ahead of both
    positions, large = batch_of(6)
    assert positions == [3, 4, 5, 6, 7, 8]
    assert large == small
    # A photo that is running or done has no place in the queue.
    Prediction.objects.filter(pk=someone_else["id"]).update(status=Prediction.Status.RUNNING)
    detail = api_client.get(someone_else["url"]).json()
    assert detail["queue_position"] is None
    oldest_queued = Prediction.objects.filter(status="queued").order_by("created_at")[0]
    assert api_client.get(f"{URL}{oldest_queued.pk}/").json()["queue_position"] == 0
