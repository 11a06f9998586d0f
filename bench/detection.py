"""Face detection benchmark: composed photos with known face boxes, then real portraits
and group photos made of them (bench/photo_sets.py).

    .venv/bin/python bench/detection.py [--photos 80] [--seed 0] [--cnn-side 448]
        [--portraits 300] [--grids 40]

Builds a deterministic set of photos (640-1600 px on the long side) from real
UTKFace faces: 1-4 faces to a photo, face boxes 40-250 px, tilted 0, +-15 or
+-30 degrees in the image plane, on gradient, cloudy-noise, cluttered-shape or
scrambled-face backgrounds (blocks of real faces shuffled: skin, eyes and hair
but no face, the hardest non-face content here), saved through JPEG like an
upload. UTKFace chips are cropped tightly to the face, so each is pasted with a
blurred, edge-extended margin that fades into the background. The ground-truth
box of a face is the centre 90% of its pasted chip, upright and centred on it,
which is where dlib's detectors put their boxes on these chips.

Then it runs several strategies over the same photos (plain HOG and plain CNN
at fixed sizes, FaceDetector without its low-score re-check, FaceDetector as
shipped) and prints one row per strategy: recall (share of pasted faces
matched by a detection with IoU >= 0.4, one detection per face), recall by
face size and by tilt, false detections (every unmatched detection,
duplicates included), and wall time per photo (median and mean, one call per
photo, after one warm-up call).

Real faces come from ``$FACEAGE_DATASETS_DIR/utkface`` (default
``../shared/datasets/utkface`` next to the repository).
"""

from __future__ import annotations

import argparse
import io
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ (not the repository) on sys.path.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import dlib  # noqa: E402

from bench import photo_sets  # noqa: E402
from bench.tables import print_table  # noqa: E402
from predictor.vision.bundled_models import cnn_face_detector_path  # noqa: E402
from predictor.vision.centerface import DEFAULT_THRESHOLD, CenterFaceDetector  # noqa: E402
from predictor.vision.face_detection import FaceBox, FaceDetector  # noqa: E402

TILTS = (0.0, 15.0, -15.0, 30.0, -30.0)
FACE_SIDE_RANGE = (40, 250)
PHOTO_SIDE_RANGE = (640, 1600)
MATCH_IOU = 0.4
# The ground-truth box is this share of the pasted chip's side (see the docstring).
FACE_SHARE_OF_CHIP = 0.9
# Margin added around each tight UTKFace chip, as a share of the chip's side.
CHIP_MARGIN = 0.35
SIZE_BUCKETS = ((40, 64), (64, 100), (100, 251))

Box = tuple[int, int, int, int]  # left, top, right (exclusive), bottom (exclusive)


@dataclass(frozen=True)
class TestPhoto:
    """A composed photo and where its faces are."""

    rgb: np.ndarray  # (H, W, 3) uint8
    faces: tuple[Box, ...]  # input pixels, right/bottom exclusive
    tilts: tuple[float, ...]  # degrees counter-clockwise, one per face


def default_utkface_dir() -> Path:
    root = os.environ.get("FACEAGE_DATASETS_DIR", REPO_ROOT.parent / "shared" / "datasets")
    return Path(root) / "utkface"


# --- composing photos -------------------------------------------------------------------


def _scrambled_faces(
    rng: np.random.Generator, chooser: random.Random, files: Sequence[Path], width: int, height: int
) -> np.ndarray:
    """Blocks cut from real faces, shuffled: skin, eyes and hair, but no face."""
    block = int(rng.integers(16, 48))
    cells_x, cells_y = -(-width // block), -(-height // block)
    per_chip = 4
    chips = [
        np.asarray(Image.open(chooser.choice(files)).convert("RGB").resize((block * per_chip,) * 2))
        for _ in range(-(-(cells_x * cells_y) // per_chip**2))
    ]
    blocks = [
        chip[y * block : (y + 1) * block, x * block : (x + 1) * block]
        for chip in chips
        for y in range(per_chip)
        for x in range(per_chip)
    ]
    order = rng.permutation(len(blocks))[: cells_x * cells_y]
    rows = [
        np.concatenate([blocks[i] for i in order[r * cells_x : (r + 1) * cells_x]], axis=1)
        for r in range(cells_y)
    ]
    return np.concatenate(rows, axis=0)[:height, :width].astype(np.float32)


def _background(
    rng: np.random.Generator, chooser: random.Random, files: Sequence[Path], width: int, height: int
) -> Image.Image:
    kind = rng.integers(4)
    if kind == 3:
        image = _scrambled_faces(rng, chooser, files, width, height)
    elif kind == 0:
        # Linear two-colour gradient.
        start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        angle = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        t = xs * math.cos(angle) + ys * math.sin(angle)
        t = (t - t.min()) / max(1.0, float(t.max() - t.min()))
        image = start * (1 - t[..., None]) + end * t[..., None]
    elif kind == 1:
        # Cloudy colour noise: a few octaves of upscaled random grids.
        image = np.zeros((height, width, 3), np.float32)
        for octave, weight in ((4, 0.5), (16, 0.3), (64, 0.2)):
            grid = rng.uniform(0, 255, (octave, octave, 3)).astype(np.uint8)
            layer = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC)
            image += weight * np.asarray(layer, np.float32)
    else:
        # Clutter: flat colour under random rectangles, ellipses and lines.
        canvas = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(15, 40))):
            x0, x1 = sorted(rng.integers(0, width, 2))
            y0, y1 = sorted(rng.integers(0, height, 2))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            shape = rng.integers(3)
            if shape == 0:
                draw.rectangle((x0, y0, x1, y1), fill=colour)
            elif shape == 1:
                draw.ellipse((x0, y0, x1, y1), fill=colour)
            else:
                draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(2, 12)))
        image = np.asarray(canvas.filter(ImageFilter.GaussianBlur(1.5)), np.float32)
    image = image + rng.normal(0, rng.uniform(3, 10), (height, width, 3))
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def _face_sprite(chip: Image.Image, chip_side: int, tilt: float) -> Image.Image:
    """The chip with a soft margin, as an RGBA sprite, rotated by ``tilt`` degrees."""
    rgb = np.asarray(chip.convert("RGB").resize((chip_side, chip_side), Image.Resampling.BICUBIC))
    margin = max(2, round(chip_side * CHIP_MARGIN))
    padded = Image.fromarray(np.pad(rgb, ((margin, margin), (margin, margin), (0, 0)), "edge"))
    # Blur only the margin: edge-extension streaks otherwise look like strong lines.
    blurred = padded.filter(ImageFilter.GaussianBlur(max(1.0, margin / 4)))
    inner = Image.new("L", padded.size, 0)
    ImageDraw.Draw(inner).rectangle(
        (margin, margin, margin + chip_side - 1, margin + chip_side - 1), fill=255
    )
    padded = Image.composite(padded, blurred, inner.filter(ImageFilter.GaussianBlur(2)))
    # Opaque over the face, fading to transparent at the outer edge of the margin.
    side = padded.size[0]
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float32)
    centre = (side - 1) / 2
    distance = np.hypot(xs - centre, ys - centre) / (chip_side / 2)
    alpha = np.clip((1.0 + 2 * CHIP_MARGIN - distance) / (2 * CHIP_MARGIN - 0.3), 0, 1)
    sprite = padded.convert("RGBA")
    sprite.putalpha(Image.fromarray((alpha * 255).astype(np.uint8)))
    if tilt:
        sprite = sprite.rotate(tilt, Image.Resampling.BICUBIC, expand=True)
    return sprite


def build_photos(count: int, seed: int, utkface_dir: Path) -> list[TestPhoto]:
    """Compose ``count`` photos deterministically from ``seed`` (see the module docstring)."""
    files = sorted(utkface_dir.glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"no UTKFace images in {utkface_dir}")
    rng = np.random.default_rng(seed)
    chooser = random.Random(seed)
    photos = []
    for _ in range(count):
        long_side = int(rng.integers(PHOTO_SIDE_RANGE[0], PHOTO_SIDE_RANGE[1] + 1))
        aspect = float(rng.choice([1.0, 4 / 3, 3 / 2, 16 / 9]))
        width, height = long_side, round(long_side / aspect)
        if rng.random() < 0.3:
            width, height = height, width
        canvas = _background(rng, chooser, files, width, height).convert("RGBA")
        faces: list[Box] = []
        tilts: list[float] = []
        placed: list[tuple[float, float, float]] = []  # centre x, centre y, radius
        for _ in range(int(rng.choice([1, 1, 2, 2, 3, 4]))):
            low, high = FACE_SIDE_RANGE
            face_side = round(math.exp(rng.uniform(math.log(low), math.log(high))))
            face_side = min(face_side, int(0.4 * min(width, height)))
            chip_side = round(face_side / FACE_SHARE_OF_CHIP)
            tilt = float(rng.choice(TILTS))
            sprite = _face_sprite(Image.open(chooser.choice(files)), chip_side, tilt)
            radius = chip_side * (0.5 + CHIP_MARGIN) * 0.8
            # Faces do not overlap and stay wholly inside the photo.
            for _attempt in range(50):
                cx = float(rng.uniform(chip_side * 0.75, width - chip_side * 0.75))
                cy = float(rng.uniform(chip_side * 0.75, height - chip_side * 0.75))
                if all(math.hypot(cx - x, cy - y) > radius + r for x, y, r in placed):
                    break
            else:
                continue
            placed.append((cx, cy, radius))
            canvas.alpha_composite(
                sprite, (round(cx - sprite.size[0] / 2), round(cy - sprite.size[1] / 2))
            )
            half = face_side / 2
            faces.append((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
            tilts.append(tilt)
        # Through JPEG, as an upload would be.
        buffer = io.BytesIO()
        canvas.convert("RGB").save(buffer, "JPEG", quality=90)
        rgb = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        photos.append(TestPhoto(rgb=rgb, faces=tuple(faces), tilts=tuple(tilts)))
    return photos


# --- scoring ----------------------------------------------------------------------------


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes, right/bottom exclusive."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def match(truths: Sequence[Box], found: Sequence[Box]) -> tuple[list[bool], int]:
    """Greedy one-to-one matching by IoU; returns found-flags per truth and the false count."""
    pairs = sorted(
        ((iou(t, f), i, j) for i, t in enumerate(truths) for j, f in enumerate(found)),
        reverse=True,
    )
    hit = [False] * len(truths)
    used = [False] * len(found)
    for overlap, i, j in pairs:
        if overlap < MATCH_IOU:
            break
        if not hit[i] and not used[j]:
            hit[i] = used[j] = True
    return hit, used.count(False)


# --- strategies -------------------------------------------------------------------------

Detect = Callable[[np.ndarray], list[Box]]


def _scaled(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float, float]:
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return rgb, 1.0, 1.0
    size = (round(width * scale), round(height * scale))
    small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
    return small, size[0] / width, size[1] / height


def hog_only(upsample: int, max_side: int) -> Detect:
    """Plain dlib HOG at ``upsample``, on a copy downscaled to ``max_side`` if larger."""
    detector = dlib.get_frontal_face_detector()

    def detect(rgb: np.ndarray) -> list[Box]:
        small, sx, sy = _scaled(rgb, max_side)
        return [
            (
                round(r.left() / sx),
                round(r.top() / sy),
                round((r.right() + 1) / sx),
                round((r.bottom() + 1) / sy),
            )
            for r in detector(small, upsample)
        ]

    return detect


def cnn_only(max_side: int) -> Detect:
    """Plain dlib MMOD CNN, no upsampling, on a copy downscaled to ``max_side``."""
    detector = dlib.cnn_face_detection_model_v1(str(cnn_face_detector_path()))

    def detect(rgb: np.ndarray) -> list[Box]:
        small, sx, sy = _scaled(rgb, max_side)
        return [
            (
                round(d.rect.left() / sx),
                round(d.rect.top() / sy),
                round((d.rect.right() + 1) / sx),
                round((d.rect.bottom() + 1) / sy),
            )
            for d in detector(small, 0)
        ]

    return detect


def face_detector(**options: object) -> Detect:
    """The HOG cascade (:class:`FaceDetector`, the product's detector until CenterFace)."""
    detector = FaceDetector(**options)  # type: ignore[arg-type]

    def detect(rgb: np.ndarray) -> list[Box]:
        boxes: list[FaceBox] = detector.detect(rgb)
        return [(b.left, b.top, b.right, b.bottom) for b in boxes]

    return detect


def centerface(**options: object) -> Detect:
    """The product's detector, :class:`CenterFaceDetector`, with ``options``."""
    detector = CenterFaceDetector(**options)  # type: ignore[arg-type]

    def detect(rgb: np.ndarray) -> list[Box]:
        return [(b.left, b.top, b.right, b.bottom) for b in detector.detect(rgb)]

    return detect


def strategies(cnn_side: int) -> list[tuple[str, Detect]]:
    """The rows of the table: name and detector."""
    return [
        ("HOG up0, max side 1280", hog_only(0, 1280)),
        ("HOG up1, max side 1280", hog_only(1, 1280)),
        (f"CNN, max side {cnn_side}", cnn_only(cnn_side)),
        ("HOG cascade, no re-check", face_detector(candidate_threshold=0.0)),
        ("HOG cascade (old default)", face_detector()),
        # (Nor the smoothed retry, added later: the row measures the first scan alone.)
        ("CenterFace, no padded retry", centerface(retry_padding=0.0, retry_smoothing=0.0)),
        ("CenterFace, no mirrored pass", centerface(mirror_from_faces=0)),
        ("CenterFace, no weak group faces", centerface(group_threshold=DEFAULT_THRESHOLD)),
        ("CenterFace (default)", centerface()),
    ]


def product_detectors() -> list[tuple[str, Detect]]:
    """The old and the new default, for the real-photo table."""
    return [
        ("HOG cascade (old default)", face_detector()),
        ("CenterFace, no mirrored pass", centerface(mirror_from_faces=0)),
        ("CenterFace, no weak group faces", centerface(group_threshold=DEFAULT_THRESHOLD)),
        ("CenterFace (default)", centerface()),
    ]


# --- running ----------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    hits: list[bool]
    sizes: list[int]
    tilts: list[float]
    false: int
    times: list[float]


def evaluate(name: str, detect: Detect, photos: Sequence[TestPhoto]) -> Result:
    """Run ``detect`` on every photo, timing each call."""
    detect(photos[0].rgb)  # warm-up: first-call allocations are not per-photo cost
    result = Result(name, [], [], [], 0, [])
    for photo in photos:
        start = time.perf_counter()
        found = detect(photo.rgb)
        result.times.append(time.perf_counter() - start)
        hit, false = match(photo.faces, found)
        result.hits += hit
        result.sizes += [box[2] - box[0] for box in photo.faces]
        result.tilts += list(photo.tilts)
        result.false += false
    return result


def _share(flags: Sequence[bool]) -> str:
    return f"{100 * sum(flags) / len(flags):.1f}%" if flags else "-"


def report(results: Sequence[Result], photo_count: int) -> None:
    """Print the benchmark table."""
    size_headers = [f"{low}-{high - 1}px" for low, high in SIZE_BUCKETS]
    headers = [
        "strategy",
        "recall",
        *size_headers,
        "tilt 0",
        "tilt 15",
        "tilt 30",
        "false",
        "false/photo",
        "ms median",
        "ms mean",
    ]
    rows = []
    for r in results:
        by_size = [
            _share([h for h, s in zip(r.hits, r.sizes, strict=True) if low <= s < high])
            for low, high in SIZE_BUCKETS
        ]
        by_tilt = [
            _share([h for h, t in zip(r.hits, r.tilts, strict=True) if abs(t) == tilt])
            for tilt in (0.0, 15.0, 30.0)
        ]
        rows.append(
            [
                r.name,
                _share(r.hits),
                *by_size,
                *by_tilt,
                r.false,
                f"{r.false / photo_count:.2f}",
                f"{1000 * statistics.median(r.times):.0f}",
                f"{1000 * statistics.fmean(r.times):.0f}",
            ]
        )
    print_table(headers, rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=80, help="number of composed photos")
    parser.add_argument("--seed", type=int, default=0, help="seed for composing the photos")
    parser.add_argument(
        "--cnn-side", type=int, default=448, help="long side (px) the CNN-only row scans"
    )
    parser.add_argument("--utkface", type=Path, default=default_utkface_dir())
    parser.add_argument("--fairface", type=Path, default=photo_sets.default_fairface_dir())
    parser.add_argument("--portraits", type=int, default=300, help="FairFace val portraits")
    parser.add_argument("--grids", type=int, default=40, help="group photos of each size")
    args = parser.parse_args(argv)

    photos = build_photos(args.photos, args.seed, args.utkface)
    faces = sum(len(p.faces) for p in photos)
    sides = [max(p.rgb.shape[:2]) for p in photos]
    print(
        f"{len(photos)} photos (seed {args.seed}), {faces} faces, long side "
        f"{min(sides)}-{max(sides)} px (median {statistics.median(sides):.0f})"
    )
    results = [evaluate(name, detect, photos) for name, detect in strategies(args.cnn_side)]
    report(results, len(photos))
    real_photos(args.fairface, args.portraits, args.grids, args.seed)


def real_photos(fairface_dir: Path, portrait_count: int, grid_count: int, seed: int) -> None:
    """Faces found in real portraits and in group photos made of them (photo_sets)."""
    files = photo_sets.fairface_val_files(fairface_dir, portrait_count, seed)
    portraits = [photo_sets.load_rgb(path) for path in files]
    all_val = photo_sets.fairface_val_files(fairface_dir, 10**6, seed)
    grids = {
        side: photo_sets.build_grids(all_val, side, grid_count, seed + side) for side in (2, 3)
    }
    print(
        f"\nReal photos: {len(portraits)} FairFace validation portraits (one face each); "
        f"{grid_count} 2x2 and {grid_count} 3x3 group photos of them, faces 60-400 px"
    )
    headers = ["detector", "portraits found", "ms median", "2x2 found", "3x3 found"]
    headers += ["false (grids)", "grid ms median"]
    rows = []
    for name, detect in product_detectors():
        detect(portraits[0])  # warm-up
        found, times = 0, []
        for rgb in portraits:
            start = time.perf_counter()
            found += bool(detect(rgb))
            times.append(time.perf_counter() - start)
        shares, false, grid_times = [], 0, []
        for side in (2, 3):
            hits: list[bool] = []
            for photo in grids[side]:
                start = time.perf_counter()
                boxes = detect(photo.rgb)
                grid_times.append(time.perf_counter() - start)
                hit, unmatched = photo_sets.match_tiles(photo.tiles, boxes)
                hits += hit
                false += unmatched
            shares.append(_share(hits))
        rows.append(
            [
                name,
                f"{100 * found / len(portraits):.1f}%",
                f"{1000 * statistics.median(times):.0f}",
                *shares,
                false,
                f"{1000 * statistics.median(grid_times):.0f}",
            ]
        )
    print_table(headers, rows)


if __name__ == "__main__":
    main()
