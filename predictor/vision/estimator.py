"""Photo in, one age estimate per face out: detection, alignment, one batched network call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from predictor.vision.age_network import AgeDistribution, AgeNetwork
from predictor.vision.alignment import FaceAligner
from predictor.vision.centerface import CenterFaceDetector, default_face_detector
from predictor.vision.face_detection import FaceBox, FaceDetector
from predictor.vision.photo import Photo, as_photo
from predictor.vision.uncertainty import AgeIntervals, chip_jpeg, describe

# FaceBox.detector for a face the person marked ("Missed someone?"; Face.DRAWN).
DRAWN = "drawn"
# A photo decoded at a reduced scale (:mod:`predictor.vision.photo`) gives its chips from those
# pixels when every face box to rate is at least this many chip sides across in them;
# otherwise from the full-size pixels. Chosen with bench/reduced_decode.py
# (docs/benchmarks.md, "12 MP photos decoded at half size").
REDUCED_MIN_FACE_CHIPS = 2.0


@dataclass(frozen=True)
class FaceEstimate:
    """One face: ``box`` is ``[left, top, right, bottom]`` in pixels of the photo at full size;
    ``age`` (the network's expected value) and ``age_std`` are in years. ``age_std``,
    ``age_low``..``age_high`` (the 80% interval, whole years) and ``distribution`` (the
    probabilities of ages 0..100) are after the network's calibration temperature
    (:mod:`predictor.vision.uncertainty`); ``chip_jpeg`` is the aligned crop the network
    read (64x64 for the dlib network)."""

    box: tuple[int, int, int, int]
    age: float
    age_std: float
    detection_score: float
    detector: str
    age_low: int | None = None
    age_high: int | None = None
    distribution: tuple[float, ...] = ()
    chip_jpeg: bytes = b""


class AgeEstimator:
    """Holds the loaded detector, aligner and network; build once per process."""

    def __init__(
        self,
        network: AgeNetwork,
        detector: CenterFaceDetector | FaceDetector | None = None,
        aligner: FaceAligner | None = None,
    ) -> None:
        self.network = network
        self.detector = detector or default_face_detector()
        self.aligner = aligner or FaceAligner()

    def with_network(self, network: AgeNetwork) -> AgeEstimator:
        """The same detector and aligner with another network (no reload of dlib models)."""
        return AgeEstimator(network, self.detector, self.aligner)

    def estimate(self, photo: Photo | np.ndarray) -> list[FaceEstimate]:
        """Estimate every face in a photo (a :class:`~predictor.vision.photo.Photo` or an
        ``(H, W, 3)`` uint8 RGB array), in one network batch."""
        boxes = self.detect(photo)
        return self.estimate_boxes(photo, boxes)

    def detect(self, photo: Photo | np.ndarray) -> list[FaceBox]:
        """The detector's faces, in pixels of the photo at full size."""
        photo = as_photo(photo)
        return [photo.to_photo(box) for box in self.detector.detect(photo.pixels)]

    def drawn_face(self, photo: Photo | np.ndarray, drawn: Sequence[int]) -> FaceBox:
        """The face a person marked by hand (``[left, top, right, bottom]`` in pixels of
        the photo at full size), as a box the aligner can use, in the same pixels;
        ``detector`` is ``"drawn"``.

        The detector looks again in the marked region with a margin of half its side around
        it; the largest face whose centre lies inside the marked box gives the box (with its
        score), so a loose or tight hand-drawn box is aligned like a detected face. When
        nothing is found there (too small, blurred, turned away), the marked box itself is
        used, clipped to the image, with score 0. A photo decoded at a reduced scale is
        searched in its full-size pixels when the marked box is too small for chips from the
        reduced ones (:meth:`chip_source`): its chip needs them anyway, and the small faces
        people mark are the ones a reduced copy hides best.

        Raises:
            ValueError: the marked box lies outside the photo.
            ImageRejected: the photo cannot be decoded at full size.
        """
        photo = as_photo(photo)
        width, height = photo.size
        left, top = max(0, int(drawn[0])), max(0, int(drawn[1]))
        right, bottom = min(width, int(drawn[2])), min(height, int(drawn[3]))
        if right <= left or bottom <= top:
            raise ValueError(
                f"the marked box {list(drawn)} lies outside the {width}x{height} image"
            )
        marked = FaceBox(left, top, right, bottom, score=0.0, detector=DRAWN)
        if self._needs_full_size(photo, [marked]):
            found = self._face_in(photo.full(), (left, top, right, bottom))
        else:
            found = self._face_in(photo.pixels, photo.to_pixels((left, top, right, bottom)))
            found = found and photo.to_photo(found)
        return found or marked

    def _face_in(self, rgb: np.ndarray, marked: tuple[int, int, int, int]) -> FaceBox | None:
        """The largest face the detector finds around ``marked`` (in pixels of ``rgb``) whose
        centre lies inside it, as a ``"drawn"`` box; None when there is none."""
        height, width = rgb.shape[:2]
        left, top, right, bottom = marked
        pad = max(right - left, bottom - top) // 2
        x0, y0 = max(0, left - pad), max(0, top - pad)
        x1, y1 = min(width, right + pad), min(height, bottom + pad)
        found = self.detector.detect(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
        inside = [
            face
            for face in found
            if left <= x0 + (face.left + face.right) / 2 <= right
            and top <= y0 + (face.top + face.bottom) / 2 <= bottom
        ]
        if not inside:
            return None
        best = max(inside, key=lambda face: face.width * face.height)
        return FaceBox(
            x0 + best.left, y0 + best.top, x0 + best.right, y0 + best.bottom, best.score, DRAWN
        )

    def estimate_boxes(self, photo: Photo | np.ndarray, boxes: list[FaceBox]) -> list[FaceEstimate]:
        return self.estimate_many_boxes([(photo, boxes)])[0]

    def chip_source(
        self, photo: Photo | np.ndarray, boxes: Sequence[FaceBox]
    ) -> tuple[np.ndarray, list[FaceBox]]:
        """The pixels the chips of ``boxes`` (in pixels of the photo at full size) are cut
        from, and the boxes in those pixels: the reduced pixels of a photo decoded at a
        reduced scale when every face is at least :data:`REDUCED_MIN_FACE_CHIPS` chip sides
        across in them, the full-size ones otherwise (decoded now, the first time).

        Raises:
            ImageRejected: the photo cannot be decoded at full size.
        """
        photo = as_photo(photo)
        if self._needs_full_size(photo, boxes):
            return photo.full(), list(boxes)
        return photo.pixels, [photo.reduced_box(box) for box in boxes]

    def _needs_full_size(self, photo: Photo, boxes: Sequence[FaceBox]) -> bool:
        """Whether chips of ``boxes`` (in pixels of the photo at full size) are cut from the
        full-size pixels: always for a full-size photo, and for a reduced one when a face is
        under :data:`REDUCED_MIN_FACE_CHIPS` chip sides across in its reduced pixels."""
        least = REDUCED_MIN_FACE_CHIPS * self.network.chip_size * photo.scale
        return photo.scale == 1 or any(min(box.width, box.height) < least for box in boxes)

    def estimate_many_boxes(
        self, images: Sequence[tuple[Photo | np.ndarray, list[FaceBox]]]
    ) -> list[list[FaceEstimate]]:
        """Rate the given faces of several images with ONE network call for all of them.

        Alignment stays per image, from the pixels :meth:`chip_source` chooses; the network,
        much faster per face in a batch, sees the chips of all images together. One list per
        image, in the input order, with the boxes as given. (The worker detects faces itself,
        photo by photo, and calls :meth:`chip_source` there, so that one failing photo fails
        alone.)"""
        size = self.network.chip_size  # the chips the network reads (64 px for dlib's)
        chip_groups = [
            self.aligner.align_many(*self.chip_source(photo, boxes), size)
            for photo, boxes in images
            if boxes
        ]
        if not chip_groups:
            return [[] for _ in images]
        chips = np.concatenate(chip_groups)
        result = self.network.predict(chips)
        spread = describe(result.probabilities, self.network.class_ages, self.network.temperature)
        estimates: list[list[FaceEstimate]] = []
        offset = 0
        for _, boxes in images:
            estimates.append(
                [self._face(box, result, offset + i, spread, chips) for i, box in enumerate(boxes)]
            )
            offset += len(boxes)
        return estimates

    @staticmethod
    def _face(
        box: FaceBox, result: AgeDistribution, row: int, spread: AgeIntervals, chips: np.ndarray
    ) -> FaceEstimate:
        """The estimate for ``box`` from row ``row`` of a (batched) network result."""
        return FaceEstimate(
            box=(box.left, box.top, box.right, box.bottom),
            age=float(result.ages[row]),
            age_std=float(spread.std[row]),
            detection_score=float(box.score),
            detector=box.detector,
            age_low=int(spread.low[row]),
            age_high=int(spread.high[row]),
            distribution=tuple(round(float(p), 4) for p in spread.years[row]),
            chip_jpeg=chip_jpeg(chips[row]),
        )
