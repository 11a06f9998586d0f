"""A stored photo as a worker reads it: decoded at a reduced scale where that loses nothing
the pipeline uses, and at full size only when a face needs it.

A 12 MP JPEG costs a worker about 40-80 ms to decode, 50 ms to turn into an array and 55 ms
more for the detector to scale it down to the 1280 px it scans (``bench/large_photo.py``).
libjpeg can decode at 1/2, 1/4 or 1/8 of the size in its inverse DCT, which costs a quarter of
the time or less, and the detector never looks at more than 1280 px anyway. So
:func:`decode_photo` decodes a JPEG at the smallest of those scales that still leaves the
detector ``work_side`` pixels, and :class:`Photo` keeps the file to decode it at full size
when a face is too small in the reduced pixels for a sharp chip
(:meth:`AgeEstimator.chip_source <predictor.vision.estimator.AgeEstimator.chip_source>`
decides, per photo).

Boxes going in and out are always in pixels of the stored photo, so nothing stored or shown
changes with the scale. Other formats (PNG, WebP, ...) decode at full size, as before.

No Django and no TensorFlow imports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from predictor.vision.centerface import DEFAULT_MAX_WORK_SIDE
from predictor.vision.face_detection import FaceBox
from predictor.vision.image_loading import (
    PhotoLimits,
    as_array,
    check_rgb_array,
    load_photo,
    load_reduced,
)

__all__ = ["DEFAULT_WORK_SIDE", "Photo", "as_photo", "decode_photo"]

# The long side, in pixels, a reduced decode keeps at least: CenterFace's largest scan, so the
# detector sees what it saw before. (The worker passes its own detector's.)
DEFAULT_WORK_SIDE = DEFAULT_MAX_WORK_SIDE


class Photo:
    """A photo's pixels at ``1/scale`` of its size, with the full-size pixels on demand.

    ``pixels`` is the ``(h, w, 3)`` uint8 RGB array a detector scans; ``size`` is the
    stored photo's ``(width, height)``; ``scale`` is the whole number of stored pixels per
    pixel of ``pixels`` along each side (1 when it is the full photo). :meth:`full` decodes
    the full-size pixels once, the first time it is called."""

    def __init__(
        self,
        pixels: np.ndarray,
        scale: int = 1,
        size: tuple[int, int] | None = None,
        data: bytes | None = None,
        limits: PhotoLimits | None = None,
    ) -> None:
        self.pixels = check_rgb_array(pixels)
        if scale < 1 or (scale > 1 and data is None):
            raise ValueError("a reduced photo needs a scale above 1 and its file to decode")
        self.scale = scale
        height, width = self.pixels.shape[:2]
        self.size = size or (width, height)
        if (-(-self.size[0] // scale), -(-self.size[1] // scale)) != (width, height):
            raise ValueError(f"{width}x{height} pixels are not {self.size} at 1/{scale}")
        self._data = data
        self._limits = limits or PhotoLimits(max_bytes=None)
        self._full: np.ndarray | None = self.pixels if scale == 1 else None

    def full(self) -> np.ndarray:
        """The photo's full-size ``(H, W, 3)`` pixels (decoded once, then kept).

        Raises:
            ImageRejected: the file cannot be decoded at full size.
        """
        if self._full is None:
            assert self._data is not None  # a reduced photo keeps its file
            self._full = as_array(load_photo(self._data, self._limits))
        return self._full

    def to_photo(self, box: FaceBox) -> FaceBox:
        """``box`` (in pixels of :attr:`pixels`) in pixels of the stored photo."""
        if self.scale == 1:
            return box
        width, height = self.size
        s = self.scale
        return FaceBox(
            box.left * s,
            box.top * s,
            min(box.right * s, width),
            min(box.bottom * s, height),
            box.score,
            box.detector,
        )

    def to_pixels(self, edges: Sequence[int]) -> tuple[int, int, int, int]:
        """``[left, top, right, bottom]`` in pixels of the stored photo, as pixels of
        :attr:`pixels` (outwards to whole pixels)."""
        s = self.scale
        left, top, right, bottom = (int(edge) for edge in edges[:4])
        return left // s, top // s, math.ceil(right / s), math.ceil(bottom / s)

    def reduced_box(self, box: FaceBox) -> FaceBox:
        """``box`` (in pixels of the stored photo) in pixels of :attr:`pixels`."""
        left, top, right, bottom = self.to_pixels((box.left, box.top, box.right, box.bottom))
        return FaceBox(left, top, right, bottom, box.score, box.detector)


def as_photo(image: Photo | np.ndarray) -> Photo:
    """``image`` as a :class:`Photo` (an array is a full-size photo of scale 1)."""
    return image if isinstance(image, Photo) else Photo(image)


def decode_photo(
    data: bytes, limits: PhotoLimits = PhotoLimits(), work_side: int = DEFAULT_WORK_SIDE
) -> Photo:
    """Decode and check a photo, a JPEG at the smallest scale libjpeg offers whose long side
    is still ``work_side`` pixels or more
    (:func:`~predictor.vision.image_loading.load_reduced`).

    Raises:
        ImageRejected: as :func:`~predictor.vision.image_loading.load_photo`.
    """
    image, scale, size = load_reduced(data, limits, work_side)
    if scale == 1:
        return Photo(as_array(image))
    return Photo(as_array(image), scale, size, data, limits)
