"""Faces a person marks by hand ("Missed someone?"): checking the boxes they send.

A box is ``[left, top, right, bottom]`` in pixels of the photo as uploaded, upright (after its
EXIF orientation), the same frame as the boxes the API answers with. The API takes them with
the upload (multipart field ``boxes``, a JSON list); the result page adds one to a finished
photo. The worker aligns and rates each one after the detector's faces
(``AgeEstimator.drawn_face``), and marks the face ``drawn_by_user``.
"""

from __future__ import annotations

import json
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


class BoxesRejected(ImageRejected):
    """Marked boxes that cannot be used; ``code`` is always ``invalid_boxes``."""

    def __init__(self, template: str, **params: object) -> None:
        super().__init__(CODE, template, **params)


def parse_boxes(raw: str | None) -> list[list[int]]:
    """The boxes in the JSON text of a form field (empty or absent: none).

    Raises BoxesRejected when it is not a list of at most MAX_DRAWN_BOXES lists of four whole
    numbers."""
    if raw is None or not str(raw).strip():
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


def fit_boxes(
    boxes: Sequence[Sequence[int]], width: int, height: int, scale: float = 1.0
) -> list[list[int]]:
    """``boxes`` checked against a ``width`` x ``height`` upright photo, then scaled by
    ``scale`` (the stored copy's size over the upload's) and clipped to the stored copy.

    A box must overlap the photo and be at least MIN_DRAWN_SIDE pixels each way once clipped
    to it; the message names the first box that is not (numbered from 1)."""
    fitted = []
    for number, (left, top, right, bottom) in enumerate(boxes, start=1):
        left, right = sorted((left, right))
        top, bottom = sorted((top, bottom))
        left, top = max(0, left), max(0, top)
        right, bottom = min(width, right), min(height, bottom)
        if right <= left or bottom <= top:
            raise BoxesRejected(OUTSIDE, number=number, width=width, height=height)
        if min(right - left, bottom - top) < MIN_DRAWN_SIDE:
            raise BoxesRejected(TOO_SMALL, number=number, side=MIN_DRAWN_SIDE)
        stored_width, stored_height = round(width * scale), round(height * scale)
        fitted.append(
            [
                min(stored_width - 1, int(left * scale)),
                min(stored_height - 1, int(top * scale)),
                max(1, min(stored_width, round(right * scale))),
                max(1, min(stored_height, round(bottom * scale))),
            ]
        )
    return fitted
