"""Privacy: retention, deleting all of one's data, and production settings."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from PIL import Image, ImageCms

from predictor.models import Prediction
from predictor.tasks import delete_expired_predictions
from tests import images
from tests.datasets import REPO_ROOT

pytestmark = pytest.mark.django_db


def upload(client) -> Prediction:
    data = images.encode(Image.new("RGB", (80, 60), "navy"))
    client.post("/", {"image": SimpleUploadedFile("a.jpg", data)})
    return Prediction.objects.order_by("-created_at").first()


def test_retention_deletes_old_predictions_and_their_files(client, enqueued, settings):
    settings.FACEAGE_RETENTION_DAYS = 30
    old, recent = upload(client), upload(client)
    Prediction.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    old_files = [old.image.path, old.thumbnail.path]
    assert delete_expired_predictions.run() == 1
    assert list(Prediction.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not any(os.path.exists(path) for path in old_files)
    settings.FACEAGE_RETENTION_DAYS = 0
    Prediction.objects.update(created_at=timezone.now() - timedelta(days=3650))
    assert delete_expired_predictions.run() == 0  # 0 keeps everything


def test_delete_all_my_data_in_one_action(client, enqueued):
    mine = [upload(client) for _ in range(3)]
    someone_else = upload(Client())
    response = client.post("/history/delete-all/")
    assert response.status_code == 302
    assert not Prediction.objects.filter(pk__in=[p.pk for p in mine]).exists()
    assert not any(os.path.exists(p.image.path) for p in mine)
    assert Prediction.objects.filter(pk=someone_else.pk).exists()


def test_delete_all_through_the_api(api_client, user, other_user, enqueued):
    api_client.force_authenticate(user)
    for _ in range(2):
        api_client.post(
            "/api/v1/predictions/",
            {"image": SimpleUploadedFile("a.jpg", images.encode(Image.new("RGB", (64, 64))))},
            format="multipart",
        )
    Prediction.objects.create(owner=other_user, image="uploads/x.jpg")
    assert api_client.delete("/api/v1/predictions/all/").status_code == 204
    assert list(Prediction.objects.values_list("owner__username", flat=True)) == ["bob"]


def test_deploy_check_is_clean_with_production_settings(tmp_path):
    env = dict(
        os.environ,
        SECRET_KEY=secrets.token_urlsafe(60),
        FACEAGE_PRODUCTION="1",
        DEBUG="0",
        ALLOWED_HOSTS="faceage.example.com",
        SECURE_SSL_REDIRECT="1",
        SECURE_COOKIES="1",
        SECURE_HSTS_SECONDS="31536000",
        FACEAGE_VAR_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update(FACEAGE_PRODUCTION="1", FACEAGE_VAR_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_without_a_secret_key_an_install_makes_its_own_private_one(tmp_path):
    """Outside production and outside the tests, no key from the repository signs anything."""
    from faceage_site import settings as settings_module

    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "FACEAGE_PRODUCTION")}
    env.update(DEBUG="0", FACEAGE_VAR_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from django.conf import settings; print(settings.SECRET_KEY)"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    used = result.stdout.strip().splitlines()[-1]
    key_file = tmp_path / "secret_key"
    assert key_file.read_text().strip() == used
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(used) >= 50 and used not in Path(settings_module.__file__).read_text()


def test_the_per_install_key_is_made_once_and_differs_between_installs(tmp_path):
    from faceage_site.secret_key import per_install_secret_key

    first = per_install_secret_key(tmp_path / "one" / "var")
    assert per_install_secret_key(tmp_path / "one" / "var") == first  # kept, not remade
    assert per_install_secret_key(tmp_path / "two") != first
    assert [path.name for path in (tmp_path / "one" / "var").iterdir()] == ["secret_key"]


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """The marker and payload of each segment before the image data (SOS) of a JPEG."""
    assert data[:2] == b"\xff\xd8"
    segments, position = [], 2
    while data[position + 1] != 0xDA:  # start of scan: entropy-coded data follows
        marker = data[position + 1]
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        segments.append((marker, data[position + 4 : position + 2 + length]))
        position += 2 + length
    return segments


def test_stored_photos_and_thumbnails_keep_no_comment_or_other_metadata(client, enqueued):
    """Only the JFIF header and the pixels survive: no COM, EXIF/GPS, XMP or ICC segment."""
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 0.0)}
    original = images.encode(
        Image.effect_noise((200, 160), 40).convert("RGB"),
        "JPEG",
        comment=b"<script>alert(document.cookie)</script>",
        exif=exif.tobytes(),
        icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
        xmp=b"<x:xmpmeta>photographer</x:xmpmeta>",
    )
    markers = {marker for marker, _ in jpeg_segments(original)}
    assert {0xFE, 0xE1, 0xE2} <= markers, "precondition: comment, EXIF/XMP and ICC present"
    client.post("/", {"image": SimpleUploadedFile("a.jpg", original)})
    prediction = Prediction.objects.get()
    for field in (prediction.image, prediction.thumbnail):
        with field.open("rb") as stored:
            data = stored.read()
        assert b"<script>" not in data and b"photographer" not in data
        segments = jpeg_segments(data)
        metadata = [marker for marker, _ in segments if marker == 0xFE or 0xE0 <= marker <= 0xEF]
        assert metadata == [0xE0], f"{field.name}: segments {[hex(m) for m, _ in segments]}"
        assert next(payload for marker, payload in segments if marker == 0xE0)[:5] == b"JFIF\0"


def test_an_upright_jpeg_is_stored_as_it_was_compressed_without_its_metadata(
    client, enqueued, settings
):
    """A JPEG that needs no change to its pixels is kept: the stored copy decodes to the
    upload's very pixels (no second loss of quality), and none of its metadata survives. With
    FACEAGE_KEEP_UPLOADED_JPEG off it is re-encoded, as every upload once was."""
    import io

    import numpy as np

    from predictor.vision.jpeg_markers import strip_metadata

    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 0.0)}
    original = images.encode(
        Image.effect_noise((640, 480), 50).convert("RGB"),
        "JPEG",
        quality=88,
        comment=b"photographer",
        exif=exif.tobytes(),
    )

    def stored_after_upload() -> tuple[Prediction, bytes]:
        client.post("/", {"image": SimpleUploadedFile("a.jpg", original)})
        prediction = Prediction.objects.order_by("-created_at").first()
        with prediction.image.open("rb") as stored:
            return prediction, stored.read()

    def decoded(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), dtype=int)

    prediction, kept = stored_after_upload()
    assert kept == strip_metadata(original)
    assert (prediction.width, prediction.height) == (640, 480)
    assert np.array_equal(decoded(kept), decoded(original))
    assert b"photographer" not in kept and b"Exif" not in kept
    settings.FACEAGE_KEEP_UPLOADED_JPEG = False
    _, encoded = stored_after_upload()
    assert encoded != kept and b"photographer" not in encoded and b"Exif" not in encoded
    assert 0 < np.abs(decoded(encoded) - decoded(original)).mean() < 8  # another generation


def test_a_turned_jpeg_is_stored_as_it_was_compressed_with_its_orientation_alone(client, enqueued):
    """A phone held upright stores its sensor's landscape pixels and EXIF orientation 6. The
    stored copy keeps those pixels as they were compressed and the orientation, so browsers
    show it upright, and nothing else of the EXIF (GPS); width and height are the upright
    photo's, and the thumbnail is upright with no EXIF at all."""
    import numpy as np

    from predictor.vision.image_loading import load_photo
    from predictor.vision.jpeg_markers import orientation_segment, strip_metadata

    upright = Image.effect_noise((480, 640), 50).convert("RGB")
    original = images.exif_rotated_jpeg(upright, 6)  # with a GPS block
    client.post("/", {"image": SimpleUploadedFile("a.jpg", original)})
    prediction = Prediction.objects.get()
    assert (prediction.width, prediction.height) == (480, 640)
    with prediction.image.open("rb") as stored:
        kept = stored.read()
    assert kept == strip_metadata(original, 6)
    segments = jpeg_segments(kept)
    metadata = [(m, payload) for m, payload in segments if m == 0xFE or 0xE0 <= m <= 0xEF]
    assert [m for m, _ in metadata] == [0xE0, 0xE1]
    assert metadata[1][1] == orientation_segment(6)[4:]  # the orientation, alone
    assert np.array_equal(np.asarray(load_photo(kept)), np.asarray(load_photo(original)))
    with prediction.thumbnail.open("rb") as stored:
        thumbnail = stored.read()
    assert [m for m, _ in jpeg_segments(thumbnail) if 0xE0 <= m <= 0xEF] == [0xE0]
    with Image.open(io.BytesIO(thumbnail)) as image:
        assert image.width < image.height  # upright, as the photo is


@pytest.mark.parametrize("kind", ["rational", "double"])
def test_an_orientation_of_another_type_is_turned_and_re_encoded_not_a_server_error(
    api_client, enqueued, kind
):
    """An EXIF orientation written as a RATIONAL or a DOUBLE (not the SHORT EXIF defines) is
    still applied, as viewers apply it; the photo is re-encoded upright, with no EXIF."""
    data = images.jpeg_with_orientation_typed(kind, 6)  # 300 x 200 as stored
    response = api_client.post(
        "/api/v1/predictions/",
        {"image": SimpleUploadedFile("odd.jpg", data)},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    prediction = Prediction.objects.get()
    assert (prediction.width, prediction.height) == (200, 300)
    with prediction.image.open("rb") as stored:
        segments = jpeg_segments(stored.read())
    assert [m for m, _ in segments if m == 0xFE or 0xE0 <= m <= 0xEF] == [0xE0]


def test_a_phones_multi_picture_jpeg_is_accepted_and_stored_as_its_photo(api_client, enqueued):
    """An MPO (the photo, then its gain map or depth map) is the photo: accepted, and stored
    without the pictures appended to it."""
    photo_pixels = Image.effect_noise((400, 300), 40).convert("RGB")
    buffer = io.BytesIO()
    extra = Image.effect_noise((200, 150), 40).convert("RGB")
    photo_pixels.save(buffer, "MPO", save_all=True, append_images=[extra])
    response = api_client.post(
        "/api/v1/predictions/",
        {"image": SimpleUploadedFile("phone.jpg", buffer.getvalue())},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    prediction = Prediction.objects.get()
    assert (prediction.width, prediction.height) == (400, 300)
    with prediction.image.open("rb") as stored:
        data = stored.read()
    assert data.count(b"\xff\xd8") == 1 and b"MPF" not in data


def test_security_headers(client):
    response = client.get("/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_api_clients_fetch_their_own_images_with_their_token(user, other_user, enqueued):
    """image_url and chip_url answer the owner's `Authorization: Token`, as the upload did;
    another user's token, a wrong token and no token get 404 (nobody's image)."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from predictor.models import Face

    token, other_token = (Token.objects.create(user=u).key for u in (user, other_user))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    created = client.post(
        "/api/v1/predictions/",
        {"image": SimpleUploadedFile("a.jpg", images.encode(Image.new("RGB", (64, 64))))},
        format="multipart",
    )
    assert created.status_code == 202
    prediction = Prediction.objects.get()
    Face.objects.create(
        prediction=prediction, index=0, left=1, top=1, right=20, bottom=20, age=30, age_std=3,
        chip_jpeg=images.encode(Image.new("RGB", (64, 64))),
    )  # fmt: skip
    body = client.get(created["Location"]).json()
    image_url = body["image_url"]
    chip_url = f"/p/{prediction.pk}/faces/0/chip.jpg"
    for url in (image_url, chip_url):
        answer = client.get(url)
        assert answer.status_code == 200 and answer["Content-Type"] == "image/jpeg", url
        assert "Authorization" in answer["Vary"]
    for header in (f"Token {other_token}", "Token not-a-real-token", None):
        stranger = APIClient()
        if header:
            stranger.credentials(HTTP_AUTHORIZATION=header)
        for url in (image_url, chip_url):
            assert stranger.get(url).status_code == 404, (header, url)
