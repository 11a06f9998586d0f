"""The inference task with the real network, in this process: faces stored once, and a newly
promoted model version used on the next task without a restart."""

from __future__ import annotations

import io

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
    assert prediction.status == Prediction.Status.SUCCEEDED, prediction.error_message
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
    assert first.model_version.name == ModelVersion.DEFAULT_NAME
    assert second.model_version == other
    assert sorted(second.faces.values_list("age", flat=True)) != pytest.approx(
        bundled_ages, abs=0.5
    )
    assert ModelVersion.objects.filter(is_active=True).count() == 1


def test_waiting_predictions_run_as_one_network_batch(monkeypatch, settings):
    """One task takes the predictions waiting behind it and rates all their faces in one
    network call; their own messages, delivered later, change nothing."""
    from predictor.vision.age_network import AgeNetwork

    settings.FACEAGE_INFERENCE_BATCH_SIZE = 3
    photos = [images.face_photo(sample_utkface(n, seed=20 + n))[0] for n in (1, 2, 1, 1)]
    predictions = [stored_prediction(images.encode(photo)) for photo in photos]
    batch_sizes = []
    real_predict = AgeNetwork.predict

    def counting_predict(network, chips):
        batch_sizes.append(len(chips))
        return real_predict(network, chips)

    monkeypatch.setattr(AgeNetwork, "predict", counting_predict)
    tasks.predict.run(str(predictions[0].pk))
    for prediction in predictions:
        prediction.refresh_from_db()
    # The first task took itself and the two oldest waiting: 1 + 2 + 1 faces, one call.
    assert batch_sizes == [4]
    assert [p.status for p in predictions] == ["succeeded"] * 3 + ["queued"]
    assert len({p.claimed_by for p in predictions[:3]}) == 1
    assert [p.faces.count() for p in predictions[:3]] == [1, 2, 1]
    for prediction in predictions:  # every message delivered afterwards
        tasks.predict.run(str(prediction.pk))
    for prediction in predictions:
        prediction.refresh_from_db()
    assert batch_sizes == [4, 1]
    assert all(p.status == "succeeded" and p.attempts == 1 for p in predictions)
    assert [p.faces.count() for p in predictions] == [1, 2, 1, 1]


def test_batched_ages_equal_one_at_a_time_ages(settings):
    photos = [images.face_photo(sample_utkface(n, seed=30 + n))[0] for n in (2, 1)]
    settings.FACEAGE_INFERENCE_BATCH_SIZE = 1
    alone = [stored_prediction(images.encode(photo)) for photo in photos]
    for prediction in alone:
        tasks.predict.run(str(prediction.pk))
    settings.FACEAGE_INFERENCE_BATCH_SIZE = 8
    together = [stored_prediction(images.encode(photo)) for photo in photos]
    tasks.predict.run(str(together[0].pk))
    for one, other in zip(alone, together, strict=True):
        ages_alone = list(one.faces.order_by("index").values_list("age", flat=True))
        ages_together = list(other.faces.order_by("index").values_list("age", flat=True))
        assert len(ages_alone) == len(ages_together) > 0
        assert ages_together == pytest.approx(ages_alone, abs=1e-3)


def test_a_bad_photo_fails_alone_and_a_retried_prediction_is_not_batched(settings):
    settings.FACEAGE_INFERENCE_BATCH_SIZE = 8
    good = images.encode(images.face_photo(sample_utkface(1, seed=41))[0])
    first = stored_prediction(good)
    broken = stored_prediction(good[: len(good) // 3])
    last = stored_prediction(good)
    tasks.predict.run(str(first.pk))
    for prediction in (first, broken, last):
        prediction.refresh_from_db()
    assert (first.status, broken.status, last.status) == ("succeeded", "failed", "succeeded")
    assert "damaged" in broken.error_message
    # A prediction that is being retried (a worker died holding it) runs alone.
    retried = stored_prediction(good)
    Prediction.objects.filter(pk=retried.pk).update(attempts=1)
    waiting = stored_prediction(good)
    tasks.predict.run(str(retried.pk))
    retried.refresh_from_db()
    waiting.refresh_from_db()
    assert (retried.status, retried.attempts) == ("succeeded", 2)
    assert waiting.status == "queued" and waiting.attempts == 0


def test_a_model_from_a_storage_without_paths_loads_and_leaves_no_copy(
    media_root, tmp_path, monkeypatch
):
    """S3-like storages have no local path: the worker copies the file, loads it and
    deletes the copy (one per version load would otherwise pile up in /tmp)."""
    import tempfile

    from django.core.files.storage import default_storage

    from predictor.serving import load_network
    from predictor.vision.age_network import AgeNetwork
    from training.pipeline.fit import CLASS_AGES, build_training_model

    path = media_root / "models" / "remote.keras"
    path.parent.mkdir(parents=True)
    AgeNetwork(build_training_model("scratch"), CLASS_AGES).save(path)
    version = ModelVersion.objects.create(
        name="remote", artifact="models/remote.keras", temperature=1.5
    )

    class RemoteStorage:  # what django-storages' S3 storage offers: open, but no path
        def open(self, name, mode="rb"):
            return default_storage.open(name, mode)

        def path(self, name):
            raise NotImplementedError("This backend doesn't support absolute paths.")

    monkeypatch.setattr("predictor.serving.default_storage", RemoteStorage())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    network = load_network(version)
    assert network.temperature == 1.5
    assert len(network.class_ages) == len(CLASS_AGES)
    assert list(scratch.iterdir()) == []


def test_a_large_photo_runs_alone_and_is_never_pulled_into_a_batch(monkeypatch, settings):
    """Cost-aware batching: photos over FACEAGE_BATCH_MAX_PIXELS share no task, so a heavy
    photo can neither hold up a small one's batch nor use up its time limit."""
    from predictor.vision.age_network import AgeNetwork

    settings.FACEAGE_INFERENCE_BATCH_SIZE = 8
    settings.FACEAGE_BATCH_MAX_PIXELS = 1_000_000
    good = images.encode(images.face_photo(sample_utkface(1, seed=51))[0])
    small, heavy, other_small = (stored_prediction(good) for _ in range(3))
    Prediction.objects.filter(pk=heavy.pk).update(width=4000, height=3000)  # as if 12 MP
    calls = []
    real_predict = AgeNetwork.predict
    monkeypatch.setattr(
        AgeNetwork,
        "predict",
        lambda net, chips: calls.append(len(chips)) or real_predict(net, chips),
    )
    tasks.predict.run(str(small.pk))
    statuses = {p.pk: p.status for p in Prediction.objects.all()}
    assert (statuses[small.pk], statuses[heavy.pk], statuses[other_small.pk]) == (
        "succeeded",
        "queued",
        "succeeded",
    )
    assert calls == [2]
    tasks.predict.run(str(heavy.pk))
    assert Prediction.objects.get(pk=heavy.pk).status == "succeeded" and calls == [2, 1]


def test_a_time_limit_fails_only_the_photo_it_strikes(monkeypatch, settings, enqueued):
    """The soft time limit strikes while the second photo of a batch is decoded: that photo
    fails with the reason, and the others go back to the queue with no attempt charged."""
    from celery.exceptions import SoftTimeLimitExceeded

    settings.FACEAGE_INFERENCE_BATCH_SIZE = 8
    good = images.encode(images.face_photo(sample_utkface(1, seed=52))[0])
    first, slow, third = (stored_prediction(good) for _ in range(3))
    real_load = tasks.load_claimed_photo

    def load(prediction, *args):
        if prediction.pk == slow.pk:
            raise SoftTimeLimitExceeded()
        return real_load(prediction, *args)

    monkeypatch.setattr(tasks, "load_claimed_photo", load)
    tasks.predict.run(str(first.pk))
    rows = {p.pk: p for p in Prediction.objects.all()}
    assert rows[slow.pk].status == "failed" and "longer than" in rows[slow.pk].error_message
    for pk in (first.pk, third.pk):
        assert (rows[pk].status, rows[pk].attempts, rows[pk].claimed_by) == ("queued", 0, "")
    assert sorted(enqueued) == sorted(str(pk) for pk in (first.pk, third.pk))
    monkeypatch.setattr(tasks, "load_claimed_photo", real_load)
    tasks.predict.run(str(first.pk))
    assert Prediction.objects.get(pk=first.pk).status == "succeeded"
    assert Prediction.objects.get(pk=third.pk).status == "succeeded"


def test_the_served_detector_is_a_setting(settings, monkeypatch, two_face_photo):
    """FACEAGE_FACE_DETECTOR=hog serves with dlib's HOG cascade (the pipeline before
    CenterFace, kept to measure both side by side); the default is CenterFace."""
    from predictor import serving
    from predictor.vision.centerface import CenterFaceDetector, face_detector
    from predictor.vision.face_detection import FaceDetector

    monkeypatch.setitem(serving._loaded, "version_id", None)
    monkeypatch.setitem(serving._loaded, "estimator", None)
    settings.FACEAGE_FACE_DETECTOR = "hog"
    estimator = serving.estimator_for(ModelVersion.active())
    assert isinstance(estimator.detector, FaceDetector)
    prediction = stored_prediction(two_face_photo[0])
    tasks.predict.run(str(prediction.pk))
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED, prediction.error_message
    assert prediction.faces.count() == 2
    assert {face.detector for face in prediction.faces.all()} <= {"hog", "hog-rechecked", "cnn"}
    assert isinstance(face_detector("centerface"), CenterFaceDetector)
    with pytest.raises(ValueError, match="centerface or hog"):
        face_detector("yunet")


def phone_photo(sides: list[int], seed: int) -> tuple[bytes, list[tuple[int, int, int, int]]]:
    """A 4000 x 3000 JPEG with real UTKFace faces pasted at the given sides, in a row."""
    from PIL import Image

    canvas = Image.new("RGB", (4000, 3000), (128, 128, 120))
    tiles = []
    left = 600
    for side, path in zip(sides, sample_utkface(len(sides), seed=seed), strict=True):
        tiles.append((left, 900, left + side, 900 + side))
        canvas.paste(Image.open(path).convert("RGB").resize((side, side)), tiles[-1][:2])
        left += side + 400
    return images.encode(canvas, quality=92), tiles


@pytest.fixture
def decoded(monkeypatch):
    """The scale of every photo the worker decodes, and whether its full size was needed."""
    from predictor.vision import photo as photo_module

    seen: list[dict] = []
    real_decode, real_full = photo_module.decode_photo, photo_module.Photo.full

    def decode(*args, **kwargs):
        photo = real_decode(*args, **kwargs)
        seen.append({"scale": photo.scale, "full": False})
        photo.record = seen[-1]
        return photo

    def full(self):
        if hasattr(self, "record"):
            self.record["full"] = True
        return real_full(self)

    monkeypatch.setattr(photo_module, "decode_photo", decode)
    monkeypatch.setattr(photo_module.Photo, "full", full)
    return seen


@pytest.mark.parametrize(
    "sides, full_size",
    [([800, 700], False), ([800, 160], True)],
    ids=["large faces: chips from the half size", "a small face: chips from the full size"],
)
def test_a_large_jpeg_is_read_at_half_size_and_its_faces_stored_in_its_own_pixels(
    decoded, sides, full_size
):
    """The worker decodes a 12 MP JPEG at half size (predictor.vision.photo), and at full size
    too only for a small face; the faces it stores are in the stored photo's pixels."""
    data, tiles = phone_photo(sides, seed=21)
    prediction = stored_prediction(data)
    tasks.predict.run(str(prediction.pk))
    prediction.refresh_from_db()
    assert prediction.status == Prediction.Status.SUCCEEDED, prediction.error_message
    assert decoded == [{"scale": 2, "full": full_size}]
    faces = list(prediction.faces.order_by("left"))
    assert len(faces) == len(tiles)
    for face, (left, top, right, bottom) in zip(faces, tiles, strict=True):
        centre_x, centre_y = (face.left + face.right) / 2, (face.top + face.bottom) / 2
        assert left < centre_x < right and top < centre_y < bottom
        assert 0.3 < (face.right - face.left) / (right - left) < 1.2
        assert face.age_low <= face.age <= face.age_high


@pytest.mark.parametrize("orientation", [6, 3])
def test_a_turned_phone_photo_is_kept_and_its_faces_found_upright(
    decoded, api_client, enqueued, orientation
):
    """A 12 MP photo stored turned, as phones store it, with its EXIF orientation: the upload
    keeps it as it was compressed, and the worker decodes it at half size, turns it upright
    and finds its real faces where they are in the upright photo, with the ages of the same
    photo uploaded upright."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from predictor.vision.jpeg_markers import strip_metadata

    upright_data, tiles = phone_photo([800, 700], seed=21)
    upright = Image.open(io.BytesIO(upright_data))
    # The pixels as the camera stores them: what the orientation turns upright.
    stored_way = {6: Image.Transpose.ROTATE_90, 3: Image.Transpose.ROTATE_180}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    turned_data = images.encode(upright.transpose(stored_way), quality=92, exif=exif.tobytes())

    def served(data: bytes) -> Prediction:
        response = api_client.post(
            "/api/v1/predictions/",
            {"image": SimpleUploadedFile("phone.jpg", data, "image/jpeg")},
            format="multipart",
        )
        assert response.status_code == 202, response.content
        prediction = Prediction.objects.get(pk=response.json()["id"])
        tasks.predict.run(str(prediction.pk))
        prediction.refresh_from_db()
        assert prediction.status == Prediction.Status.SUCCEEDED, prediction.error_message
        return prediction

    turned, straight = served(turned_data), served(upright_data)
    with turned.image.open("rb") as stored:
        assert stored.read() == strip_metadata(turned_data, orientation)  # kept
    assert (turned.width, turned.height) == (4000, 3000)
    assert [record["scale"] for record in decoded] == [2, 2]
    faces = list(turned.faces.order_by("left"))
    assert len(faces) == len(tiles)
    for face, same, (left, top, right, bottom) in zip(
        faces, straight.faces.order_by("left"), tiles, strict=True
    ):
        centre_x, centre_y = (face.left + face.right) / 2, (face.top + face.bottom) / 2
        assert left < centre_x < right and top < centre_y < bottom
        assert abs(face.left - same.left) <= 2 and abs(face.bottom - same.bottom) <= 2
        assert abs(face.age - same.age) < 0.5  # two JPEG encodings of the same pixels


def test_a_photo_whose_full_size_decode_fails_fails_with_a_reason(monkeypatch):
    """A face too small in the half-size pixels needs the full-size decode; when that fails,
    the photo fails with the decoder's reason (not a server error, not a crashed task)."""
    from predictor.vision import photo as photo_module
    from predictor.vision.image_loading import CORRUPT_IMAGE_RETRY, ImageRejected

    data, _ = phone_photo([800, 160], seed=21)
    broken = stored_prediction(data)
    real_full = photo_module.Photo.full

    def fail_to_decode(self):
        if self.scale == 1:
            return real_full(self)
        raise ImageRejected("corrupt_image", CORRUPT_IMAGE_RETRY)

    monkeypatch.setattr(photo_module.Photo, "full", fail_to_decode)
    tasks.predict.run(str(broken.pk))
    broken.refresh_from_db()
    assert broken.status == Prediction.Status.FAILED
    assert "damaged or incomplete" in broken.error_message
    assert broken.faces.count() == 0
