"""Real-photo test sets for the face detection benchmark (bench/detection.py).

- **Portraits**: FairFace validation photos as they are (in-the-wild Flickr faces, aligned
  by the dataset's authors with a 0.25 margin, 160 px). Each holds one face to find.
- **Group photos**: 2x2 and 3x3 grids of such portraits, every tile scaled so that its face
  is 60-400 px (a FairFace face is about two thirds of its tile), saved through JPEG like an
  upload. Each tile holds one face, near its centre.

A tile's face counts as found when one detection has its centre inside the tile's middle
half and a side between 0.3 and 1.2 tile sides; each detection matches one tile at most.
Every other detection is counted as false.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]
# A FairFace face (its dlib-style box) spans about this share of the photo's side.
FACE_SHARE_OF_TILE = 0.65
FACE_SIDE_RANGE = (60, 400)


@dataclass(frozen=True)
class GridPhoto:
    rgb: np.ndarray  # (H, W, 3) uint8
    tiles: tuple[Box, ...]  # one face per tile, near its centre


def default_fairface_dir() -> Path:
    root = os.environ.get(
        "FACEAGE_DATASETS_DIR", Path(__file__).resolve().parent.parent.parent / "shared/datasets"
    )
    return Path(root) / "fairface"


def fairface_val_files(fairface_dir: Path, count: int, seed: int) -> list[Path]:
    """``count`` FairFace validation photos, a seeded sample in a stable order."""
    files = sorted((fairface_dir / "val").glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"no FairFace validation photos in {fairface_dir / 'val'}")
    return sorted(random.Random(seed).sample(files, min(count, len(files))))


def wild_448(files: Sequence[Path]) -> list[bytes]:
    """In-the-wild photos of 448 x 448 px: portraits scaled up and saved through JPEG like an
    upload (bench/worker_time.py, bench/load.py --photos wild)."""
    photos = []
    for path in files:
        with Image.open(path) as portrait:
            scaled = portrait.convert("RGB").resize((448, 448), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        scaled.save(buffer, "JPEG", quality=92)
        photos.append(buffer.getvalue())
    return photos


def held_upright(data: bytes, quality: int = 92) -> bytes:
    """A landscape JPEG as a phone held upright stores it: the pixels turned 90° counter-
    clockwise, with EXIF orientation 6 ("turn 90° clockwise to view"), at ``quality``."""
    exif = Image.Exif()
    exif[0x0112] = 6
    with Image.open(io.BytesIO(data)) as image:
        stored = image.convert("RGB").transpose(Image.Transpose.ROTATE_90)
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=quality, exif=exif.tobytes())
    return buffer.getvalue()


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def random_tile_side(rng: np.random.Generator) -> int:
    """A grid's tile side: its face's side drawn log-uniformly from FACE_SIDE_RANGE."""
    low, high = FACE_SIDE_RANGE
    face = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    return round(face / FACE_SHARE_OF_TILE)


def compose_grid(portraits: Sequence[Path], side: int, tile: int) -> GridPhoto:
    """A group photo of ``side`` x ``side`` portraits (row by row), each scaled to ``tile``
    pixels, saved through JPEG."""
    canvas = Image.new("RGB", (tile * side, tile * side))
    tiles = []
    for place, path in enumerate(portraits):
        row, column = divmod(place, side)
        with Image.open(path) as portrait:
            resized = portrait.convert("RGB").resize((tile, tile), Image.Resampling.BICUBIC)
        canvas.paste(resized, (column * tile, row * tile))
        tiles.append((column * tile, row * tile, (column + 1) * tile, (row + 1) * tile))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=90)
    return GridPhoto(np.asarray(Image.open(buffer).convert("RGB")), tuple(tiles))


def build_grids(files: Sequence[Path], side: int, count: int, seed: int) -> list[GridPhoto]:
    """``count`` photos of ``side`` x ``side`` portraits each, from ``files``."""
    rng = np.random.default_rng(seed)
    chooser = random.Random(seed)
    photos = []
    for _ in range(count):
        tile = random_tile_side(rng)
        chosen = [chooser.choice(files) for _ in range(side * side)]
        photos.append(compose_grid(chosen, side, tile))
    return photos


def match_tiles(tiles: Sequence[Box], found: Sequence[Box]) -> tuple[list[bool], int]:
    """Found-flags per tile and the number of unmatched detections (see the docstring)."""
    matches = tile_matches(tiles, found)
    return [j is not None for j in matches], len(found) - sum(j is not None for j in matches)


def tile_matches(tiles: Sequence[Box], found: Sequence[Box]) -> list[int | None]:
    """For each tile, the index in ``found`` of the detection that matches it (see the
    docstring), or None; each detection matches one tile at most."""
    matches: list[int | None] = [None] * len(tiles)
    used = [False] * len(found)
    for i, (left, top, right, bottom) in enumerate(tiles):
        side = right - left
        for j, box in enumerate(found):
            if used[j]:
                continue
            centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            box_side = max(box[2] - box[0], box[3] - box[1])
            inside = (
                abs(centre_x - (left + right) / 2) < side / 4
                and abs(centre_y - (top + bottom) / 2) < side / 4
            )
            if inside and 0.3 * side <= box_side <= 1.2 * side:
                matches[i], used[j] = j, True
                break
    return matches
