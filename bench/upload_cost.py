"""What an upload costs the web process: a JPEG kept as it was compressed, or re-encoded.

    .venv/bin/python bench/upload_cost.py [--photos 10] [--rounds 5] [--seed 0]

Times ``predictor.uploads.unsaved_prediction`` itself, the web process's whole work on a photo
before its row is saved (the checks, the stored copy and the thumbnail, written to a scratch
MEDIA_ROOT), with ``FACEAGE_KEEP_UPLOADED_JPEG`` on (a JPEG is stored as it was
compressed, its metadata stripped, its orientation kept) and off (every upload decoded at full
size and re-encoded, as before). The two take turns on every photo, ``--rounds`` times; the
table gives the median CPU time per photo (this process, both threads), the stored copy's
size, and how far its pixels, as a viewer shows them, are from the upload's own (mean absolute
difference over the channels, 0-255): the loss that a second encoding adds.

Kinds of photo (all JPEG, as phones and cameras send them):

- UTKFace's aligned 200 px crops, the files as they are;
- in-the-wild FairFace portraits at 448 px (``photo_sets.wild_448``);
- ``bench/worker_time.py``'s 12 MP phone photos (a face on a blurred enlargement: little
  detail, so a small file);
- the same stored turned, with EXIF orientation 6, as a phone held upright stores a photo
  (``photo_sets.held_upright``): kept since 2026-12-07 with its orientation, re-encoded upright
  before;
- 12 MP photos full of detail: a 4032 x 3024 mosaic of 224 px FairFace portraits at quality
  92 (about 2 MB: four times the blurred one's file, so four times the entropy decoding).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import photo_sets  # noqa: E402
from bench.tables import print_table  # noqa: E402


def jpeg(image: Image.Image, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def detailed_12mp(count: int, seed: int) -> list[bytes]:
    """``count`` 4032 x 3024 mosaics of 224 px FairFace portraits."""
    files = photo_sets.fairface_val_files(photo_sets.default_fairface_dir(), 400, seed)
    tiles = [Image.open(path).convert("RGB").resize((224, 224)) for path in files]
    rng = random.Random(seed)
    photos = []
    for _ in range(count):
        canvas = Image.new("RGB", (4032, 3024))
        for top in range(0, 3024, 224):
            for left in range(0, 4032, 224):
                canvas.paste(rng.choice(tiles), (left, top))
        photos.append(jpeg(canvas))
    return photos


def kinds(count: int, seed: int) -> dict[str, list[bytes]]:
    from bench.photo_sets import held_upright
    from bench.worker_time import photos as worker_photos

    root = Path(os.environ.get("FACEAGE_DATASETS_DIR", REPO_ROOT.parent / "shared" / "datasets"))
    crops = random.Random(seed).sample(sorted((root / "utkface").glob("*.jpg")), count)
    made = worker_photos(count, seed)
    return {
        "UTKFace crop, 200 px": [path.read_bytes() for path in crops],
        "in the wild, 448 px": made["in the wild, 448 px"],
        "12 MP phone photo (blurred)": made["12 MP phone photo"],
        "the same, stored turned (EXIF 6)": [held_upright(d) for d in made["12 MP phone photo"]],
        "12 MP, full of detail": detailed_12mp(count, seed),
    }


def decoded(data: bytes) -> np.ndarray:
    """The pixels as a viewer shows them: turned upright by the EXIF orientation."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.int16)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceage_site.settings")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.test import RequestFactory, override_settings

    from predictor.uploads import unsaved_prediction

    request = RequestFactory().post("/")
    request.user = User(username="bench")  # an account: no session to write
    photo_kinds = kinds(args.photos, args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as media:
        for kind, photos in photo_kinds.items():
            cpu: dict[bool, list[float]] = {True: [], False: []}
            stored: dict[bool, list[bytes]] = {}
            for round_ in range(args.rounds):
                for data_index, data in enumerate(photos):
                    for keep in (True, False) if (round_ + data_index) % 2 else (False, True):
                        with override_settings(MEDIA_ROOT=media, FACEAGE_KEEP_UPLOADED_JPEG=keep):
                            started = time.process_time()
                            prediction = unsaved_prediction(request, "photo.jpg", data)
                            cpu[keep].append(time.process_time() - started)
                            if round_ == 0:
                                with prediction.image.open("rb") as handle:
                                    stored.setdefault(keep, []).append(handle.read())
                            prediction.image.delete(save=False)
                            prediction.thumbnail.delete(save=False)
            for keep in (False, True):
                losses = [
                    float(np.abs(decoded(copy) - decoded(original)).mean())
                    for copy, original in zip(stored[keep], photos, strict=True)
                ]
                rows.append(
                    [
                        kind,
                        "kept, metadata stripped" if keep else "decoded and re-encoded (before)",
                        f"{statistics.median(cpu[keep]) * 1000:.1f}",
                        f"{statistics.median(len(d) for d in photos) / 1024:.0f}",
                        f"{statistics.median(len(d) for d in stored[keep]) / 1024:.0f}",
                        f"{statistics.mean(losses):.2f}",
                    ]
                )
            print(" | ".join(rows[-2]), "\n", " | ".join(rows[-1]), flush=True)
    print(f"{args.photos} photos of each kind, {args.rounds} rounds, median per photo")
    print_table(
        [
            "photo",
            "stored copy",
            "web CPU ms",
            "upload KB",
            "stored KB",
            "pixels off the upload's",
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
