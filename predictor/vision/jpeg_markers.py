"""A JPEG's compressed image kept as it is, with everything around it that is not the image
dropped: EXIF (with GPS and the camera's serial number), XMP, IPTC, ICC profiles, comments,
maker data, embedded previews and thumbnails, and whatever follows the end of the image
(a phone's depth map or second picture).

A photo stored turned, which its EXIF orientation turns upright for viewing (a phone held
upright writes its landscape sensor's pixels and orientation 6), keeps that one tag in an EXIF
segment of its own (:func:`orientation_segment`): no other tag, no GPS, no thumbnail.

Used by the web process for an upload that needs no change to its pixels: re-encoding a 12 MP
JPEG costs about 100 ms of CPU and a generation of quality, copying its segments costs about
a millisecond (docs/benchmarks.md, "Uploads that keep their JPEG"). No Django imports.

JPEG layout (ITU-T T.81, Annex B): SOI, then segments, each a marker ``FF xx`` and a two-byte
big-endian length that counts itself; a scan (SOS) is followed by its entropy-coded data, in
which ``FF 00`` is a stuffed data byte and ``FF D0``-``FF D7`` restart markers, until the next
marker; ``FF D9`` (EOI) ends the image. A progressive JPEG has several scans, with tables
between them.
"""

from __future__ import annotations

import struct

SOI = b"\xff\xd8"
EOI = 0xD9
SOS = 0xDA

# Segments the decoder needs, kept byte for byte: the frame headers of the DCT processes
# (SOF0-3, 5-7, 9-11, 13-15), Huffman and arithmetic coding tables, quantisation tables,
# the restart interval, the scans, DNL, and Adobe's APP14 (its transform flag says whether
# three components are YCbCr or RGB: pixels, not metadata; it holds a version and flags only).
_FRAMES = (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
_KEPT = frozenset((*_FRAMES, 0xC4, 0xCC, 0xDB, 0xDD, 0xDC, SOS, 0xEE))
# Dropped: APP0-APP13 and APP15 (JFIF with its thumbnail, EXIF, XMP, ICC, MPF, IPTC, maker
# data) and comments. JFIF is written afresh, without a thumbnail.
_DROPPED = frozenset((*range(0xE0, 0xEE), 0xEF, 0xFE))
# A plain JFIF header: version 1.01, no density unit, a 1:1 pixel aspect, no thumbnail; what
# Pillow writes when it saves a JPEG.
JFIF = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
# EXIF's orientation tag and the values it may take (1: stored upright; 2-8: mirrored and/or
# turned by quarters, TIFF 6.0 section 8, "Orientation").
ORIENTATION_TAG = 0x0112
ORIENTATIONS = range(1, 9)


def orientation_segment(orientation: int) -> bytes:
    """An APP1 EXIF segment holding one tag, the orientation: a big-endian TIFF header and
    one directory with one entry (a SHORT), and no next directory. 36 bytes."""
    if type(orientation) is not int or orientation not in ORIENTATIONS:
        raise ValueError(f"an EXIF orientation is a whole number 1 to 8, not {orientation!r}")
    entry = struct.pack(">HHIHH", ORIENTATION_TAG, 3, 1, orientation, 0)  # SHORT, 1 value
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + bytes(4)
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _scan_end(data: bytes, start: int) -> int:
    """Where the entropy-coded data that begins at ``start`` ends: the offset of the next
    marker's ``FF`` (fill bytes ``FF FF`` before it included in the data), or ``len(data)``."""
    position = start
    while True:
        position = data.find(b"\xff", position)
        if position < 0 or position + 1 >= len(data):
            return len(data)
        following = data[position + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            position += 2  # a stuffed byte or a restart marker: still the scan's data
        elif following == 0xFF:
            position += 1  # a fill byte; the marker comes after it
        else:
            return position


def strip_metadata(data: bytes, orientation: int = 1) -> bytes | None:
    """``data``, a JPEG, with only what decodes its pixels kept (see the module docstring),
    a plain JFIF header and, for an ``orientation`` other than 1 (upright as stored), an EXIF
    segment that holds that orientation alone; None when it is not laid out as a JPEG should
    be (no SOI, a segment running past the file, no EOI, a marker this does not know), so that
    the caller re-encodes it instead.

    The pixels the result decodes to are the input's: every kept segment is copied
    unchanged, in its order. Nothing after EOI is kept."""
    if not data.startswith(SOI):
        return None
    out = [SOI, JFIF]
    if orientation != 1:
        out.append(orientation_segment(orientation))
    position = 2
    size = len(data)
    while position < size:
        if data[position] != 0xFF:
            return None
        # Any number of fill bytes may precede a marker.
        while position + 1 < size and data[position + 1] == 0xFF:
            position += 1
        if position + 1 >= size:
            return None
        marker = data[position + 1]
        if marker == EOI:
            out.append(b"\xff\xd9")
            return b"".join(out)
        if position + 4 > size:
            return None
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        end = position + 2 + length
        if length < 2 or end > size:
            return None
        if marker in _KEPT:
            out.append(data[position:end])
        elif marker not in _DROPPED:
            return None  # SOI again, a stray RST, JPEG extensions, hierarchical DHP/EXP
        position = end
        if marker == SOS:
            scan_end = _scan_end(data, position)
            out.append(data[position:scan_end])
            position = scan_end
    return None
