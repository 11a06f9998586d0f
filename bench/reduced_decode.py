"""12 MP group photos decoded at a reduced scale: the same faces and ages, in less time?

    .venv/bin/python bench/reduced_decode.py [--photos 6] [--tiles 150,220,320,480,720] [--seed 0]

A large JPEG is decoded at half size (or less) for the detector, and its chips are cut from
those pixels only when every face is at least ``REDUCED_MIN_FACE_CHIPS`` chip sides across in
them (``predictor.vision.photo``, ``AgeEstimator.chip_source``). This checks that rule on
4000 x 3000 JPEGs (quality 92), each a grid of UTKFace *test-side* crops with exact ages,
pasted as tiles of one side per row of the table (the detector's face box is about 0.9 of its
tile) on a smooth background with grain. Three ways of reading each photo, and the time of
the first two per photo (decode, detect, align and rate, one process):

- **full size**: decoded at full size, chips from it (how the worker read every photo before);
- **served**: ``decode_photo`` and the served rule;
- **reduced always**: chips from the reduced pixels whatever the face size.

A tile's face counts as found by one detection whose centre lies in the tile's middle half
(``bench.photo_sets.tile_matches``). MAE is over the faces found, against the UTKFace age;
"|diff|" is the mean age difference from the full-size reading, over faces both found.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.accuracy import utkface_test  # noqa: E402
from bench.tables import print_table  # noqa: E402

CANVAS = (4000, 3000)
TILE_SIDES = (150, 220, 320, 480, 720)
GAP = 40


def background(rng: np.random.Generator) -> Image.Image:
    """A smooth two-colour gradient with fine grain: like a wall, with nothing face-like."""
    width, height = CANVAS
    low, high = rng.integers(40, 215, size=(2, 3))
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    base = low + (high - low) * ramp
    grain = rng.normal(0.0, 6.0, size=(height, width, 1)).astype(np.float32)
    pixels = np.clip(np.broadcast_to(base, (height, width, 3)) + grain, 0, 255)
    return Image.fromarray(pixels.astype(np.uint8)).filter(ImageFilter.GaussianBlur(1))


def group_photos(
    faces: list[tuple[Path, int]], side: int, count: int, seed: int
) -> list[tuple[bytes, list[tuple[tuple[int, int, int, int], int]]]]:
    """``count`` JPEGs with a grid of ``side``-px tiles each: (file, [(tile box, age)])."""
    rng = np.random.default_rng(seed + side)
    per_row = min(6, (CANVAS[0] - GAP) // (side + GAP))
    rows = min(4, (CANVAS[1] - GAP) // (side + GAP))
    order = random.Random(seed + side).sample(faces, min(len(faces), count * per_row * rows))
    photos = []
    for start in range(0, len(order), per_row * rows):
        canvas = background(rng)
        tiles = []
        for i, (path, age) in enumerate(order[start : start + per_row * rows]):
            x = GAP + (i % per_row) * (side + GAP) + int(rng.integers(0, GAP))
            y = GAP + (i // per_row) * (side + GAP) + int(rng.integers(0, GAP))
            face = Image.open(path).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
            canvas.paste(face, (x, y))
            tiles.append(((x, y, x + side, y + side), age))
        buffer = io.BytesIO()
        canvas.save(buffer, "JPEG", quality=92)
        photos.append((buffer.getvalue(), tiles))
    return photos


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=6, help="photos per tile side")
    parser.add_argument(
        "--tiles", default=",".join(map(str, TILE_SIDES)), help="tile sides in px, one row each"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tile_sides = [int(side) for side in args.tiles.split(",")]

    from bench.photo_sets import tile_matches
    from predictor.vision import estimator as estimator_module
    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.bundled_models import DEFAULT_SHIPPED_MODEL
    from predictor.vision.centerface import CenterFaceDetector
    from predictor.vision.estimator import AgeEstimator
    from predictor.vision.image_loading import PhotoLimits, as_array, load_photo
    from predictor.vision.photo import decode_photo

    network = AgeNetwork.shipped(DEFAULT_SHIPPED_MODEL)
    network.mirrored = True
    estimator = AgeEstimator(network, CenterFaceDetector())
    limits = PhotoLimits(max_bytes=None, max_pixels=40_000_000)
    served_rule = estimator_module.REDUCED_MIN_FACE_CHIPS
    faces = [(row[0], row[1]) for row in utkface_test(3000, args.seed)]

    def read(data: bytes, way: str):
        estimator_module.REDUCED_MIN_FACE_CHIPS = 0.0 if way == "reduced always" else served_rule
        if way == "full size":
            return estimator.estimate(as_array(load_photo(data, limits)))
        return estimator.estimate(decode_photo(data, limits))

    ways = ("full size", "served", "reduced always")
    rows = []
    try:
        for side in tile_sides:
            photos = group_photos(faces, side, args.photos, args.seed)
            read(photos[0][0], "served")  # warm-up
            ages: dict[str, list[float | None]] = {way: [] for way in ways}
            truth: list[int] = []
            box_sides: list[int] = []
            seconds: dict[str, list[float]] = {way: [] for way in ways[:2]}
            for data, tiles in photos:
                truth += [age for _, age in tiles]
                for way in ways:
                    start = time.perf_counter()
                    found = read(data, way)
                    if way in seconds:
                        seconds[way].append(time.perf_counter() - start)
                    boxes = [face.box for face in found]
                    matches = tile_matches([tile for tile, _ in tiles], boxes)
                    ages[way] += [None if j is None else found[j].age for j in matches]
                    if way == "full size":
                        box_sides += [face.box[2] - face.box[0] for face in found]
            row: list[object] = [side, f"{statistics.median(box_sides):.0f}" if box_sides else "-"]
            for way in ways:
                pairs = [(a, t) for a, t in zip(ages[way], truth, strict=True) if a is not None]
                row.append(f"{100 * len(pairs) / len(truth):.1f}%")
                row.append(f"{statistics.fmean(abs(a - t) for a, t in pairs):.2f}")
            for way in ways[1:]:
                both = [
                    abs(a - b)
                    for a, b in zip(ages["full size"], ages[way], strict=True)
                    if a is not None and b is not None
                ]
                row.append(f"{statistics.fmean(both):.2f}" if both else "-")
            row += [f"{1000 * statistics.median(seconds[way]):.0f}" for way in ways[:2]]
            rows.append(row)
            print(f"tile {side} px: {len(photos)} photos, {len(truth)} faces", flush=True)
    finally:
        estimator_module.REDUCED_MIN_FACE_CHIPS = served_rule
    print(
        f"4000x3000 JPEG group photos of UTKFace test-side faces (seed {args.seed}); "
        f"served rule: chips from the reduced pixels when every face is at least "
        f"{served_rule:g} x {network.chip_size} px in them"
    )
    print_table(
        [
            "tile px",
            "face box px",
            "full: found",
            "full: MAE",
            "served: found",
            "served: MAE",
            "reduced always: found",
            "reduced always: MAE",
            "served |diff|",
            "reduced always |diff|",
            "full ms p50",
            "served ms p50",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
