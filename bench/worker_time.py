"""Worker time per photo: what one inference task spends on one upload, old and new pipeline.

    .venv/bin/python bench/worker_time.py [--photos 60] [--seed 0] [--also faceage-v6]

Two kinds of photo, made from FairFace validation portraits and saved as JPEG like the
server's stored copy:
- **in the wild, 448 px**: a portrait scaled to 448 x 448;
- **12 MP phone photo**: 4000 x 3000, a portrait of about 900 px on a blurred enlargement of
  another (so the picture is not flat).

For each photo the timer covers what the worker does after reading the stored bytes: decode and
check, detect, align, and rate the faces (``AgeEstimator.estimate``). One process, after a
warm-up photo. Rows: the old pipeline (HOG cascade + dlib network, one pass, full-size decode);
CenterFace + the default shipped network, mirrored, on the full-size decode (as served until
large JPEGs were decoded at a reduced scale); the same as the worker serves it now
(``decode_photo``: a large JPEG at half size or less, the full size only for small faces);
and, where the default is served with a second opinion (faceage-v8), its network alone;
``--also`` adds other shipped versions, served as the worker serves them.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

from PIL import Image, ImageFilter

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import photo_sets  # noqa: E402
from bench.tables import print_table  # noqa: E402


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def photos(count: int, seed: int) -> dict[str, list[bytes]]:
    files = photo_sets.fairface_val_files(photo_sets.default_fairface_dir(), 2 * count, seed)
    portraits = [Image.open(path).convert("RGB") for path in files]
    wild = photo_sets.wild_448(files[:count])
    phone = []
    for face, scenery in zip(portraits[:count], portraits[count:], strict=True):
        canvas = scenery.resize((4000, 3000)).filter(ImageFilter.GaussianBlur(12))
        canvas.paste(face.resize((900, 900), Image.Resampling.BICUBIC), (1500, 800))
        phone.append(jpeg(canvas))
    return {"in the wild, 448 px": wild, "12 MP phone photo": phone}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--also", default="", help="other shipped versions to time as served, comma-separated"
    )
    args = parser.parse_args(argv)

    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.bundled_models import DEFAULT_SHIPPED_MODEL, shipped_weights_name
    from predictor.vision.centerface import CenterFaceDetector
    from predictor.vision.estimator import AgeEstimator
    from predictor.vision.face_detection import FaceDetector
    from predictor.vision.image_loading import PhotoLimits, as_array, load_photo
    from predictor.vision.photo import decode_photo

    served = AgeNetwork.shipped(DEFAULT_SHIPPED_MODEL)
    served.mirrored = True
    limits = PhotoLimits(max_bytes=None, max_pixels=40_000_000)

    def full_size(data: bytes):
        return as_array(load_photo(data, limits))

    def as_the_worker(data: bytes):
        return decode_photo(data, limits)

    new = AgeEstimator(served, CenterFaceDetector())
    pipelines = {
        "HOG cascade + dlib-age-v1": (
            AgeEstimator(AgeNetwork.bundled(), FaceDetector()),
            full_size,
        ),
        f"CenterFace + {DEFAULT_SHIPPED_MODEL}, mirrored, full-size decode": (new, full_size),
        f"CenterFace + {DEFAULT_SHIPPED_MODEL}, mirrored (served)": (new, as_the_worker),
    }
    if served.second_opinion is not None:
        # The network the default serves, without its second opinion (the default before it).
        alone = AgeNetwork.shipped(shipped_weights_name(DEFAULT_SHIPPED_MODEL))
        alone.mirrored = True
        weights = shipped_weights_name(DEFAULT_SHIPPED_MODEL)
        name = f"CenterFace + {weights}, mirrored, no second opinion"
        pipelines[name] = (AgeEstimator(alone, new.detector, new.aligner), as_the_worker)
    for version in filter(None, (name.strip() for name in args.also.split(","))):
        other = AgeNetwork.shipped(version)
        other.mirrored = True
        name = f"CenterFace + {version}, mirrored"
        pipelines[name] = (AgeEstimator(other, new.detector, new.aligner), as_the_worker)
    sets = photos(args.photos, args.seed)
    rows = []
    for kind, items in sets.items():
        for name, (estimator, decode) in pipelines.items():
            estimator.estimate(decode(items[0]))  # warm-up
            times, found = [], 0
            for data in items:
                start = time.perf_counter()
                faces = estimator.estimate(decode(data))
                times.append(time.perf_counter() - start)
                found += bool(faces)
            times.sort()
            rows.append(
                [
                    kind,
                    name,
                    f"{100 * found / len(items):.0f}%",
                    f"{1000 * statistics.median(times):.0f}",
                    f"{1000 * times[int(0.95 * (len(times) - 1))]:.0f}",
                ]
            )
    print(f"{args.photos} photos of each kind (seed {args.seed}), one process")
    print_table(["photo", "pipeline", "faces found", "ms p50", "ms p95"], rows)


if __name__ == "__main__":
    main()
