"""The upload checks: each kind of bad file gets its own code and a readable message."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from predictor.vision.image_loading import (
    ImageRejected,
    PhotoLimits,
    as_array,
    check_proportions,
    encode_for_storage,
    load_photo,
)
from tests import images


def photo(size=(120, 90), color=(200, 50, 50)) -> Image.Image:
    image = Image.new("RGB", size, color)
    image.paste((10, 10, 200), (0, 0, size[0] // 2, size[1] // 3))  # something asymmetric
    return image


def rejected_code(data: bytes, limits: PhotoLimits = PhotoLimits()) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        load_photo(data, limits)
    assert caught.value.message.strip(), "every rejection explains itself"
    return caught.value


def test_empty_file():
    assert rejected_code(b"").code == "empty_file"


def test_text_file_named_jpg():
    assert rejected_code(b"hello, this is not a photo\n" * 10).code == "not_an_image"


def test_truncated_jpeg():
    data = images.encode(photo((400, 300)), "JPEG", quality=95)
    assert rejected_code(data[: len(data) // 2]).code == "corrupt_image"


def test_one_pixel_image():
    error = rejected_code(images.encode(Image.new("RGB", (1, 1)), "PNG"))
    assert error.code == "image_too_small"
    assert "1x1" in error.message


def test_decompression_bomb_is_refused_before_decoding():
    assert rejected_code(images.png_header_only(30000, 30000)).code == "too_many_pixels"


def test_our_own_pixel_limit_applies_below_pillows():
    data = images.encode(photo((300, 300)), "PNG")
    limits = PhotoLimits(max_pixels=50_000)
    assert rejected_code(data, limits).code == "too_many_pixels"


def test_file_over_the_size_limit():
    data = images.encode(photo((300, 300)), "PNG")
    error = rejected_code(data, PhotoLimits(max_bytes=len(data) - 1))
    assert error.code == "file_too_large"


def test_animated_gif():
    assert rejected_code(images.animated_gif()).code == "animated_image"


def test_an_animation_is_refused_without_walking_its_frames(monkeypatch):
    """Counting the frames of a GIF reads every one of them (410,000 frames: 4 s of CPU);
    seeing that there is a second one is enough to refuse it."""
    from PIL import GifImagePlugin

    def counted(self):
        raise AssertionError("n_frames walks every frame")

    # (APNG and WebP read their frame count from a header; a GIF has none.)
    monkeypatch.setattr(GifImagePlugin.GifImageFile, "n_frames", property(counted))
    assert rejected_code(images.animated_gif()).code == "animated_image"
    still = images.encode(photo((300, 300)), "GIF")
    assert load_photo(still).size == (300, 300)


def multi_picture_jpeg(first: Image.Image, second: Image.Image) -> bytes:
    """A phone's multi-picture JPEG (MPO): the photo, then its gain map or depth map."""
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[second], quality=95)
    return buffer.getvalue()


def test_a_multi_picture_jpeg_is_read_as_its_first_picture():
    """Phones append an HDR gain map, a depth map or a second lens's picture to a JPEG
    (MPF). That is not an animation: the photo is the first picture."""
    first = photo((400, 300))
    data = multi_picture_jpeg(first, Image.new("RGB", (200, 150), (20, 200, 20)))
    loaded = load_photo(data)
    assert loaded.size == (400, 300)
    assert np.abs(np.asarray(loaded, dtype=int) - np.asarray(first, dtype=int)).mean() < 3
    assert rejected_code(data[: len(data) // 3]).code == "corrupt_image"


def tiff_with_next_page_at(offset: int, image: Image.Image) -> bytes:
    """A one-page little-endian TIFF of ``image`` whose directory names a next page at
    ``offset`` (a damaged file: nothing is there)."""
    buffer = io.BytesIO()
    image.save(buffer, "TIFF")
    data = bytearray(buffer.getvalue())
    first = struct.unpack_from("<I", data, 4)[0]
    entries = struct.unpack_from("<H", data, first)[0]
    next_pointer = first + 2 + 12 * entries
    assert struct.unpack_from("<I", data, next_pointer)[0] == 0, "one page as saved"
    struct.pack_into("<I", data, next_pointer, offset)
    return bytes(data)


@pytest.mark.parametrize("where", ["past its end", "into its pixels", "at its last bytes"])
def test_a_tiff_naming_a_page_that_is_not_there_is_read_as_its_one_page(where):
    """Pillow calls such a TIFF animated; it has one page, and that is the photo."""
    image = photo((160, 120))
    size = len(tiff_with_next_page_at(0, image))
    offset = {"past its end": 0x7FFFFFF0, "into its pixels": 200, "at its last bytes": size - 3}
    data = tiff_with_next_page_at(offset[where], image)
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.is_animated, "Pillow's own reading of the damaged file"
    loaded = load_photo(data)
    assert np.array_equal(np.asarray(loaded), np.asarray(image))


def test_a_tiff_of_two_pages_is_still_refused_as_animated():
    buffer = io.BytesIO()
    photo((160, 120)).save(buffer, "TIFF", save_all=True, append_images=[photo((160, 120))])
    assert rejected_code(buffer.getvalue()).code == "animated_image"


def test_cmyk_jpeg_is_converted_to_rgb():
    source = photo()
    loaded = load_photo(images.cmyk_jpeg(source))
    assert loaded.mode == "RGB"
    assert loaded.size == source.size
    red, green, blue = loaded.getpixel((100, 80))
    assert red > 150 and green < 110 and blue < 110  # still red, not inverted


def test_sixteen_bit_png_is_scaled_not_clipped():
    loaded = load_photo(images.sixteen_bit_png())
    assert loaded.mode == "RGB"
    values = {loaded.getpixel((x, 0))[0] for x in range(96)}
    assert len(values) > 20, "a 16-bit gradient must keep its tones after conversion to 8 bits"


def test_exif_orientation_is_applied():
    upright = photo((120, 90))
    loaded = load_photo(images.exif_rotated_jpeg(upright))
    assert loaded.size == (120, 90)
    # The blue block sits in the top-left of the upright photo.
    assert loaded.getpixel((10, 5))[2] > 150
    assert loaded.getpixel((110, 80))[0] > 150


def test_transparent_png_is_flattened_on_white():
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    loaded = load_photo(images.encode(image, "PNG"))
    assert loaded.getpixel((5, 5)) == (255, 255, 255)


def test_storage_copy_has_no_exif_or_gps():
    original = images.exif_rotated_jpeg(photo())
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825), "precondition: GPS present"
    loaded = load_photo(original)
    stored = Image.open(io.BytesIO(encode_for_storage(loaded)))
    assert stored.format == "JPEG"
    assert len(stored.getexif()) == 0
    assert "exif" not in stored.info


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_common_formats_load(fmt):
    loaded = load_photo(images.encode(photo(), fmt))
    assert loaded.size == (120, 90) and loaded.mode == "RGB"


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_as_array_is_a_writeable_copy_of_the_pixels(mode):
    image = photo().convert(mode)
    array = as_array(image)
    assert array.shape == (90, 120, 3) and array.dtype == np.uint8
    assert array.flags.c_contiguous and array.flags.writeable
    expected = image.convert("RGB")
    assert (array == np.asarray(expected)).all()
    array[:] = 0  # dlib and the detector get their own pixels: the photo is not touched
    assert image.convert("RGB").getpixel((0, 0)) == expected.getpixel((0, 0)) != (0, 0, 0)


@pytest.mark.parametrize(
    "size, expected",
    [((4000, 3000), (320, 240)), ((1000, 3000), (107, 320)), ((200, 160), (200, 160))],
)
def test_a_thumbnail_fits_320_px_and_leaves_the_photo_as_it_was(size, expected):
    from predictor.vision.image_loading import thumbnail_bytes

    photo = Image.radial_gradient("L").resize(size).convert("RGB")
    before = photo.tobytes()
    thumbnail = Image.open(io.BytesIO(thumbnail_bytes(photo)))
    assert thumbnail.format == "JPEG" and thumbnail.size == expected
    assert photo.size == size and photo.tobytes() == before
    # Scaled, not cropped: the gradient's centre stays in the middle.
    centre = thumbnail.convert("L").getpixel((expected[0] // 2, expected[1] // 2))
    corner = thumbnail.convert("L").getpixel((0, 0))
    assert centre < corner


def test_an_upright_jpeg_is_kept_stripped_with_a_reduced_preview():
    from predictor.vision.image_loading import keep_jpeg
    from predictor.vision.jpeg_markers import strip_metadata

    source = Image.effect_noise((2000, 1500), 40).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 1  # upright: nothing to turn
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 0.0)}
    data = images.encode(source, "JPEG", quality=90, exif=exif.tobytes(), comment=b"secret")
    kept = keep_jpeg(data, PhotoLimits(), max_side=4096, preview_side=320)
    assert kept is not None
    assert kept.data == strip_metadata(data) and b"secret" not in kept.data
    assert kept.size == (2000, 1500)
    assert kept.preview.mode == "RGB" and kept.preview.size == (500, 375)  # a quarter: >= 320
    grey = images.encode(source.convert("L"), "JPEG")
    kept_grey = keep_jpeg(grey, PhotoLimits(), max_side=4096, preview_side=320)
    assert kept_grey is not None and kept_grey.preview.mode == "RGB"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_turned_jpeg_is_kept_with_its_orientation_alone(orientation):
    """A JPEG stored turned (EXIF orientation 2-8, as a phone held upright writes it) is kept
    as it was compressed, with its orientation and no other metadata: it decodes to the very
    pixels the upload does, upright, and its size and preview are upright."""
    from predictor.vision.image_loading import keep_jpeg
    from predictor.vision.jpeg_markers import strip_metadata

    upright = photo((1200, 900))
    data = images.exif_rotated_jpeg(upright, orientation)  # with a GPS block
    kept = keep_jpeg(data, PhotoLimits(), max_side=4096, preview_side=400)  # half size
    assert kept is not None
    assert kept.data == strip_metadata(data, orientation)
    with Image.open(io.BytesIO(kept.data)) as image:
        assert dict(image.getexif()) == ({} if orientation == 1 else {0x0112: orientation})
    as_uploaded = load_photo(data)
    assert as_uploaded.size == upright.size  # precondition: a viewer shows it upright
    assert np.abs(np.asarray(as_uploaded, dtype=int) - np.asarray(upright, dtype=int)).mean() < 4
    assert np.array_equal(np.asarray(load_photo(kept.data)), np.asarray(as_uploaded))
    assert kept.size == as_uploaded.size
    assert kept.preview.size == (as_uploaded.width // 2, as_uploaded.height // 2)
    assert (
        np.abs(
            np.asarray(kept.preview, dtype=int) - np.asarray(as_uploaded.reduce(2), dtype=int)
        ).mean()
        < 4
    )  # the same way up as the upload shows


def test_a_jpeg_whose_pixels_must_change_is_not_kept():
    """An orientation EXIF does not define (or written as another type than EXIF's), larger
    than the working side, CMYK, or not a JPEG: those are decoded and re-encoded (None)."""
    from predictor.vision.image_loading import keep_jpeg

    upright = photo((300, 200))
    for name, data, max_side in [
        ("orientation 9", images.exif_rotated_jpeg(upright, 9), 4096),
        ("orientation as a RATIONAL", images.jpeg_with_orientation_typed("rational"), 4096),
        ("orientation as a DOUBLE", images.jpeg_with_orientation_typed("double"), 4096),
        ("over the working side", images.encode(upright, "JPEG"), 299),
        ("CMYK", images.cmyk_jpeg(upright), 4096),
        ("PNG", images.encode(upright, "PNG"), 4096),
    ]:
        assert keep_jpeg(data, PhotoLimits(), max_side, 320) is None, name


def test_a_broken_jpeg_is_not_kept_and_is_refused_with_its_reason():
    from predictor.vision.image_loading import keep_jpeg
    from predictor.vision.jpeg_markers import strip_metadata

    data = images.encode(photo((400, 300)), "JPEG", quality=95)
    # Its quantisation tables cut out: laid out as a JPEG (every marker intact), so only the
    # decode of the stripped copy can tell that its pixels cannot be read.
    no_tables = data
    while b"\xff\xdb" in no_tables:
        start = no_tables.index(b"\xff\xdb")
        end = start + 2 + int.from_bytes(no_tables[start + 2 : start + 4], "big")
        no_tables = no_tables[:start] + no_tables[end:]
    assert strip_metadata(no_tables) is not None, "precondition: the layout is intact"
    for name, bad, code in [
        ("truncated", data[: len(data) // 2], "corrupt_image"),
        ("too small", images.encode(Image.new("RGB", (20, 400)), "JPEG"), "image_too_small"),
        ("too many pixels", data, "too_many_pixels"),
    ]:
        limits = PhotoLimits(max_pixels=1000) if code == "too_many_pixels" else PhotoLimits()
        assert keep_jpeg(bad, limits, 4096, 320) is None, name
        assert rejected_code(bad, limits).code == code, name
    assert keep_jpeg(no_tables, PhotoLimits(), 4096, 320) is None
    assert rejected_code(no_tables).code == "corrupt_image"


def test_a_gif_cut_off_in_its_next_frame_is_refused_as_damaged():
    # Looking for a second frame reads the bytes after the first; a file cut off there used to
    # raise struct.error or IndexError out of Pillow (a 500).
    still = images.encode(Image.new("L", (64, 64), 128), "GIF")
    assert still.endswith(b";")
    assert rejected_code(still[:-1] + b",\x00\x00\x00").code == "corrupt_image"
    two = io.BytesIO()
    first, second = Image.new("L", (64, 64), 1), Image.new("L", (64, 64), 200)
    first.save(two, "GIF", save_all=True, append_images=[second])
    data = two.getvalue()
    codes = set()
    for cut in range(40, len(data) - 1):
        try:
            load_photo(data[:cut])
            codes.add("loaded")
        except ImageRejected as rejected:
            codes.add(rejected.code)
    # Every cut is a photo or a reason: none raises anything else.
    assert "corrupt_image" in codes and codes <= {"loaded", "corrupt_image", "animated_image"}


def _exif_with_a_negative_over_zero(orientation: int) -> bytes:
    """Big-endian TIFF-style EXIF: the orientation, then ExposureBias (SRATIONAL) of -1/0,
    which Pillow reads but cannot write back (Pillow issue 8965)."""
    entries = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    entries += struct.pack(">HHII", 0x9204, 10, 1, 8 + 2 + 2 * 12 + 4)
    return b"MM\x00*" + struct.pack(">IH", 8, 2) + entries + b"\0\0\0\0" + struct.pack(">ii", -1, 0)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_exif_pillow_cannot_write_back_still_turns_the_photo_upright(fmt):
    # Turned by EXIF 6 (a quarter turn): 120 x 90 stored, 90 x 120 upright.
    stored = photo((120, 90))
    data = images.encode(
        stored,
        fmt,
        exif=_exif_with_a_negative_over_zero(6),
        **({"lossless": True} if fmt == "WEBP" else {}),
    )
    upright = load_photo(data)
    assert upright.size == (90, 120)
    expected = np.asarray(stored.transpose(Image.Transpose.ROTATE_270))
    assert np.abs(np.asarray(upright).astype(int) - expected).max() <= 2
    assert upright.info == {}


def test_a_strip_too_narrow_to_store_is_refused_with_its_real_size():
    check_proportions(4096, 32, 4096, 32)  # fits as it is
    check_proportions(8000, 64, 4096, 32)  # 4096 x 33 once fitted
    with pytest.raises(ImageRejected) as caught:
        check_proportions(8000, 60, 4096, 32)  # would be stored at 4096 x 31
    assert caught.value.code == "image_too_narrow"
    assert "8000x60" in caught.value.message and "128 times" in caught.value.message
    with pytest.raises(ImageRejected):
        check_proportions(40, 8000, 4096, 32)


def test_a_tall_sixteen_bit_photo_is_scaled_band_by_band_as_a_whole():
    # More rows than one band (_ROWS_AT_A_TIME): every band scaled as the whole would be.
    values = (np.arange(600 * 70, dtype=np.int64) * 7919 % 65536).astype(np.uint16)
    stored = Image.fromarray(values.reshape(600, 70))
    loaded = np.asarray(load_photo(images.encode(stored, "PNG")))
    expected = (values.reshape(600, 70).astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    assert loaded.shape == (600, 70, 3)
    assert np.array_equal(loaded[..., 0], expected) and np.array_equal(loaded[..., 2], expected)
