"""Large JPEGs decoded at a reduced scale (predictor.vision.photo): the scale libjpeg is asked
for, boxes carried between the reduced and the stored photo's pixels, and, on real faces, the
same faces and ages as the full-size decode, with chips from the full size only where a face
is small."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from predictor.vision.face_detection import FaceBox
from predictor.vision.image_loading import (
    ImageRejected,
    PhotoLimits,
    as_array,
    load_photo,
    load_reduced,
)
from predictor.vision.photo import Photo, as_photo, decode_photo
from tests import images
from tests.datasets import sample_utkface

LIMITS = PhotoLimits(max_bytes=None, max_pixels=40_000_000)


def jpeg(width: int, height: int, **params) -> bytes:
    gradient = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    pixels = np.broadcast_to(gradient, (height, width, 3)).astype(np.uint8)
    return images.encode(Image.fromarray(pixels), "JPEG", quality=90, **params)


@pytest.mark.parametrize(
    "size, work_side, scale",
    [
        ((4000, 3000), 1280, 2),  # a 12 MP phone photo: half size still leaves 2000 px
        ((4001, 2999), 1280, 2),  # odd sides round up
        ((4000, 3000), 600, 4),
        ((4000, 3000), 400, 8),
        ((2000, 1500), 1280, 1),  # half would be under the detector's 1280 px
        ((448, 448), 1280, 1),
        ((12000, 60), 1280, 1),  # a panorama: half would be under the 32 px minimum side
    ],
)
def test_a_jpeg_is_decoded_at_the_largest_scale_that_keeps_the_work_side(size, work_side, scale):
    image, got_scale, upright = load_reduced(jpeg(*size), LIMITS, work_side)
    assert got_scale == scale
    assert upright == size
    assert image.size == (-(-size[0] // scale), -(-size[1] // scale))
    assert image.mode == "RGB"


@pytest.mark.parametrize(
    "mode, params",
    [("RGB", {"progressive": True}), ("L", {}), ("CMYK", {})],
    ids=["progressive", "greyscale", "cmyk"],
)
def test_every_kind_of_jpeg_is_reduced_to_rgb(mode, params):
    data = images.encode(Image.new(mode, (4000, 3000)), "JPEG", **params)
    image, scale, _ = load_reduced(data, LIMITS, 1280)
    assert (image.size, image.mode, scale) == ((2000, 1500), "RGB", 2)


def test_other_formats_are_decoded_at_full_size():
    data = images.encode(Image.new("RGB", (3000, 2000), (90, 120, 150)), "PNG")
    image, scale, upright = load_reduced(data, LIMITS, 1280)
    assert (image.size, scale, upright) == ((3000, 2000), 1, (3000, 2000))


def test_an_exif_turned_jpeg_is_reduced_and_reports_its_upright_size():
    exif = Image.Exif()
    exif[0x0112] = 6  # turned a quarter: shown 3000 wide and 4000 high
    image, scale, upright = load_reduced(jpeg(4000, 3000, exif=exif.tobytes()), LIMITS, 1280)
    assert scale == 2
    assert upright == (3000, 4000)
    assert image.size == (1500, 2000)


def test_the_reduced_decode_is_the_full_decode_scaled_down():
    photo = decode_photo(jpeg(4000, 3000), LIMITS)
    full = as_array(load_photo(jpeg(4000, 3000), LIMITS))
    assert photo.scale == 2 and photo.size == (4000, 3000)
    # Every other pixel of each row of a horizontal gradient: within JPEG's rounding.
    reduced_row = photo.pixels[750, :, 0].astype(int)
    full_row = full[1500, ::2, 0].astype(int)
    assert np.abs(reduced_row - full_row).max() <= 3
    assert photo.full() is photo.full()  # decoded once
    assert np.array_equal(photo.full(), full)


def test_bad_input_is_refused_as_by_load_photo():
    with pytest.raises(ImageRejected) as rejected:
        decode_photo(jpeg(4000, 3000)[:5000], LIMITS)
    assert rejected.value.code == "corrupt_image"
    with pytest.raises(ImageRejected) as rejected:
        decode_photo(jpeg(4000, 3000), PhotoLimits(max_bytes=None, max_pixels=1_000_000))
    assert rejected.value.code == "too_many_pixels"


def test_boxes_move_between_the_reduced_and_the_stored_pixels():
    photo = Photo(np.zeros((1500, 2001, 3), np.uint8), 2, (4001, 2999), b"unused")
    box = photo.to_photo(FaceBox(1000, 1400, 2001, 1500, 0.9, "centerface"))
    # Clipped to the stored photo's 4001 x 2999 pixels.
    assert (box.left, box.top, box.right, box.bottom) == (2000, 2800, 4001, 2999)
    back = photo.reduced_box(box)
    assert (back.left, back.top, back.right, back.bottom) == (1000, 1400, 2001, 1500)
    assert photo.to_pixels([3, 5, 8, 9]) == (1, 2, 4, 5)  # outwards to whole pixels


def test_a_reduced_photo_needs_its_file_and_an_array_is_a_full_photo():
    with pytest.raises(ValueError):
        Photo(np.zeros((10, 10, 3), np.uint8), 2)
    rgb = np.zeros((40, 60, 3), np.uint8)
    photo = as_photo(rgb)
    assert photo.scale == 1 and photo.size == (60, 40) and photo.full() is photo.pixels


@pytest.fixture(scope="module")
def estimator():
    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.bundled_models import DEFAULT_SHIPPED_MODEL
    from predictor.vision.centerface import CenterFaceDetector
    from predictor.vision.estimator import AgeEstimator

    network = AgeNetwork.shipped(DEFAULT_SHIPPED_MODEL)  # as served: its second opinion too
    network.mirrored = True
    return AgeEstimator(network, CenterFaceDetector())


def phone_photo(sides: list[int], seed: int) -> bytes:
    """A 4000 x 3000 JPEG with real UTKFace crops of the given sides in a row."""
    canvas = Image.new("RGB", (4000, 3000), (128, 128, 120))
    left = 200
    for side, path in zip(sides, sample_utkface(len(sides), seed=seed), strict=True):
        face = Image.open(path).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
        canvas.paste(face, (left, 1000))
        left += side + 200
    return images.encode(canvas, "JPEG", quality=92)


def paired(full: list, reduced: list) -> list[tuple]:
    """The faces of two readings of one photo, matched by the nearest box centre."""
    assert len(full) == len(reduced)
    pairs = []
    for face in full:
        centre = np.array([(face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2])
        other = min(
            reduced,
            key=lambda f: np.hypot(
                *(centre - [(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2])
            ),
        )
        pairs.append((face, other))
    return pairs


def test_large_faces_are_rated_from_the_reduced_pixels_like_the_full_ones(estimator):
    data = phone_photo([700, 900, 600], seed=3)
    photo = decode_photo(data, LIMITS)
    assert photo.scale == 2
    reduced = estimator.estimate(photo)
    full = estimator.estimate(as_array(load_photo(data, LIMITS)))
    assert len(full) == 3
    source, _ = estimator.chip_source(photo, [_box(face) for face in reduced])
    assert source is photo.pixels  # no full-size decode was needed
    for face, other in paired(full, reduced):
        # Boxes in the stored photo's pixels: the same face, within 3% of its side (the
        # detector scans a 1280 px copy of either, with a 4 px grid there: 12 px here).
        side = face.box[2] - face.box[0]
        assert max(abs(a - b) for a, b in zip(face.box, other.box, strict=True)) <= 0.03 * side
        assert abs(face.age - other.age) < 2.0


def test_a_small_face_is_cut_from_the_full_size_pixels(estimator):
    data = phone_photo([900, 150], seed=4)
    photo = decode_photo(data, LIMITS)
    reduced = estimator.estimate(photo)
    assert len(reduced) == 2
    source, boxes = estimator.chip_source(photo, [_box(face) for face in reduced])
    assert source is photo.full() and source.shape == (3000, 4000, 3)
    assert [(b.left, b.top, b.right, b.bottom) for b in boxes] == [f.box for f in reduced]


@pytest.fixture
def full_decodes(monkeypatch) -> list[Photo]:
    """Every photo whose full-size pixels are asked for."""
    asked: list[Photo] = []
    real_full = Photo.full

    def full(self):
        asked.append(self)
        return real_full(self)

    monkeypatch.setattr(Photo, "full", full)
    return asked


def test_a_face_marked_by_hand_is_found_in_stored_pixels(estimator, full_decodes):
    data = phone_photo([700], seed=5)
    photo = decode_photo(data, LIMITS)
    (found,) = estimator.estimate(photo)
    # A loose hand-drawn box around the face, in the stored photo's pixels.
    left, top, right, bottom = found.box
    drawn = [left - 60, top - 40, right + 50, bottom + 70]
    box = estimator.drawn_face(photo, drawn)
    assert box.detector == "drawn" and box.score > 0
    # The detector looks again around the marked box: the same face, within 3% of its side.
    edges = (box.left, box.top, box.right, box.bottom)
    side = found.box[2] - found.box[0]
    assert max(abs(a - b) for a, b in zip(edges, found.box, strict=True)) <= 0.03 * side
    assert full_decodes == []  # a large face is searched in the half-size pixels
    with pytest.raises(ValueError):
        estimator.drawn_face(photo, [4100, 10, 4200, 100])


def test_a_small_marked_face_is_searched_in_the_full_size_pixels(estimator, full_decodes):
    """Its chip needs the full-size pixels anyway, and a small face is what a reduced copy
    hides best; a marked box with no face in it stays exactly as marked."""
    data = phone_photo([900, 110], seed=6)
    photo = decode_photo(data, LIMITS)
    # phone_photo put the 110 px face at (1300, 1000)-(1410, 1110).
    box = estimator.drawn_face(photo, [1270, 975, 1440, 1135])
    assert full_decodes == [photo]
    assert box.detector == "drawn" and box.score > 0
    assert 1300 < (box.left + box.right) / 2 < 1410 and 1000 < (box.top + box.bottom) / 2 < 1110
    empty = estimator.drawn_face(photo, [3101, 2001, 3151, 2051])  # plain background
    assert (empty.left, empty.top, empty.right, empty.bottom, empty.score) == (
        3101, 2001, 3151, 2051, 0.0,
    )  # fmt: skip


def _box(face) -> FaceBox:
    return FaceBox(*face.box, face.detection_score, face.detector)
