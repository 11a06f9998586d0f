"""A JPEG kept as it was compressed, with its metadata stripped (jpeg_markers.strip_metadata):
the pixels stay the same, and nothing else survives."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

from predictor.vision.jpeg_markers import JFIF, strip_metadata
from tests import images
from tests.datasets import require_dataset, sample_utkface


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


SCAN_DATA = (0x00, *range(0xD0, 0xD8))  # after FF in a scan: a stuffed byte, a restart


def markers(data: bytes) -> list[int]:
    """Every marker of a JPEG, scans' data skipped (stuffed bytes and restarts are data)."""
    found, position = [], 2
    while position < len(data):
        marker = data[position + 1]
        found.append(marker)
        if marker == 0xD9:
            return found
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        position += 2 + length
        if marker == 0xDA:
            while data[position] != 0xFF or data[position + 1] in SCAN_DATA:
                position += 1
    return found


SECRETS = (b"GPS-52.31N", b"<x:xmpmeta>photographer</x:xmpmeta>", b"serial 0042", b"trailer")


def with_metadata(jpeg: bytes) -> bytes:
    """``jpeg`` with what a camera and an editor put around the image: EXIF with GPS,
    XMP, IPTC (APP13), a maker's APP15, a comment, and a second picture after the end."""
    extra = (
        segment(0xE1, b"Exif\0\0" + SECRETS[0])
        + segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0" + SECRETS[1])
        + segment(0xED, b"Photoshop 3.0\0" + SECRETS[2])
        + segment(0xEF, b"maker")
        + segment(0xFE, b"a comment")
    )
    return jpeg[:2] + extra + jpeg[2:] + images.encode(Image.new("RGB", (8, 8))) + SECRETS[3]


def assert_clean(stripped: bytes) -> None:
    assert stripped.startswith(b"\xff\xd8" + JFIF) and stripped.endswith(b"\xff\xd9")
    for secret in SECRETS:
        assert secret not in stripped
    found = markers(stripped)
    metadata = [m for m in found if m == 0xFE or (0xE0 <= m <= 0xEF and m != 0xEE)]
    assert metadata == [0xE0], [hex(m) for m in found]
    assert found[-1] == 0xD9 and found.count(0xD8) == 0  # (SOI is not counted by markers)


def test_real_photos_keep_their_pixels_and_lose_their_metadata():
    """Real UTKFace JPEGs, as they are and with a camera's and an editor's metadata around
    them: the stripped copy decodes to the very same pixels."""
    require_dataset("utkface")
    for path in sample_utkface(12, seed=3):
        original = path.read_bytes()
        for data in (original, with_metadata(original)):
            stripped = strip_metadata(data)
            assert stripped is not None, path.name
            assert_clean(stripped)
            assert np.array_equal(pixels(stripped), pixels(original)), path.name


@pytest.mark.parametrize(
    "params",
    [
        {"quality": 92},
        {"quality": 75, "progressive": True},
        {"quality": 90, "restart_marker_blocks": 3},
        {"quality": 85, "subsampling": 0, "optimize": True},
    ],
    ids=["baseline", "progressive", "restart markers", "4:4:4 optimized"],
)
def test_every_way_of_coding_keeps_its_pixels(params):
    source = Image.effect_noise((257, 131), 60).convert("RGB")
    data = with_metadata(images.encode(source, "JPEG", **params))
    stripped = strip_metadata(data)
    assert stripped is not None
    assert_clean(stripped)
    assert np.array_equal(pixels(stripped), pixels(data))


def test_metadata_between_the_scans_of_a_progressive_jpeg_is_dropped():
    data = images.encode(Image.effect_noise((96, 64), 50).convert("RGB"), progressive=True)
    second_scan = data.index(b"\xff\xda", data.index(b"\xff\xda") + 2)
    spliced = data[:second_scan] + segment(0xFE, SECRETS[2]) + data[second_scan:]
    assert np.array_equal(pixels(spliced), pixels(data)), "precondition: a valid JPEG"
    stripped = strip_metadata(spliced)
    assert stripped is not None
    assert_clean(stripped)
    assert np.array_equal(pixels(stripped), pixels(data))


def test_an_icc_profile_and_a_jfif_thumbnail_are_dropped():
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = images.encode(Image.new("RGB", (64, 48), "teal"), icc_profile=profile)
    # A JFIF header with a 2x2 thumbnail of the photo (which an editor may not update).
    thumbnail_jfif = segment(0xE0, b"JFIF\0\x01\x02\0\0\x01\0\x01\x02\x02" + bytes(12))
    jfif_end = 2 + 2 + int.from_bytes(data[4:6], "big")
    data = data[:2] + thumbnail_jfif + data[jfif_end:]
    stripped = strip_metadata(data)
    assert stripped is not None
    assert_clean(stripped)
    assert 0xE2 not in markers(stripped)


def test_a_multi_picture_jpeg_keeps_only_its_first_picture():
    first = Image.effect_noise((120, 80), 40).convert("RGB")
    buffer = io.BytesIO()
    second = Image.effect_noise((120, 80), 40).convert("RGB")
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    data = buffer.getvalue()
    stripped = strip_metadata(data)
    assert stripped is not None
    assert_clean(stripped)
    with Image.open(io.BytesIO(stripped)) as image:
        assert image.format == "JPEG" and image.size == (120, 80)
    assert np.array_equal(pixels(stripped), pixels(data))
    assert len(stripped) < len(data) / 1.5


def test_adobe_app14_is_kept_so_colours_decode_the_same():
    """Adobe's APP14 says how the components are coded (CMYK here, inverted); dropping it
    would change the colours."""
    data = images.cmyk_jpeg(Image.new("RGB", (64, 64), (200, 30, 30)))
    stripped = strip_metadata(data)
    assert stripped is not None and 0xEE in markers(stripped)
    assert np.array_equal(pixels(stripped), pixels(data))


def test_files_not_laid_out_as_a_jpeg_give_none():
    good = images.encode(Image.effect_noise((64, 64), 40).convert("RGB"))
    sos = good.index(b"\xff\xda")
    cases = {
        "not a JPEG": images.encode(Image.new("RGB", (64, 64)), "PNG"),
        "empty": b"",
        "no end of image": good[:-2],
        "cut inside a segment": good[: sos - 5],
        "cut inside the scan": good[: len(good) // 2],
        "a segment longer than the file": good[:2] + b"\xff\xe1\xff\xff" + b"x" * 20,
        "garbage instead of a marker": good[:2] + b"\x00\x01" + good[2:],
        "a JPEG extension marker (JPG0)": good[:2] + segment(0xF0, b"??") + good[2:],
        "a second start of image": good[:2] + b"\xff\xd8" + good[2:],
        "a length below 2": good[:2] + b"\xff\xe1\x00\x01" + good[2:],
    }
    for name, data in cases.items():
        assert strip_metadata(data) is None, name


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_turned_jpeg_keeps_its_orientation_and_nothing_else(orientation):
    """Orientation 2-8 survives the strip, alone in an EXIF segment of its own that Pillow
    (and so viewers) read; 1, stored upright, needs none."""
    from predictor.vision.jpeg_markers import orientation_segment

    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 0.0)}  # GPS
    exif[0x010F] = "a camera maker"
    data = images.encode(Image.effect_noise((96, 64), 40).convert("RGB"), exif=exif.tobytes())
    stripped = strip_metadata(data, orientation)
    assert stripped is not None
    with Image.open(io.BytesIO(stripped)) as image:
        kept = dict(image.getexif())
        assert not image.getexif().get_ifd(0x8825)
    assert kept == ({} if orientation == 1 else {0x0112: orientation})
    assert b"a camera maker" not in stripped
    assert np.array_equal(pixels(stripped), pixels(data))
    image_markers = [marker for marker in markers(data) if not 0xE0 <= marker <= 0xEF]
    assert 0xE1 in markers(data) and 0xDA in image_markers, "precondition: EXIF, a scan"
    turned = [] if orientation == 1 else [0xE1]
    assert markers(stripped) == [0xE0, *turned, *image_markers]
    if orientation != 1:
        assert orientation_segment(orientation) in stripped
        assert len(orientation_segment(orientation)) == 36


@pytest.mark.parametrize("orientation", [0, 9, -1, 6.0, True])
def test_an_orientation_exif_does_not_define_is_refused(orientation):
    from predictor.vision.jpeg_markers import orientation_segment

    with pytest.raises(ValueError, match="whole number 1 to 8"):
        orientation_segment(orientation)
