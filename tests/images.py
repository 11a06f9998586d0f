"""Small factories for test images: real faces on a canvas, and every kind of broken file."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import Image


def encode(image: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def face_photo(
    face_files: list[Path], size: tuple[int, int] = (900, 600)
) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """Paste real UTKFace chips side by side on a grey canvas.

    Returns the photo and where each chip landed, as (left, top, right, bottom).
    """
    canvas = Image.new("RGB", size, (128, 128, 120))
    boxes = []
    slot = size[0] // max(1, len(face_files))
    for index, path in enumerate(face_files):
        chip = Image.open(path).convert("RGB").resize((200, 200))
        left = index * slot + (slot - 200) // 2
        top = (size[1] - 200) // 2
        canvas.paste(chip, (left, top))
        boxes.append((left, top, left + 200, top + 200))
    return canvas, boxes


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels but carries almost no data:
    a decompression bomb as far as the header is concerned."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (64, 64), color) for color in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def cmyk_jpeg(source: Image.Image) -> bytes:
    return encode(source.convert("CMYK"), "JPEG")


def sixteen_bit_png(size: tuple[int, int] = (96, 96)) -> bytes:
    image = Image.new("I;16", size)
    image.putdata([(x * 700) % 65536 for x in range(size[0] * size[1])])
    return encode(image, "PNG")


# How a camera stores the pixels of an upright photo for each EXIF orientation: the inverse of
# the turn a viewer applies (6, "rotate 90° clockwise to view", is stored 90° counter-
# clockwise). 1 and the values EXIF does not define are stored as they are.
STORED_TURNED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def exif_rotated_jpeg(upright: Image.Image, orientation: int = 6) -> bytes:
    """Store the pixels turned so that a viewer honouring EXIF ``orientation`` shows
    ``upright``, with a GPS block besides."""
    turn = STORED_TURNED.get(orientation)
    stored = upright.transpose(turn) if turn is not None else upright.copy()
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 0.0)}  # a GPS block that must not survive
    return encode(stored, "JPEG", exif=exif.tobytes())


def jpeg_with_orientation_typed(kind: str, orientation: int = 6) -> bytes:
    """A JPEG whose EXIF orientation is written as a ``"rational"`` or a ``"double"`` instead
    of the SHORT EXIF defines (Pillow reads either as a float)."""
    if kind == "rational":
        entry, value = struct.pack(">HHII", 0x0112, 5, 1, 26), struct.pack(">II", orientation, 1)
    else:
        entry, value = struct.pack(">HHII", 0x0112, 12, 1, 26), struct.pack(">d", orientation)
    # TIFF header, one directory of one entry, no next directory, then the value (offset 26).
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + entry + bytes(4) + value
    return encode(Image.new("RGB", (300, 200), "olive"), "JPEG", exif=b"Exif\x00\x00" + tiff)
