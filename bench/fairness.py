"""One user's heavy batch against another user's small photos, through the API of a stack.

    .venv/bin/python bench/fairness.py [--heavy 20] [--side 6320] [--small 10]
    .venv/bin/python bench/fairness.py --redis-url redis://127.0.0.1:6379/12 \
        --database-url postgres://postgres@127.0.0.1:5432/faceage_fairness

User A uploads a zip of ``--heavy`` PNGs of ``--side`` x ``--side`` pixels (flat colour,
about 120 KB each: tiny files that are expensive to decode). As soon as A's upload is
answered, user B, another browser session, uploads a small UTKFace photo, waits until it is
terminal, pauses 0.5 s and uploads the next, ``--small`` times or until A's photos are all
terminal. Reported: B's latency from upload to terminal status (p50, max), B's outcomes, and
how each of A's photos ended. The issue (13, item 1) saw B wait 51 s at 7b800d0, and a task of
eight such PNGs fail all eight at 63 s.

To measure an older commit, run it in a `git worktree` of that commit with this script and
`tests/e2e/stack.py` copied in, and import `local_stack` from where that commit has it
(`faceage_site.processes` before `tests/support/stack.py` existed).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402
from tests.e2e.stack import browser_session  # noqa: E402


def heavy_zip(count: int, side: int) -> bytes:
    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (side, side), (120, 130, 140)).save(png, format="PNG")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as bundle:
        for n in range(count):
            bundle.writestr(f"heavy-{n:02d}.png", png.getvalue())
    return archive.getvalue()


def wait_terminal(session, url: str, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = session.get(url, params={"wait": 20}, timeout=60)
        body = answer.json()
        if body.get("status") in ("succeeded", "failed"):
            return body
        if "Retry-After" in answer.headers:
            time.sleep(float(answer.headers["Retry-After"]))
    raise TimeoutError(url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heavy", type=int, default=20, help="photos in user A's zip")
    parser.add_argument("--side", type=int, default=6320, help="their side in pixels")
    parser.add_argument("--small", type=int, default=10, help="user B's photos at most")
    parser.add_argument("--redis-url")
    parser.add_argument("--database-url")
    args = parser.parse_args()

    from tests.support.stack import local_stack

    root = Path(os.environ.get("FACEAGE_DATASETS_DIR", REPO_ROOT.parent / "shared" / "datasets"))
    small_files = random.Random(0).sample(sorted((root / "utkface").glob("*.jpg")), args.small)
    archive = heavy_zip(args.heavy, args.side)
    print(f"user A's zip: {args.heavy} PNGs of {args.side}x{args.side}, {len(archive)} bytes")

    extra_env = {"FACEAGE_UPLOAD_RATE": "", "FACEAGE_BATCH_MAX_FILES": str(max(20, args.heavy))}
    with local_stack(args.database_url, args.redis_url, extra_env=extra_env, beat=True) as stack:
        user_a = browser_session(stack.base_url)
        user_b = browser_session(stack.base_url)
        warm = user_b.post(
            f"{stack.base_url}/api/v1/predictions/",
            files={"image": (small_files[0].name, small_files[0].read_bytes())},
            timeout=60,
        )
        wait_terminal(user_b, warm.headers["Location"])  # the worker has its network

        started = time.perf_counter()
        response = user_a.post(
            f"{stack.base_url}/api/v1/predictions/",
            files={"archive": ("heavy.zip", archive, "application/zip")},
            timeout=600,
        )
        upload_seconds = time.perf_counter() - started
        assert response.status_code == 202, response.text[:500]
        batch = response.json()
        a_urls = [item["url"] for item in batch["predictions"]]
        a_bodies: list[dict] = []

        def follow_a() -> None:
            a_bodies.extend(wait_terminal(user_a, url) for url in a_urls)

        follower = threading.Thread(target=follow_a)
        follower.start()
        b_latencies, b_outcomes = [], Counter()
        for path in small_files:
            if not follower.is_alive():
                break
            began = time.perf_counter()
            answer = user_b.post(
                f"{stack.base_url}/api/v1/predictions/",
                files={"image": (path.name, path.read_bytes())},
                timeout=60,
            )
            if answer.status_code != 202:
                b_outcomes[f"refused {answer.status_code}"] += 1
                continue
            body = wait_terminal(user_b, answer.headers["Location"])
            b_latencies.append(time.perf_counter() - began)
            b_outcomes[body["status"]] += 1
            time.sleep(0.5)
        follower.join()
        a_seconds = time.perf_counter() - started

    a_outcomes = Counter(
        body["status"] + (f": {body['error']['message'][:60]}" if body["error"] else "")
        for body in a_bodies
    )
    ordered = sorted(b_latencies)
    print(f"user A: batch upload answered in {upload_seconds:.1f} s; all {len(a_urls)} "
          f"photos terminal after {a_seconds:.1f} s: {dict(a_outcomes)}")  # fmt: skip
    print_table(
        ["user B photos", "outcomes", "p50 s", "max s"],
        [
            [
                len(b_latencies),
                ", ".join(f"{k} {v}" for k, v in sorted(b_outcomes.items())),
                f"{ordered[len(ordered) // 2]:.2f}" if ordered else "-",
                f"{ordered[-1]:.2f}" if ordered else "-",
            ]
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
