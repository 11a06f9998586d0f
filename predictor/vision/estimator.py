"""Photo in, one age estimate per face out: detection, alignment, one batched network call."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predictor.vision.age_network import AgeNetwork
from predictor.vision.alignment import FaceAligner
from predictor.vision.face_detection import FaceBox, FaceDetector


@dataclass(frozen=True)
class FaceEstimate:
    """One face: ``box`` is ``[left, top, right, bottom]`` in pixels of the input image;
    ``age`` and ``age_std`` are in years."""

    box: tuple[int, int, int, int]
    age: float
    age_std: float
    detection_score: float
    detector: str


class AgeEstimator:
    """Holds the loaded detector, aligner and network; build once per process."""

    def __init__(
        self,
        network: AgeNetwork,
        detector: FaceDetector | None = None,
        aligner: FaceAligner | None = None,
    ) -> None:
        self.network = network
        self.detector = detector or FaceDetector()
        self.aligner = aligner or FaceAligner()

    def with_network(self, network: AgeNetwork) -> AgeEstimator:
        """The same detector and aligner with another network (no reload of dlib models)."""
        return AgeEstimator(network, self.detector, self.aligner)

    def estimate(self, rgb: np.ndarray) -> list[FaceEstimate]:
        """Estimate every face in an ``(H, W, 3)`` uint8 RGB image, in one network batch."""
        boxes = self.detector.detect(rgb)
        return self.estimate_boxes(rgb, boxes)

    def estimate_boxes(self, rgb: np.ndarray, boxes: list[FaceBox]) -> list[FaceEstimate]:
        if not boxes:
            return []
        chips = self.aligner.align_many(rgb, boxes)
        result = self.network.predict(chips)
        return [
            FaceEstimate(
                box=(box.left, box.top, box.right, box.bottom),
                age=float(result.ages[i]),
                age_std=float(result.age_std[i]),
                detection_score=float(box.score),
                detector=box.detector,
            )
            for i, box in enumerate(boxes)
        ]
