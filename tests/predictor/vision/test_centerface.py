"""CenterFace, the default face detector, on real faces from ../shared/datasets."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from predictor.vision.alignment import FaceAligner
from predictor.vision.centerface import (
    CENTERFACE,
    DEFAULT_GROUP_THRESHOLD,
    DEFAULT_THRESHOLD,
    CenterFaceDetector,
    centerface_model_path,
    default_face_detector,
    dlib_style_box,
)
from predictor.vision.face_detection import Candidate, FaceDetector
from tests.datasets import require_dataset, sample_utkface


@pytest.fixture(scope="module")
def detector() -> CenterFaceDetector:
    return CenterFaceDetector()


def fairface_portraits(count: int, seed: int) -> list[np.ndarray]:
    files = sorted((require_dataset("fairface") / "val").glob("*.jpg"))
    return [
        np.asarray(Image.open(path).convert("RGB"))
        for path in random.Random(seed).sample(files, count)
    ]


def grid(portraits: list[np.ndarray], tile: int) -> np.ndarray:
    """A 2x2 group photo of four portraits, each scaled to ``tile`` pixels."""
    canvas = Image.new("RGB", (2 * tile, 2 * tile))
    for i, rgb in enumerate(portraits):
        resized = Image.fromarray(rgb).resize((tile, tile), Image.Resampling.BICUBIC)
        canvas.paste(resized, ((i % 2) * tile, (i // 2) * tile))
    return np.asarray(canvas)


def test_the_model_ships_in_an_installed_wheel():
    path = centerface_model_path()
    assert path.name == "centerface.onnx" and path.stat().st_size > 1_000_000


def test_the_default_detector_is_centerface():
    assert isinstance(default_face_detector(), CenterFaceDetector)


def test_it_finds_the_face_of_in_the_wild_portraits(detector):
    portraits = fairface_portraits(40, seed=3)
    found = [detector.detect(rgb) for rgb in portraits]
    # The old HOG cascade found about 72% of these; CenterFace about 99% (docs/benchmarks.md).
    assert sum(bool(boxes) for boxes in found) >= 38
    for boxes, rgb in zip(found, portraits, strict=True):
        height, width = rgb.shape[:2]
        for box in boxes:
            assert box.detector == CENTERFACE and 0 < box.score <= 1
            assert 0 <= box.left < box.right <= width and 0 <= box.top < box.bottom <= height


def test_it_finds_every_face_of_a_group_photo_with_one_box_each(detector):
    portraits = fairface_portraits(4, seed=5)
    for tile in (100, 300):
        boxes = detector.detect(grid(portraits, tile))
        centres = sorted(
            (round((b.top + b.bottom) / 2 / tile - 0.5), round((b.left + b.right) / 2 / tile - 0.5))
            for b in boxes
        )
        assert centres == [(0, 0), (0, 1), (1, 0), (1, 1)], (tile, boxes)
        # Boxes are square (unless clipped at the photo's edge), dlib-sized (about two
        # thirds of a FairFace tile).
        for box in boxes:
            assert abs(box.width - box.height) <= 0.1 * max(box.width, box.height)
            assert 0.4 * tile < box.width < 0.95 * tile


def tile_centres(boxes, tile: int) -> list[tuple[int, int]]:
    return sorted(
        (round((b.top + b.bottom) / 2 / tile - 0.5), round((b.left + b.right) / 2 / tile - 0.5))
        for b in boxes
    )


@pytest.mark.parametrize(
    ("names", "tile"),
    [
        # Group photos of the tuning set (seed 7) in which one face is found only mirrored.
        (("1623.jpg", "4580.jpg", "4513.jpg", "4935.jpg"), 150),
        (("1906.jpg", "3978.jpg", "3574.jpg", "1237.jpg"), 100),
        (("3434.jpg", "3389.jpg", "4027.jpg", "1484.jpg"), 135),
    ],
)
def test_a_group_photo_is_scanned_again_mirrored(detector, names, tile):
    val = require_dataset("fairface") / "val"
    portraits = [np.asarray(Image.open(val / name).convert("RGB")) for name in names]
    photo = grid(portraits, tile)
    once = CenterFaceDetector(mirror_from_faces=0).detect(photo)
    assert len(once) == 3  # the first scan misses one face...
    boxes = detector.detect(photo)
    assert tile_centres(boxes, tile) == [(0, 0), (0, 1), (1, 0), (1, 1)], boxes  # ...not both
    assert all(box.detector == CENTERFACE for box in boxes)


def test_a_portrait_is_scanned_once(detector, monkeypatch):
    """One face found: no mirrored scan (its cost is paid by group photos only)."""
    scans = []
    real_scan = CenterFaceDetector._scan
    monkeypatch.setattr(
        CenterFaceDetector,
        "_scan",
        lambda self, rgb, *args, **kwargs: (
            scans.append(rgb.shape) or real_scan(self, rgb, *args, **kwargs)
        ),
    )
    portrait = fairface_portraits(1, seed=3)[0]
    assert len(detector.detect(portrait)) == 1
    assert len(scans) == 1
    scans.clear()
    assert len(detector.detect(grid(fairface_portraits(4, seed=5), 200))) == 4
    assert len(scans) == 2  # a group photo: once as it is, once mirrored


@pytest.mark.parametrize(
    ("names", "tile", "weak"),
    [
        # Group photos of the tuning set (FairFace validation photos drawn with seed 7) in
        # which one face peaks between the group threshold and the threshold.
        (("4363.jpg", "2689.jpg", "826.jpg", "3531.jpg"), 150, (1, 0)),
        (("4346.jpg", "2977.jpg", "2490.jpg", "1207.jpg"), 150, (1, 1)),
        (("499.jpg", "1203.jpg", "3130.jpg", "4580.jpg"), 150, (1, 1)),
    ],
)
def test_a_weak_face_of_a_group_photo_counts_when_it_is_as_large_as_the_others(
    detector, names, tile, weak
):
    val = require_dataset("fairface") / "val"
    photo = grid([np.asarray(Image.open(val / name).convert("RGB")) for name in names], tile)
    without = CenterFaceDetector(group_threshold=DEFAULT_THRESHOLD).detect(photo)
    assert weak not in tile_centres(without, tile) and len(without) == 3
    boxes = detector.detect(photo)
    assert tile_centres(boxes, tile) == [(0, 0), (0, 1), (1, 0), (1, 1)], boxes
    (found,) = [box for box in boxes if tile_centres([box], tile) == [weak]]
    assert DEFAULT_GROUP_THRESHOLD < found.score <= DEFAULT_THRESHOLD


def fake_scans(monkeypatch, *scans: list[Candidate]) -> list[float]:
    """``_scan``'s n-th call gives the n-th list of ``scans`` (none past the last), each cut
    at the call's floor as the real scan cuts its peaks: for a group photo the first call is
    the photo as it is and the second its mirror image (in the mirror image's pixels); for a
    photo with no sure face, the padded and the smoothed retries. Returns each call's floor."""
    floors: list[float] = []

    def scan(self, rgb, padding, smoothing=0.0, floor=None):
        floors.append(self.threshold if floor is None else floor)
        given = scans[len(floors) - 1] if len(floors) <= len(scans) else []
        return [face for face in given if face.score > floors[-1]]

    monkeypatch.setattr(CenterFaceDetector, "_scan", scan)
    return floors


def face(x0: float, side: float, score: float) -> Candidate:
    return Candidate(x0, 100.0, x0 + side, 100.0 + side, score, CENTERFACE)


def test_weak_peaks_count_in_a_group_photo_only_when_as_large_as_its_sure_faces(monkeypatch):
    photo = np.zeros((600, 1200, 3), np.uint8)
    sure = [face(10, 100, 0.9), face(210, 120, 0.8)]
    weak_face = face(410, 80, 0.3)  # 80 >= 0.5 * the median side (110): a face
    weak_ear = face(610, 40, 0.3)  # 40 < 55: an ear, a corner of glasses
    too_weak = face(810, 100, 0.2)  # below the group threshold: never
    floors = fake_scans(monkeypatch, [*sure, weak_face, weak_ear, too_weak], [])
    boxes = CenterFaceDetector().detect(photo)
    assert [round(box.score, 2) for box in boxes] == [0.9, 0.8, 0.3]
    assert boxes[2].left < 450 < boxes[2].right  # the weak face, not the ear
    assert floors == [DEFAULT_GROUP_THRESHOLD, DEFAULT_GROUP_THRESHOLD]  # as it is, mirrored


def test_a_weak_face_found_only_mirrored_comes_back_where_it_is(monkeypatch):
    photo = np.zeros((600, 1000, 3), np.uint8)
    # In the mirror image's pixels, x from 300 to 400 is x from 600 to 700 in the photo.
    fake_scans(monkeypatch, [face(10, 100, 0.9), face(210, 100, 0.8)], [face(300, 100, 0.3)])
    boxes = CenterFaceDetector().detect(photo)
    assert [round(box.score, 2) for box in boxes] == [0.9, 0.8, 0.3]
    assert boxes[2].left < 650 < boxes[2].right


def test_the_group_rule_at_its_edges(monkeypatch):
    """Above the group threshold (not at it), at most the threshold, and half the median
    side or more (exactly half counts)."""
    photo = np.zeros((600, 1600, 3), np.uint8)
    sure = [face(10, 100, 0.9), face(210, 100, 0.8)]
    at_threshold = face(410, 50, DEFAULT_THRESHOLD)  # weak, exactly half the median: a face
    a_bit_small = face(610, 49.5, 0.3)
    at_floor = face(810, 100, DEFAULT_GROUP_THRESHOLD)  # not above the group threshold
    fake_scans(monkeypatch, [*sure, at_threshold, a_bit_small, at_floor], [])
    boxes = CenterFaceDetector().detect(photo)
    assert [round(box.score, 2) for box in boxes] == [0.9, 0.8, DEFAULT_THRESHOLD]


def test_a_portraits_weak_peaks_never_count(monkeypatch):
    """One sure face: a portrait, judged on the threshold alone, as before (no mirrored scan,
    and a weak peak beside it as large as it is not a second face)."""
    photo = np.zeros((400, 800, 3), np.uint8)
    floors = fake_scans(monkeypatch, [face(10, 100, 0.9), face(300, 100, 0.34)])
    boxes = CenterFaceDetector().detect(photo)
    assert [round(box.score, 2) for box in boxes] == [0.9]
    assert floors == [DEFAULT_GROUP_THRESHOLD]


def test_weak_peaks_alone_are_no_face_and_the_retries_cut_at_the_threshold(monkeypatch):
    photo = np.zeros((400, 800, 3), np.uint8)
    weak = [face(10, 100, 0.3), face(300, 100, 0.3)]
    floors = fake_scans(monkeypatch, weak, weak, weak)
    assert CenterFaceDetector().detect(photo) == []
    # The first scan, the padded retry and the smoothed retry.
    assert floors == [DEFAULT_GROUP_THRESHOLD, DEFAULT_THRESHOLD, DEFAULT_THRESHOLD]


def test_without_a_group_threshold_below_the_threshold_weak_peaks_never_count(monkeypatch):
    photo = np.zeros((600, 1200, 3), np.uint8)
    fake_scans(monkeypatch, [face(10, 100, 0.9), face(210, 120, 0.8), face(410, 100, 0.3)], [])
    boxes = CenterFaceDetector(group_threshold=DEFAULT_THRESHOLD).detect(photo)
    assert [round(box.score, 2) for box in boxes] == [0.9, 0.8]


def test_a_lower_threshold_alone_lowers_the_group_threshold_with_it():
    assert CenterFaceDetector(threshold=0.2).group_threshold == 0.2
    assert CenterFaceDetector().group_threshold == DEFAULT_GROUP_THRESHOLD


def test_a_tightly_cropped_face_is_found_on_the_padded_retry(utkface_dir):
    """UTKFace chips are cropped to the face: without the grey border some are missed."""
    chips = [np.asarray(Image.open(p).convert("RGB")) for p in sample_utkface(60, seed=8)]
    padded = CenterFaceDetector()
    plain = CenterFaceDetector(retry_padding=0.0)
    found_padded = sum(bool(padded.detect(rgb)) for rgb in chips)
    found_plain = sum(bool(plain.detect(rgb)) for rgb in chips)
    assert found_padded >= 59
    assert found_padded >= found_plain


def test_a_grainy_scan_is_found_on_the_smoothed_retry():
    """Grain (as on a scanned print) hides some faces from the detector; the retry on a
    smoothed copy finds them. (Validation photos: the radius was tuned on training photos.
    Face-free images stay face-free: test_no_face_in_flat_or_noise_images, whose images go
    through every retry.)"""
    files = sorted((require_dataset("fairface") / "val").glob("*.jpg"))
    rng = np.random.default_rng(4)
    grainy = []
    for path in random.Random(4).sample(files, 60):
        rgb = np.asarray(Image.open(path).convert("RGB"), np.float32)
        noise = rng.normal(0.0, 18.0, rgb.shape[:2])[..., None]
        grainy.append(np.clip(rgb + noise, 0, 255).astype(np.uint8))
    smoothed = CenterFaceDetector()
    plain = CenterFaceDetector(retry_smoothing=0.0)
    found_plain = sum(bool(plain.detect(rgb)) for rgb in grainy)
    found_smoothed = sum(bool(smoothed.detect(rgb)) for rgb in grainy)
    assert found_plain <= 56  # the grain does hide faces (55 of 60 found)
    assert found_smoothed >= found_plain + 4 and found_smoothed >= 59  # (60)


def test_no_face_in_flat_or_noise_images(detector):
    rng = np.random.default_rng(0)
    assert detector.detect(np.full((480, 640, 3), 127, np.uint8)) == []
    assert detector.detect(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)) == []


def test_tiny_and_huge_photos_are_handled(detector):
    portrait = fairface_portraits(1, seed=9)[0]
    small = np.asarray(Image.fromarray(portrait).resize((48, 48)))
    assert len(detector.detect(small)) == 1  # scaled up to the working size first
    huge = np.asarray(Image.fromarray(grid([portrait] * 4, 1500)))  # 3000 x 3000 px
    boxes = detector.detect(huge)
    assert len(boxes) == 4
    assert all(box.right <= 3000 and box.bottom <= 3000 for box in boxes)


def test_its_boxes_align_like_the_hog_boxes_the_landmark_model_was_trained_on(detector):
    """The 5-point landmarks (which place the chip the age network sees) found from a
    CenterFace box and from dlib's own HOG box of the same face nearly coincide."""
    aligner = FaceAligner()
    hog = FaceDetector(cnn_fallback=False)
    errors = []
    for rgb in fairface_portraits(60, seed=12):
        ours, theirs = detector.detect(rgb), hog.detect(rgb)
        if len(ours) != 1 or len(theirs) != 1:
            continue
        shift = aligner.landmarks(rgb, ours[0]) - aligner.landmarks(rgb, theirs[0])
        errors.append(np.linalg.norm(shift, axis=1).max() / theirs[0].width)
    assert len(errors) >= 30
    # Measured on 151 faces: median 0.8% of the face's width, 90th percentile 2.5%.
    assert np.median(errors) < 0.02
    assert np.percentile(errors, 90) < 0.05


def test_dlib_style_box_keeps_the_centre_and_squares_the_box():
    left, top, right, bottom = dlib_style_box(10, 20, 110, 140)
    assert (left + right) / 2 == pytest.approx(60) and (top + bottom) / 2 == pytest.approx(80)
    assert right - left == pytest.approx(bottom - top)
    assert right - left == pytest.approx(0.973 * (100 * 120) ** 0.5)


def test_a_missing_model_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        CenterFaceDetector(tmp_path / "missing.onnx")


def test_bad_options_are_refused():
    with pytest.raises(ValueError):
        CenterFaceDetector(threshold=0)
    with pytest.raises(ValueError):
        CenterFaceDetector(mirror_from_faces=-1)
    with pytest.raises(ValueError, match="retry_smoothing"):
        CenterFaceDetector(retry_smoothing=-1)
    with pytest.raises(ValueError, match="group_threshold"):
        CenterFaceDetector(group_threshold=0.5)  # above the threshold
    with pytest.raises(ValueError, match="group_threshold"):
        CenterFaceDetector(group_min_side=-1)
    with pytest.raises(ValueError):
        CenterFaceDetector(min_work_side=256, max_work_side=128)
