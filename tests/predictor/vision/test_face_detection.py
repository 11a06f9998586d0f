"""FaceDetector on photos composed from real UTKFace faces, with known face positions.

UTKFace chips are cropped tightly to the face, so each is pasted with a blurred,
edge-extended margin that fades into the background; the expected box is the
centre 90% of the pasted chip, where dlib's detectors put theirs. The CNN
fallback only runs when HOG finds nothing, which here is only the two
no-face images.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from predictor.vision.face_detection import FaceBox, FaceDetector
from tests.datasets import sample_utkface

FACE_SHARE_OF_CHIP = 0.9


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def faces(utkface_dir: Path) -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for path in sample_utkface(4, seed=11)]


def _background(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 90 + 60 * (xs / width)[..., None] + 30 * (ys / height)[..., None] * [1, 0.5, -0.5]
    noisy = base + rng.normal(0, 8, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _paste(canvas: Image.Image, face: Image.Image, centre: tuple[int, int], side: int, tilt=0.0):
    """Paste ``face`` so its face box is ``side`` pixels, centred at ``centre``; return the box."""
    chip_side = round(side / FACE_SHARE_OF_CHIP)
    margin = round(0.35 * chip_side)
    rgb = np.asarray(face.resize((chip_side, chip_side), Image.Resampling.BICUBIC))
    padded = np.pad(rgb, ((margin, margin), (margin, margin), (0, 0)), "edge")
    sprite = Image.fromarray(padded).filter(ImageFilter.GaussianBlur(margin / 4))
    sprite.paste(Image.fromarray(rgb), (margin, margin))
    alpha = Image.new("L", sprite.size, 0)
    ImageDraw.Draw(alpha).ellipse(
        (margin // 3, margin // 3, *(s - margin // 3 for s in sprite.size)), 255
    )
    sprite.putalpha(alpha.filter(ImageFilter.GaussianBlur(margin / 3)))
    if tilt:
        sprite = sprite.rotate(tilt, Image.Resampling.BICUBIC, expand=True)
    x, y = centre
    canvas.paste(sprite, (x - sprite.width // 2, y - sprite.height // 2), sprite)
    half = side // 2
    return (x - half, y - half, x - half + side, y - half + side)


def _iou(a, b) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _assert_found(boxes: list[FaceBox], truth, min_iou: float = 0.4) -> FaceBox:
    """The one box that is the face at ``truth``: overlapping it and centred inside it."""
    matches = [
        box
        for box in boxes
        if _iou((box.left, box.top, box.right, box.bottom), truth) >= min_iou
        and truth[0] <= (box.left + box.right) / 2 < truth[2]
        and truth[1] <= (box.top + box.bottom) / 2 < truth[3]
    ]
    assert len(matches) == 1, f"face at {truth} matched by {matches} among {boxes}"
    return matches[0]


def _assert_inside(boxes: list[FaceBox], width: int, height: int) -> None:
    for box in boxes:
        assert 0 <= box.left < box.right <= width, box
        assert 0 <= box.top < box.bottom <= height, box


def test_finds_each_face_of_a_group_photo_including_a_tilted_one(detector, faces):
    canvas = _background(1200, 800, seed=1)
    truths = [
        _paste(canvas, faces[0], (250, 300), 180),
        _paste(canvas, faces[1], (650, 520), 110, tilt=15),
        _paste(canvas, faces[2], (1000, 250), 70),
    ]
    rgb = np.asarray(canvas)
    boxes = detector.detect(rgb)

    assert len(boxes) == len(truths), boxes
    for truth in truths:
        _assert_found(boxes, truth)
    _assert_inside(boxes, 1200, 800)
    assert all(box.detector in {"hog", "hog-rechecked"} for box in boxes)
    assert [box.left for box in boxes] == sorted(box.left for box in boxes)
    # Same pixels, same boxes: nothing in the detector depends on call order.
    assert detector.detect(rgb.copy()) == boxes


def test_boxes_of_a_big_photo_are_in_its_own_pixels(detector, faces):
    # Scanned at 1600 px, but the boxes must come back in the 3000x2000 frame.
    canvas = _background(3000, 2000, seed=2)
    truths = [
        _paste(canvas, faces[3], (2300, 1500), 420),
        _paste(canvas, faces[0], (700, 600), 300, tilt=-15),
    ]
    boxes = detector.detect(np.asarray(canvas))

    assert len(boxes) == 2, boxes
    for truth in truths:
        box = _assert_found(boxes, truth, min_iou=0.5)
        assert 0.7 < box.width / (truth[2] - truth[0]) < 1.4
    _assert_inside(boxes, 3000, 2000)


def test_small_photo_is_upscaled_so_a_small_face_is_found(detector, faces):
    # A 50 px face is below HOG's 80 px window unless the photo is upscaled.
    canvas = _background(320, 240, seed=3)
    truth = _paste(canvas, faces[1], (150, 120), 50)
    boxes = detector.detect(np.asarray(canvas))

    assert len(boxes) == 1, boxes
    _assert_found(boxes, truth)


def test_face_filling_the_whole_image_gives_a_box_inside_it(detector, faces):
    rgb = np.asarray(faces[2])
    boxes = detector.detect(rgb)

    assert len(boxes) == 1, boxes
    _assert_inside(boxes, rgb.shape[1], rgb.shape[0])
    assert boxes[0].width > 0.6 * rgb.shape[1]


def test_no_face_in_blank_or_noise_images(detector):
    # Both fall through to the CNN fallback, which must not invent a face either.
    blank = np.full((480, 640, 3), 128, np.uint8)
    rng = np.random.default_rng(4)
    noise = np.asarray(
        Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).resize(
            (960, 720), Image.Resampling.BICUBIC
        )
    )
    assert detector.detect(blank) == []
    assert detector.detect(noise) == []


def test_work_scale_upscales_small_photos_and_caps_big_ones(detector):
    assert (detector.min_face, detector.max_work_side) == (40, 1600)
    assert detector.work_scale(400, 300) == 2.0
    assert detector.work_scale(1000, 750) == 1.6
    assert math.isclose(detector.work_scale(2000, 3000), 1600 / 3000)


@pytest.mark.parametrize(
    "array, error",
    [
        (np.zeros((10, 10, 3), np.float32), TypeError),
        (np.zeros((10, 10), np.uint8), ValueError),
        (np.zeros((10, 10, 4), np.uint8), ValueError),
        (np.zeros((0, 10, 3), np.uint8), ValueError),
    ],
)
def test_rejects_arrays_that_are_not_hwc_uint8_rgb(detector, array, error):
    with pytest.raises(error):
        detector.detect(array)


def test_missing_cnn_model_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError):
        FaceDetector(tmp_path / "missing.dat")
