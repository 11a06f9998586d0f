"""Turning an uploaded file into a queued Prediction (several photos or a zip in one
request: predictor.archives).

Shared by the HTML form and the REST API so both check uploads identically.
Only Pillow runs here: the web process never imports TensorFlow or dlib.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import HttpRequest

from predictor.drawn_boxes import fit_boxes
from predictor.models import Prediction, anonymous_owner_token
from predictor.tasks import enqueue_prediction
from predictor.vision.image_loading import (
    FILE_TOO_LARGE,
    THUMBNAIL_SIDE,
    ImageRejected,
    PhotoLimits,
    check_proportions,
    encode_for_storage,
    fit_within,
    keep_jpeg,
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


# How many photos one web process decodes at once, whatever its thread count: a 40 MP photo
# takes about 120 MB while it is decoded, scaled and re-encoded (a kept JPEG much less), so
# this bounds what uploads can hold in one process (docs/benchmarks.md, "Web memory"). Others
# wait their turn.
_decoding = threading.BoundedSemaphore(settings.FACEAGE_DECODES_PER_PROCESS)


def unsaved_prediction(
    request: HttpRequest, name: str, data: bytes, drawn_boxes: Sequence[Sequence[int]] = ()
) -> Prediction:
    """Check one photo and store its clean copy and thumbnail; the row is not saved yet.

    The copy is scaled down to FACEAGE_MAX_WORKING_SIDE, which bounds a worker's decode and
    detection before the photo is queued; boxes, width and height are the copy's.
    ``drawn_boxes`` (faces the person marked, in pixels of the upright upload) are checked
    against the photo and scaled with it (BoxesRejected)."""
    with _decoding:
        kept = (
            keep_jpeg(data, photo_limits(), settings.FACEAGE_MAX_WORKING_SIDE, THUMBNAIL_SIDE)
            if settings.FACEAGE_KEEP_UPLOADED_JPEG
            else None
        )
        if kept is not None:
            # The JPEG as it was compressed, its metadata stripped (its orientation kept):
            # no decode at full size, no re-encode, no second loss of quality
            # (image_loading.keep_jpeg).
            width, height = kept.size
            boxes = fit_boxes(drawn_boxes, width, height, kept.size)
            stored, thumbnail = kept.data, thumbnail_bytes(kept.preview)
            del kept
        else:
            limits = photo_limits()
            upright = load_photo(data, limits)
            check_proportions(
                upright.width, upright.height, settings.FACEAGE_MAX_WORKING_SIDE, limits.min_side
            )
            photo = fit_within(upright, settings.FACEAGE_MAX_WORKING_SIDE)
            boxes = fit_boxes(drawn_boxes, upright.width, upright.height, photo.size)
            del upright
            stored, thumbnail = encode_for_storage(photo), thumbnail_bytes(photo)
            width, height = photo.size
            del photo
    prediction = Prediction(
        original_name=(name or "")[:255],
        width=width,
        height=height,
        drawn_boxes=boxes,
        **owner_fields(request),
    )
    # Either way the stored copy has no EXIF but, where a kept JPEG is stored turned, its
    # orientation (no GPS, no other tag); a re-encoded one has its orientation baked in.
    # The worker's decode turns a kept one upright as viewers do, so the boxes it computes,
    # width and height are all in the upright photo's pixels.
    prediction.image.save("photo.jpg", ContentFile(stored), save=False)
    prediction.thumbnail.save("thumb.jpg", ContentFile(thumbnail), save=False)
    return prediction


def create_prediction(
    request: HttpRequest, upload: UploadedFile, drawn_boxes: Sequence[Sequence[int]] = ()
) -> Prediction:
    """Check the upload, store a clean copy and queue it for inference.

    Raises ImageRejected (a 4xx for the caller) when the file, or a marked box, cannot be used.
    """
    prediction = unsaved_prediction(request, upload.name or "", read_upload(upload), drawn_boxes)
    with transaction.atomic():
        prediction.save()
        transaction.on_commit(lambda: enqueue_prediction(prediction.pk))
    return prediction
