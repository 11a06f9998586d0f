"""Loading and checking uploaded photos before anything else touches them.

Everything that comes from outside goes through :func:`load_photo`. It either
returns a clean RGB image, upright according to its EXIF orientation, or raises
:class:`ImageRejected` with a code and a sentence a person can act on. Nothing
else escapes: Pillow's many exception types are translated here, once.

No Django imports: the web process and the workers both use this module.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from predictor.vision.jpeg_markers import ORIENTATIONS, strip_metadata

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MIN_SIDE = 32
STORAGE_JPEG_QUALITY = 92
# The longest side of a photo's preview on the pages (thumbnail_bytes).
THUMBNAIL_SIDE = 320


def gettext_noop(message: str) -> str:
    """Mark a message for ``makemessages`` without importing Django; the web process
    translates it when it shows it (see ``predictor.messages``)."""
    return message


EMPTY_FILE = gettext_noop("The file is empty. Choose a photo and upload it again.")
FILE_TOO_LARGE = gettext_noop(
    "The file is %(size)s; the limit is %(limit)s. Upload a smaller photo."
)
TOO_MANY_PIXELS = gettext_noop(
    "The image is %(width)sx%(height)s pixels; at most %(max_pixels)s pixels are accepted. "
    "Resize it and upload again."
)
ANIMATED_IMAGE = gettext_noop("Animated images are not supported. Upload a single still photo.")
CORRUPT_IMAGE_RETRY = gettext_noop(
    "The image file is damaged or incomplete, so it cannot be read. Try exporting the photo again."
)
IMAGE_TOO_SMALL = gettext_noop(
    "The image is only %(width)sx%(height)s pixels; a face needs at least %(min_side)s pixels "
    "on each side."
)
IMAGE_TOO_NARROW = gettext_noop(
    "The image is %(width)sx%(height)s pixels, too long and narrow: its long side may be at "
    "most %(ratio)s times its short side. Crop it and upload again."
)
DECLARES_TOO_MANY_PIXELS = gettext_noop(
    "The image declares too many pixels; at most %(max_pixels)s are accepted."
)
NOT_AN_IMAGE = gettext_noop(
    "This file is not a photo we can read. Upload a JPEG, PNG or WebP image."
)
CORRUPT_IMAGE = gettext_noop("The image file is damaged or incomplete, so it cannot be read.")

# Every message an ImageRejected can carry, by its own key (two codes have two wordings):
# a worker that fails a photo for one of them stores the key and the values
# (``predictor.messages``), and the page renders it in its reader's language.
REJECTIONS = {
    "empty_file": EMPTY_FILE,
    "file_too_large": FILE_TOO_LARGE,
    "too_many_pixels": TOO_MANY_PIXELS,
    "animated_image": ANIMATED_IMAGE,
    "corrupt_image_retry": CORRUPT_IMAGE_RETRY,
    "image_too_small": IMAGE_TOO_SMALL,
    "image_too_narrow": IMAGE_TOO_NARROW,
    "declares_too_many_pixels": DECLARES_TOO_MANY_PIXELS,
    "not_an_image": NOT_AN_IMAGE,
    "corrupt_image": CORRUPT_IMAGE,
}
REJECTION_MESSAGES = tuple(REJECTIONS.values())
_KEY_OF = {template: key for key, template in REJECTIONS.items()}


class ImageRejected(ValueError):
    """An upload that cannot be used, with a stable code and a human message.

    ``message`` is English; ``template`` and ``params`` let a caller that knows the
    reader's language render it again (``gettext(template) % params``).
    """

    def __init__(self, code: str, template: str, **params: object) -> None:
        message = template % params if params else template
        super().__init__(message)
        self.code = code
        self.template = template
        self.params = params
        # The template's own key in REJECTIONS (what a worker stores); the code otherwise.
        self.key = _KEY_OF.get(template, code)
        self.message = message


@dataclass(frozen=True)
class PhotoLimits:
    """Limits on an upload: bytes on disk, decoded pixels (width x height), shortest side.

    ``max_bytes=None`` checks no size on disk: for the server's own re-encoded copy of a photo
    that was accepted, which may be larger than the upload was (a JPEG saved at a low quality
    and stored again at ``STORAGE_JPEG_QUALITY``)."""

    max_bytes: int | None = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = DEFAULT_MIN_SIDE


def _megabytes(count: int) -> str:
    return f"{count / (1024 * 1024):.0f} MB"


def load_photo(data: bytes, limits: PhotoLimits = PhotoLimits()) -> Image.Image:
    """Decode and check an uploaded photo.

    Args:
        data: the file's bytes, exactly as uploaded.
        limits: size limits; see :class:`PhotoLimits`.

    Returns:
        A fully decoded 8-bit ``RGB`` image, rotated upright by its EXIF
        orientation, with no metadata attached.

    Raises:
        ImageRejected: with one of the codes ``empty_file``, ``file_too_large``,
            ``not_an_image``, ``too_many_pixels``,
            ``animated_image``, ``corrupt_image``, ``image_too_small``.
    """
    return _decode(data, limits, None)[0]


def load_reduced(
    data: bytes, limits: PhotoLimits, work_side: int
) -> tuple[Image.Image, int, tuple[int, int]]:
    """:func:`load_photo`, decoding a JPEG at 1/2, 1/4 or 1/8 of its size in libjpeg's
    inverse DCT (Pillow's ``draft``) where its long side stays ``work_side`` pixels or more,
    and its short side the smallest a photo may have.

    Returns:
        The image, the whole number of the photo's pixels per pixel of it along each side
        (1 when it was decoded at full size), and the photo's upright ``(width, height)``.

    Raises:
        ImageRejected: as :func:`load_photo`.
    """
    return _decode(data, limits, work_side)


def _decode(
    data: bytes, limits: PhotoLimits, work_side: int | None
) -> tuple[Image.Image, int, tuple[int, int]]:
    if not data:
        raise ImageRejected("empty_file", EMPTY_FILE)
    if limits.max_bytes is not None and len(data) > limits.max_bytes:
        raise ImageRejected(
            "file_too_large",
            FILE_TOO_LARGE,
            size=_megabytes(len(data)),
            limit=_megabytes(limits.max_bytes),
        )
    image = _open(data, limits)
    rgb = None
    try:
        # A decompression bomb is refused before any pixel is decoded.
        width, height = image.size
        if width * height > limits.max_pixels:
            raise ImageRejected(
                "too_many_pixels",
                TOO_MANY_PIXELS,
                width=width,
                height=height,
                max_pixels=f"{limits.max_pixels:,}",
            )
        # is_animated looks for a second frame; n_frames would walk them all (a 9 MB GIF of
        # 410,000 frames cost 4 s of CPU before its refusal). A multi-picture JPEG (MPO: a
        # phone's photo with its HDR gain map, depth map or second lens appended) is not
        # animated: its first picture is the photo, and that is what is decoded.
        try:
            animated = image.format != "MPO" and getattr(image, "is_animated", False)
            if animated and image.format == "TIFF":
                animated = _has_second_page(image)
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error) as error:
            # Looking for a second frame reads past the first: a GIF cut off in its next
            # frame's header fails here, inside Pillow's frame seek.
            raise ImageRejected("corrupt_image", CORRUPT_IMAGE_RETRY) from error
        if animated:
            raise ImageRejected("animated_image", ANIMATED_IMAGE)
        scale = _draft(image, work_side, limits.min_side) if work_side else 1
        upright = (width, height)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image.load()
                # (A reduced decode whose EXIF orientation reverses an axis (a flip, or a
                # turn by a half or a quarter) puts libjpeg's partial last pixel of a side
                # that is not a multiple of the scale at the upright origin, so the boxes a
                # worker maps back to the stored photo may be up to scale - 1 pixels off along
                # that side; none for a phone's 4032 x 3024 or 4000 x 3000. Chips are aligned
                # on landmarks found inside the box again.)
                if image.getexif().get(ExifTags.Base.Orientation) in _TURNED:
                    upright = (height, width)
                # exif_transpose writes the EXIF back without its orientation, and Pillow
                # cannot write every block it reads (a SRATIONAL of -1/0 raises struct.error,
                # Pillow issue 8965). The metadata is dropped below anyway, so the raw blocks
                # go now: the orientation is read from the EXIF getexif() parsed above.
                for key in ("exif", "Raw profile type exif"):
                    image.info.pop(key, None)
                # In place: a copy of a 40 MP photo is another 120 MB.
                ImageOps.exif_transpose(image, in_place=True)
        except ImageRejected:
            raise
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning) as error:
            # Truncated files, bad Huffman tables, broken chunks and the like.
            raise ImageRejected("corrupt_image", CORRUPT_IMAGE_RETRY) from error
        rgb = _to_rgb(image)
    finally:
        if rgb is not image:
            image.close()
    # Pillow carries the source's metadata (a JPEG comment, the ICC profile, EXIF, XMP, DPI)
    # along in ``info`` through copy() and convert(), and writes the comment back on save.
    rgb.info = {}
    if min(rgb.size) < limits.min_side:
        raise ImageRejected(
            "image_too_small",
            IMAGE_TOO_SMALL,
            width=rgb.width,
            height=rgb.height,
            min_side=limits.min_side,
        )
    return rgb, scale, upright


def _has_second_page(image: Image.Image) -> bool:
    """Whether a TIFF that names a next page has one that can be read.

    Pillow calls a TIFF animated when its first page's directory gives a next one's offset.
    A damaged file's offset may point past its end or into its pixels: then there is no
    second page, and the first is the photo. The first page is selected again either way.
    """
    try:
        with warnings.catch_warnings():
            # Pillow warns "Corrupt EXIF data" for a directory cut off by the file's end.
            warnings.simplefilter("ignore", UserWarning)
            image.seek(1)
    except (
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        IndexError,
        KeyError,
        TypeError,
        struct.error,
    ):
        # (A directory read from a wrong place has no width or height: TypeError.)
        return False
    finally:
        image.seek(0)
    return True


# EXIF orientations that turn the photo by a quarter: its width becomes its height.
_TURNED = (5, 6, 7, 8)
# Pillow's names for a JPEG: a plain one, and a multi-picture one (read as its first picture).
_JPEG_FORMATS = ("JPEG", "MPO")
# The scales libjpeg decodes at, largest first.
_DRAFT_SCALES = (8, 4, 2)


def _draft(image: Image.Image, work_side: int, min_side: int) -> int:
    """Have a JPEG decode at the largest scale that leaves its long side ``work_side`` pixels
    or more and its short side ``min_side`` or more; that scale (1: full size)."""
    if image.format not in _JPEG_FORMATS:
        return 1
    width, height = image.size
    long_side = max(width, height)
    scale = next(
        (
            s
            for s in _DRAFT_SCALES
            if long_side // s >= work_side and min(width, height) // s >= min_side
        ),
        1,
    )
    if scale == 1:
        return 1
    # Pillow picks the largest scale whose result is at least the size asked for, and says
    # which (the photo's size divided by it); None: it cannot reduce this file.
    drafted = image.draft("RGB", (width // scale, height // scale))
    return 1 if drafted is None else round(width / drafted[1][2])


def _open(data: bytes, limits: PhotoLimits) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow warns (or raises) about bombs by its own global limit; we
            # check ours explicitly right after opening, so keep its check from
            # racing ours with a different threshold.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRejected(
            "too_many_pixels", DECLARES_TOO_MANY_PIXELS, max_pixels=f"{limits.max_pixels:,}"
        ) from error
    except UnidentifiedImageError as error:
        raise ImageRejected("not_an_image", NOT_AN_IMAGE) from error
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageRejected("corrupt_image", CORRUPT_IMAGE) from error


# Rows of a 16- or 32-bit grey photo scaled to 8 bits at once: 8 MB of float64 for a row of
# 4,000 pixels.
_ROWS_AT_A_TIME = 256


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any decoded mode to 8-bit RGB (an RGB image is returned as it is)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "I;16N"):
        # 16-bit (and 32-bit integer) greyscale: Pillow's convert("L") clips
        # instead of scaling, which turns most photos white.
        # Scaled a band of rows at a time: a float64 copy of a whole 40 MP photo would be
        # 320 MB more, several times what a decode is budgeted (the web's decode semaphore).
        array = np.asarray(image)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
        scaled = np.empty(array.shape, dtype=np.uint8)
        for start in range(0, array.shape[0], _ROWS_AT_A_TIME):
            band = array[start : start + _ROWS_AT_A_TIME].astype(np.float64)
            scaled[start : start + _ROWS_AT_A_TIME] = np.clip(band * (255.0 / top), 0, 255)
        del array
        return Image.fromarray(scaled, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Flatten transparency onto white rather than black, as a viewer would.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode == "RGB":
        return image  # already what we want: no copy
    return image.convert("RGB")


# What the copies Pillow encodes carry besides the pixels: nothing. Pillow writes only the
# JFIF header (APP0: version and a 1:1 pixel aspect) and the image itself: no comment (COM),
# no EXIF, GPS or XMP (APP1), no ICC profile (APP2), no maker or editor data. (A JPEG kept as
# it was compressed, keep_jpeg, may carry one APP1: its EXIF orientation alone.) The ICC profile is
# dropped too: the detector and the network read the pixel values as they are and never the
# profile, and a profile can name the camera or editing software; a wide-gamut photo then
# shows slightly less saturated in the browser, which the result page can live with.
_NO_METADATA = {"comment": b""}  # an empty comment overrides the one Pillow would copy


@dataclass(frozen=True)
class KeptJpeg:
    """An uploaded JPEG stored as it was compressed, with its metadata stripped
    (:func:`keep_jpeg`).

    Attributes:
        data: the JPEG to store: the upload's frame, tables and scans, byte for byte, and a
            plain JFIF header; no EXIF but its orientation where it is not 1, no GPS, XMP, ICC
            profile, comment or appended picture.
        preview: its pixels, decoded at 1/2, 1/4 or 1/8 of its size where that keeps the
            long side ``preview_side`` pixels or more (for the thumbnail), in RGB.
        size: the photo's upright ``(width, height)``.
    """

    data: bytes
    preview: Image.Image
    size: tuple[int, int]


def keep_jpeg(
    data: bytes, limits: PhotoLimits, max_side: int, preview_side: int
) -> KeptJpeg | None:
    """The upload itself, its metadata stripped, when its pixels can be stored as they are;
    None when it must be decoded and re-encoded instead (:func:`load_photo`, then
    :func:`encode_for_storage`).

    It can be kept when it is a JPEG (or the first picture of a multi-picture JPEG) of 8-bit
    colour or grey with a long side of ``max_side`` pixels or less. A JPEG stored turned
    (EXIF orientation 2-8) keeps its orientation, the one tag its copy carries, so viewers and
    :func:`load_photo` turn it upright as they did the upload; ``size`` and ``preview`` are
    upright. The stripped copy is then checked as :func:`load_photo` checks an upload (size,
    pixels, a decode of every scan), decoding it at a reduced size.
    A copy that fails the check is not kept, and None sends the upload down the other path,
    which refuses it with its own reason.
    """
    if not data or (limits.max_bytes is not None and len(data) > limits.max_bytes):
        return None
    try:
        image = _open(data, limits)
    except ImageRejected:
        return None
    try:
        width, height = image.size
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        keep = (
            image.format in _JPEG_FORMATS
            and image.mode in ("RGB", "L")
            and max(width, height) <= max_side
            # A SHORT, as EXIF defines it; Pillow reads a RATIONAL or DOUBLE one as 6.0,
            # which load_photo turns by but the copy's own segment could not hold.
            and type(orientation) is int
            and orientation in ORIENTATIONS
        )
    except Exception:
        keep = False
    finally:
        image.close()
    stripped = strip_metadata(data, orientation) if keep else None
    if stripped is None:
        return None
    try:
        preview, _scale, size = _decode(stripped, limits, preview_side)
    except ImageRejected:
        return None
    if size != ((height, width) if orientation in _TURNED else (width, height)):
        return None
    return KeptJpeg(stripped, preview, size)


def encode_for_storage(image: Image.Image) -> bytes:
    """Re-encode an RGB image as a JPEG with no EXIF, GPS, comment or other metadata."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=STORAGE_JPEG_QUALITY, optimize=True, **_NO_METADATA)
    return buffer.getvalue()


def fitted_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size :func:`fit_within` gives a ``width`` x ``height`` photo: the long side at most
    ``max_side``, the proportions kept, each side at least 1."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def check_proportions(width: int, height: int, max_side: int, min_side: int) -> None:
    """Refuse (``image_too_narrow``) a photo that :func:`fit_within` ``max_side`` would leave
    with a side under ``min_side``, which the worker could not read back: an 8000 x 60 strip
    stored at 4096 x 31."""
    if min(fitted_size(width, height, max_side)) < min_side:
        raise ImageRejected(
            "image_too_narrow",
            IMAGE_TOO_NARROW,
            width=width,
            height=height,
            ratio=max_side // min_side,
        )


def fit_within(image: Image.Image, max_side: int) -> Image.Image:
    """``image`` scaled down so that its longest side is at most ``max_side`` pixels (the
    same image when it already is), keeping its proportions."""
    if max(image.size) <= max_side:
        return image
    size = fitted_size(image.width, image.height, max_side)
    # Pillow's bilinear filter widens with the scale, so a reduction is antialiased; it costs
    # a third of Lanczos (0.4 s against 1.2 s for 40 MP to 16 MP here), and reducing_gap
    # takes large factors in a fast integer step first.
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def thumbnail_bytes(image: Image.Image, max_side: int = THUMBNAIL_SIDE) -> bytes:
    """A small JPEG preview, longest side at most ``max_side`` pixels, with no metadata.

    Scaled straight from ``image`` (``fit_within``), with no copy of the photo first: for a
    12 MP upload that copy was another 36 MB in the web process while it decodes."""
    small = fit_within(image, max_side)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=85, **_NO_METADATA)
    return buffer.getvalue()


def check_rgb_array(rgb: np.ndarray) -> np.ndarray:
    """Check an ``(H, W, 3)`` uint8 RGB array and return it C-contiguous (dlib reads the
    buffer directly and rejects strided views)."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise TypeError("expected a uint8 numpy array")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    return np.ascontiguousarray(rgb)


def as_array(image: Image.Image) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 C-contiguous, writeable RGB array, as dlib wants it."""
    # One copy of an RGB photo's pixels: convert("RGB") would make a second, about 40 ms more
    # for a 12 MP photo on this machine (bench/large_photo.py).
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return np.array(rgb, dtype=np.uint8)
