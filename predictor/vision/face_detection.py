"""Finding the faces in an uploaded photo: fast when they are easy, thorough when not.

Dlib's HOG detector is cheap (tens of milliseconds on a 1000-pixel photo) but
only finds faces whose box is about 80x80 pixels or larger, and at its default
threshold it misses about one tilted head in ten. Dlib's CNN (MMOD) detector
also finds turned heads, but costs seconds per photo on a CPU.
:class:`FaceDetector` therefore:

1. runs HOG once over a grey *working copy* of the photo, rescaled so that
   faces down to ``min_face`` pixels reach HOG's 80-pixel window, but never
   longer than ``max_work_side`` pixels (this cap bounds the cost of a big
   photo, at the price of its smallest faces). HOG runs with a threshold
   *below* its default, so tilted faces that score just under it are kept as
   candidates;
2. re-checks each low-scoring candidate on a small crop around it, upright and
   rotated by ``recheck_angles``: a real tilted face becomes upright in one of
   them and scores well, while a texture that happened to score low does not.
   This costs a few milliseconds per candidate, where rotating the whole photo
   for extra HOG passes would cost a full pass per angle;
3. only when nothing survives, runs the CNN detector on a small copy of the
   photo. That is the single portrait with a turned head, where the face is
   large and a small copy is enough.

Boxes are always returned in pixels of the array passed in, clipped to it.
Measured trade-offs: ``docs/benchmarks.md`` ("Face detection"), produced by
``bench/detection.py``.

No Django and no TensorFlow imports: the web process and the workers both use
this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np
from PIL import Image

from predictor.vision.bundled_models import cnn_face_detector_path
from predictor.vision.image_loading import check_rgb_array

__all__ = [
    "CNN",
    "HOG",
    "HOG_RECHECKED",
    "FaceBox",
    "FaceDetector",
]

# Dlib's frontal face detector scans an 80x80 window over an image pyramid; a
# face whose box is smaller than this in the scanned image is never found.
HOG_WINDOW = 80

DEFAULT_MIN_FACE = 40
DEFAULT_MAX_WORK_SIDE = 1600
DEFAULT_CANDIDATE_THRESHOLD = -0.6
DEFAULT_ACCEPT_SCORE = 0.0
DEFAULT_RECHECK_ANGLES = (0.0, -15.0, 15.0)
DEFAULT_CNN_MAX_SIDE = 448
DEFAULT_CNN_MIN_CONFIDENCE = 0.0
DEFAULT_NMS_IOU = 0.3

# Re-check crops: the candidate box scaled to this many pixels, inside a crop
# this many times its side, so the face fits the 80-pixel window with room to
# rotate and for HOG's pyramid to pick its own scale.
_RECHECK_FACE = 100
_RECHECK_CROP = 2.2
# A re-check detection counts only if it is the same face: centre near the
# crop's centre and about the candidate's size.
_RECHECK_CENTRE = 0.35
_RECHECK_SIZE = (0.6, 1.6)
# A box mostly inside another is one face found at two pyramid levels, even
# when their IoU is low.
_CONTAINMENT = 0.6
_GREY_FILL = 128

HOG = "hog"
HOG_RECHECKED = "hog-rechecked"
CNN = "cnn"


@dataclass(frozen=True)
class FaceBox:
    """One detected face, in pixels of the image passed to :meth:`FaceDetector.detect`.

    ``left``/``top`` are inclusive and ``right``/``bottom`` exclusive, as in the
    NumPy slice ``rgb[top:bottom, left:right]``: the box is ``right - left``
    pixels wide and ``bottom - top`` high, and always lies inside the image
    (``0 <= left < right <= W``, ``0 <= top < bottom <= H``).

    ``detector`` says which detector produced it: ``"centerface"`` (the default,
    :mod:`predictor.vision.centerface`; ``score`` is its heatmap peak, 0-1),
    ``"hog"`` (HOG, above its acceptance score), ``"hog-rechecked"`` (a low HOG
    score, confirmed on an upright or rotated crop) or ``"cnn"`` (the CNN fallback).
    ``score`` is that detector's own confidence: HOG's SVM margin (the higher of the full-photo
    and re-check scores) or the CNN's MMOD confidence. HOG and CNN scores are
    on different scales and must not be compared.
    """

    left: int
    top: int
    right: int
    bottom: int
    score: float
    detector: str

    @property
    def width(self) -> int:
        """Width in pixels."""
        return self.right - self.left

    @property
    def height(self) -> int:
        """Height in pixels."""
        return self.bottom - self.top


@dataclass(frozen=True)
class Candidate:
    # Continuous input-image coordinates (pixel i spans [i, i + 1)), so scaling
    # is exact: x0, y0 are the left/top edges, x1, y1 the right/bottom edges.
    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    detector: str

    @property
    def area(self) -> float:
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)


def _resize(image: Image.Image, scale: float) -> tuple[Image.Image, float, float]:
    """Resize by ``scale``; return the image and the exact x and y scales used after rounding."""
    width, height = image.size
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == (width, height):
        return image, 1.0, 1.0
    # Bilinear widens its support when shrinking, so a downscale is antialiased
    # and HOG does not see aliasing as edges; reducing_gap makes a huge photo's
    # downscale cheap without visible loss at this size.
    reducing_gap = 3.0 if scale < 0.5 else None
    resized = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=reducing_gap)
    return resized, size[0] / width, size[1] / height


def _overlap(a: Candidate, b: Candidate) -> tuple[float, float]:
    """IoU, and the intersection over the smaller box's area."""
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    if width <= 0 or height <= 0:
        return 0.0, 0.0
    inter = width * height
    return inter / (a.area + b.area - inter), inter / min(a.area, b.area)


def suppress_overlaps(candidates: Sequence[Candidate], iou_threshold: float) -> list[Candidate]:
    """Greedy non-maximum suppression, highest score first."""
    # Ties are broken by position so the result never depends on input order.
    ordered = sorted(candidates, key=lambda c: (-c.score, c.x0, c.y0, c.x1, c.y1))
    kept: list[Candidate] = []
    for candidate in ordered:
        overlaps = (_overlap(candidate, other) for other in kept)
        if all(iou <= iou_threshold and inside <= _CONTAINMENT for iou, inside in overlaps):
            kept.append(candidate)
    return kept


def to_face_box(candidate: Candidate, width: int, height: int) -> FaceBox | None:
    left = min(max(0, round(candidate.x0)), width)
    top = min(max(0, round(candidate.y0)), height)
    right = min(max(0, round(candidate.x1)), width)
    bottom = min(max(0, round(candidate.y1)), height)
    if right <= left or bottom <= top:
        return None
    return FaceBox(left, top, right, bottom, round(candidate.score, 4), candidate.detector)


class FaceDetector:
    """Dlib HOG with re-checked low scores and a CNN fallback; models load once.

    One instance can be reused for any number of photos: :meth:`detect` keeps
    no state between calls and returns the same boxes for the same pixels.
    """

    def __init__(
        self,
        cnn_model_path: Path | None = None,
        *,
        min_face: int = DEFAULT_MIN_FACE,
        max_work_side: int = DEFAULT_MAX_WORK_SIDE,
        candidate_threshold: float = DEFAULT_CANDIDATE_THRESHOLD,
        accept_score: float = DEFAULT_ACCEPT_SCORE,
        recheck_angles: Sequence[float] = DEFAULT_RECHECK_ANGLES,
        cnn_fallback: bool = True,
        cnn_max_side: int = DEFAULT_CNN_MAX_SIDE,
        cnn_min_confidence: float = DEFAULT_CNN_MIN_CONFIDENCE,
        nms_iou: float = DEFAULT_NMS_IOU,
    ) -> None:
        """Load the detectors (the CNN only if ``cnn_fallback``).

        Args:
            cnn_model_path: dlib MMOD face detector ``.dat`` file; by default
                the one in the ``face-recognition-models`` wheel.
            min_face: smallest face box side, in input pixels, to look for. A
                small photo is upscaled (at most 2x for the default 40) so
                such a face reaches HOG's 80-pixel window.
            max_work_side: cap, in pixels, on the long side of the image HOG
                scans; HOG time grows with its square. A photo whose long side
                is L is scanned at ``min(80 / min_face, max_work_side / L)``
                times its size, so in a big photo faces smaller than
                ``80 * L / max_work_side`` input pixels are not found.
            candidate_threshold: HOG score (SVM margin; its default threshold
                is 0) down to which detections are kept as candidates.
            accept_score: candidates scoring at least this are accepted as
                they are; lower ones must pass the re-check.
            recheck_angles: in-plane rotations, in degrees counter-clockwise,
                of the crop a low-scoring candidate is re-checked on; the
                candidate is kept if HOG scores the face >= ``accept_score``
                at any of them. Empty rejects every low-scoring candidate.
            cnn_fallback: run the CNN detector when HOG finds no face at all.
            cnn_max_side: long side, in pixels, of the copy the CNN scans. It
                finds faces down to about 80 pixels of that copy (so about a
                fifth of the photo's long side at 448) and costs about 2 s on
                one CPU core at 448x336.
            cnn_min_confidence: CNN detections below this MMOD confidence are dropped.
            nms_iou: two boxes overlapping by more than this IoU are one face.

        Raises:
            FileNotFoundError: ``cnn_fallback`` is set and the CNN model file is missing.
            ValueError: a size is not positive or ``max_work_side`` is below 80.
        """
        if min_face < 1 or cnn_max_side < 1 or max_work_side < HOG_WINDOW:
            raise ValueError(
                f"min_face and cnn_max_side must be positive and max_work_side >= {HOG_WINDOW}"
            )
        self.min_face = min_face
        self.max_work_side = max_work_side
        self.candidate_threshold = float(candidate_threshold)
        self.accept_score = float(accept_score)
        self.recheck_angles = tuple(float(angle) for angle in recheck_angles)
        self.cnn_max_side = cnn_max_side
        self.cnn_min_confidence = float(cnn_min_confidence)
        self.nms_iou = float(nms_iou)
        self._hog = dlib.get_frontal_face_detector()
        self._cnn = None
        if cnn_fallback:
            path = Path(cnn_model_path) if cnn_model_path is not None else cnn_face_detector_path()
            if not path.is_file():
                raise FileNotFoundError(f"no CNN face detector model at {path}")
            self._cnn = dlib.cnn_face_detection_model_v1(str(path))

    def work_scale(self, width: int, height: int) -> float:
        """Scale from a ``width`` x ``height`` pixel input to the image HOG scans (<1 shrinks)."""
        return min(HOG_WINDOW / self.min_face, self.max_work_side / max(width, height))

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """Find the faces in a photo.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB array (HWC), any size.

        Returns:
            One :class:`FaceBox` per face, in pixels of ``rgb`` (right/bottom
            exclusive, clipped to the image), ordered left to right, then top
            to bottom. Empty when no face is found.

        Raises:
            TypeError: ``rgb`` is not a uint8 array.
            ValueError: ``rgb`` is not ``(H, W, 3)``.
        """
        rgb = check_rgb_array(rgb)
        height, width = rgb.shape[:2]
        faces = self._hog_faces(rgb)
        if not faces and self._cnn is not None:
            faces = self._cnn_faces(rgb)
        boxes = [
            to_face_box(face, width, height) for face in suppress_overlaps(faces, self.nms_iou)
        ]
        return sorted(
            (box for box in boxes if box is not None),
            key=lambda box: (box.left, box.top, box.right, box.bottom),
        )

    def _hog_faces(self, rgb: np.ndarray) -> list[Candidate]:
        # Grey makes HOG about a fifth faster and the resize twice as fast; with
        # low scores re-checked, the benchmark's recall moved by 2 faces in 169
        # against RGB, within its noise.
        grey = Image.fromarray(rgb).convert("L")
        work, sx, sy = _resize(grey, self.work_scale(*grey.size))
        rects, scores, _ = self._hog.run(np.asarray(work), 0, self.candidate_threshold)
        faces = []
        for rect, hog_score in zip(rects, scores, strict=True):
            # dlib rectangles are inclusive; +1 gives the exclusive edge.
            x0, y0, x1, y1 = rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1
            score, label = float(hog_score), HOG
            if score < self.accept_score:
                score = max(score, self._recheck(work, x0, y0, x1, y1))
                if score < self.accept_score:
                    continue
                label = HOG_RECHECKED
            faces.append(Candidate(x0 / sx, y0 / sy, x1 / sx, y1 / sy, score, label))
        return faces

    def _recheck(self, work: Image.Image, x0: int, y0: int, x1: int, y1: int) -> float:
        """Best HOG score of the same face on upright and rotated crops (-inf if none)."""
        side = max(x1 - x0, y1 - y0)
        centre_x, centre_y = (x0 + x1) / 2, (y0 + y1) / 2
        half = _RECHECK_CROP * side / 2
        crop_side = round(_RECHECK_CROP * _RECHECK_FACE)
        crop = work.transform(
            (crop_side, crop_side),
            Image.Transform.EXTENT,
            (centre_x - half, centre_y - half, centre_x + half, centre_y + half),
            Image.Resampling.BILINEAR,
            fillcolor=_GREY_FILL,
        )
        best = -math.inf
        for degrees in self.recheck_angles:
            # Rotating about the crop's centre keeps the face there, so the
            # same-face test below needs no coordinate mapping.
            view = crop.rotate(degrees, Image.Resampling.BILINEAR, fillcolor=_GREY_FILL)
            rects, scores, _ = self._hog.run(np.asarray(view), 0, 0.0)
            for rect, score in zip(rects, scores, strict=True):
                if _same_face(rect, crop_side):
                    best = max(best, float(score))
        return best

    def _cnn_faces(self, rgb: np.ndarray) -> list[Candidate]:
        image = Image.fromarray(rgb)
        small, sx, sy = _resize(image, min(1.0, self.cnn_max_side / max(image.size)))
        assert self._cnn is not None
        faces = []
        for detection in self._cnn(np.asarray(small), 0):
            if detection.confidence < self.cnn_min_confidence:
                continue
            rect = detection.rect
            faces.append(
                Candidate(
                    rect.left() / sx,
                    rect.top() / sy,
                    (rect.right() + 1) / sx,
                    (rect.bottom() + 1) / sy,
                    float(detection.confidence),
                    CNN,
                )
            )
        return faces


def _same_face(rect: dlib.rectangle, crop_side: int) -> bool:
    width = rect.right() + 1 - rect.left()
    offset_x = (rect.left() + rect.right() + 1) / 2 - crop_side / 2
    offset_y = (rect.top() + rect.bottom() + 1) / 2 - crop_side / 2
    low, high = _RECHECK_SIZE
    return (
        math.hypot(offset_x, offset_y) < _RECHECK_CENTRE * _RECHECK_FACE
        and low * _RECHECK_FACE <= width <= high * _RECHECK_FACE
    )
