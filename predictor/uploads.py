"""Turning an uploaded file into a queued Prediction.

Shared by the HTML form and the REST API so both check uploads identically.
Only Pillow runs here: the web process never imports TensorFlow or dlib.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from predictor.models import Prediction, anonymous_owner_token
from predictor.vision.image_loading import (
    FILE_TOO_LARGE,
    ImageRejected,
    PhotoLimits,
    encode_for_storage,
    load_photo,
    thumbnail_bytes,
)

logger = logging.getLogger(__name__)


def photo_limits() -> PhotoLimits:
    return PhotoLimits(
        max_bytes=settings.FACEAGE_MAX_UPLOAD_BYTES,
        max_pixels=settings.FACEAGE_MAX_IMAGE_PIXELS,
    )


def read_upload(upload: UploadedFile) -> bytes:
    """Read at most one byte past the limit, so a huge file is not held in memory."""
    limit = settings.FACEAGE_MAX_UPLOAD_BYTES
    if upload.size is not None and upload.size > limit:
        raise ImageRejected(
            "file_too_large",
            FILE_TOO_LARGE,
            size=f"{upload.size / 1048576:.0f} MB",
            limit=f"{limit / 1048576:.0f} MB",
        )
    upload.seek(0)
    return upload.read(limit + 1)


def owner_fields(request: HttpRequest) -> dict:
    """Who owns a new prediction: the user, or else this browser's session."""
    if request.user.is_authenticated:
        return {"owner": request.user, "anonymous_owner": ""}
    return {"owner": None, "anonymous_owner": anonymous_owner_token(request, create=True)}


def create_prediction(request: HttpRequest, upload: UploadedFile) -> Prediction:
    """Check the upload, store a clean copy and queue it for inference.

    Raises ImageRejected (a 4xx for the caller) when the file cannot be used.
    """
    photo = load_photo(read_upload(upload), photo_limits())
    prediction = Prediction(
        original_name=(upload.name or "")[:255],
        width=photo.width,
        height=photo.height,
        **owner_fields(request),
    )
    # Re-encoding strips EXIF (including GPS) and bakes in the orientation, so
    # the boxes the worker computes match the stored pixels.
    prediction.image.save("photo.jpg", ContentFile(encode_for_storage(photo)), save=False)
    prediction.thumbnail.save("thumb.jpg", ContentFile(thumbnail_bytes(photo)), save=False)
    with transaction.atomic():
        prediction.save()
        transaction.on_commit(lambda: enqueue_prediction(prediction.pk))
    return prediction


def enqueue_prediction(prediction_id) -> bool:
    """Ring the doorbell. The row is the source of truth: if the broker is down,
    the sweeper enqueues the prediction again, so an error here loses nothing."""
    from predictor.tasks import predict

    try:
        predict.apply_async(args=[str(prediction_id)])
    except Exception:
        logger.warning(
            "could not enqueue prediction %s; the sweeper will retry", prediction_id, exc_info=True
        )
        return False
    Prediction.objects.filter(pk=prediction_id).update(enqueued_at=timezone.now())
    return True
