"""Faces a person marks by hand ("Missed someone?"): checking the boxes they send.

A box is ``[left, top, right, bottom]`` in pixels of the photo as uploaded, upright (after its
EXIF orientation), the same frame as the boxes the API answers with. The API takes them with
the upload (multipart field ``boxes``, a JSON list); the result page adds one to a finished
photo. The worker aligns and rates each one after the detector's faces
(``AgeEstimator.drawn_face``), and marks the face ``drawn_by_user``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from django.utils.translation import gettext_noop

from predictor.vision.image_loading import ImageRejected

# At most this many marked faces a photo, and at least this many pixels a side: the aligner
# needs some face to find its landmarks in.
MAX_DRAWN_BOXES = 20
MIN_DRAWN_SIDE = 12
MAX_BOXES_TEXT = 4096  # characters of the JSON text

CODE = "invalid_boxes"
NOT_A_LIST = gettext_noop(
    "'boxes' must be a JSON list of boxes, each [left, top, right, bottom] in pixels, "
    "such as [[10, 20, 110, 140]]."
)
TOO_MANY = gettext_noop("At most %(limit)s faces can be marked on one photo.")
TOO_SMALL = gettext_noop(
    "Box %(number)s is too small: mark a region at least %(side)s pixels wide and high."
)
OUTSIDE = gettext_noop(
    "Box %(number)s lies outside the photo, which is %(width)s x %(height)s pixels."
)
ALREADY_A_FACE = gettext_noop(
    "That region is face %(number)s already. Mark a face that has no number on the photo."
)
# Two boxes whose overlap (intersection over union) reaches this are the same face.
SAME_FACE_IOU = 0.4


class BoxesRejected(ImageRejected):
    """Marked boxes that cannot be used; ``code`` is always ``invalid_boxes``."""

    def __init__(self, template: str, **params: object) -> None:
        super().__init__(CODE, template, **params)


def parse_boxes(raw: object) -> list[list[int]]:
    """The boxes in the JSON text of a form field (empty or absent: none).

    Raises BoxesRejected when it is not text (a file sent as the field) or not a list of at
    most MAX_DRAWN_BOXES lists of four whole numbers."""
    if raw is None:
        return []
    if not isinstance(raw, str):
        raise BoxesRejected(NOT_A_LIST)
    if not raw.strip():
        return []
    if len(str(raw)) > MAX_BOXES_TEXT:  # 20 boxes fit in well under 2 KB
        raise BoxesRejected(NOT_A_LIST)
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise BoxesRejected(NOT_A_LIST) from None
    if not isinstance(value, list):
        raise BoxesRejected(NOT_A_LIST)
    if len(value) > MAX_DRAWN_BOXES:
        raise BoxesRejected(TOO_MANY, limit=MAX_DRAWN_BOXES)
    boxes = []
    for box in value:
        if not isinstance(box, list) or len(box) != 4:
            raise BoxesRejected(NOT_A_LIST)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box):
            raise BoxesRejected(NOT_A_LIST)
        if not all(abs(v) < 1e6 for v in box):  # NaN and infinity fail this too
            raise BoxesRejected(NOT_A_LIST)
        boxes.append([round(v) for v in box])
    return boxes


def overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``[left, top, right, bottom]`` boxes (0 when apart)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _centre_inside(box: Sequence[float], other: Sequence[float]) -> bool:
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return other[0] <= x <= other[2] and other[1] <= y <= other[3]


def same_face(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two boxes mark the same face: they overlap by SAME_FACE_IOU or more, or each
    one's centre lies inside the other (a loose box drawn round a tight one)."""
    if overlap(a, b) >= SAME_FACE_IOU:
        return True
    return _centre_inside(a, b) and _centre_inside(b, a)


def first_same_face(box: Sequence[float], others: Sequence[Sequence[float]]) -> int | None:
    """The position in ``others`` of the first box that is the same face as ``box``."""
    for position, other in enumerate(others):
        if same_face(box, other):
            return position
    return None


def fit_boxes(
    boxes: Sequence[Sequence[int]],
    width: int,
    height: int,
    stored_size: tuple[int, int] | None = None,
) -> list[list[int]]:
    """``boxes`` checked against a ``width`` x ``height`` upright photo, then scaled to the
    stored copy (``stored_size``, its width and height; the same size when None), each axis
    by its own ratio, and clipped to it.

    A box must overlap the photo and, once clipped and scaled, be at least MIN_DRAWN_SIDE
    stored pixels each way; the message names the first box that is not (numbered from 1)
    and the least size in the photo's own pixels."""
    stored_width, stored_height = stored_size or (width, height)
    scale_x, scale_y = stored_width / width, stored_height / height
    fitted = []
    for number, (left, top, right, bottom) in enumerate(boxes, start=1):
        left, right = sorted((left, right))
        top, bottom = sorted((top, bottom))
        left, top = max(0, left), max(0, top)
        right, bottom = min(width, right), min(height, bottom)
        if right <= left or bottom <= top:
            raise BoxesRejected(OUTSIDE, number=number, width=width, height=height)
        scaled = [
            min(stored_width - 1, int(left * scale_x)),
            min(stored_height - 1, int(top * scale_y)),
            max(1, min(stored_width, round(right * scale_x))),
            max(1, min(stored_height, round(bottom * scale_y))),
        ]
        if min(scaled[2] - scaled[0], scaled[3] - scaled[1]) < MIN_DRAWN_SIDE:
            least = math.ceil(MIN_DRAWN_SIDE / min(scale_x, scale_y, 1.0))
            raise BoxesRejected(TOO_SMALL, number=number, side=least)
        fitted.append(scaled)
    return fitted
