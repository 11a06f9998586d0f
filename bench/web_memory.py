"""What small but hostile requests cost the web processes: memory and CPU, through the API.

    .venv/bin/python bench/web_memory.py [--repeat 3]

Starts a stack (gunicorn with its default 2 processes x 16 threads, embedded Redis, SQLite)
with no inference worker busy (nothing is waited for), then sends each kind of request
``--repeat`` times, one at a time, and reports per kind: the answers, the web processes' CPU
per request, their peak resident memory (sampled every 20 ms) and their memory afterwards.

Kinds (issue 13, item 4):
- ``zeros-zip``: a zip of 20 entries of 10 MB of zeros each (about 200 KB on the wire);
- ``frames-gif``: a GIF of ``--frames`` 1x1 frames;
- ``heavy-zip``: a zip of 20 flat 6320x6320 PNGs (40 MP each, about 130 KB each).

To measure an older commit, run it in a `git worktree` of that commit with this script,
`bench/fairness.py` and `tests/e2e/stack.py` copied in.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import threading
import time
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.fairness import heavy_zip  # noqa: E402
from bench.tables import print_table  # noqa: E402
from tests.e2e.stack import browser_session  # noqa: E402


def web_processes(stack) -> list:
    import psutil

    parent = psutil.Process(stack.web.pid)
    return [parent, *parent.children(recursive=True)]


def web_rss_mb(stack) -> float:
    import psutil

    total = 0
    for process in web_processes(stack):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total / 2**20


def web_cpu_seconds(stack) -> float:
    import psutil

    total = 0.0
    for process in web_processes(stack):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def zeros_zip() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for n in range(20):
            bundle.writestr(f"zeros-{n:02d}.jpg", bytes(10 * 1024 * 1024 - 1024))
    return archive.getvalue()


def frames_gif(frames: int) -> bytes:
    from PIL import Image

    # Alternating black and white, so that Pillow does not merge equal frames into one.
    first = Image.new("L", (1, 1), 0)
    others = [Image.new("L", (1, 1), 255 * ((n + 1) % 2)) for n in range(frames - 1)]
    buffer = io.BytesIO()
    first.save(buffer, format="GIF", save_all=True, append_images=others, duration=10)
    return buffer.getvalue()


def measure(stack, session, field: str, name: str, data: bytes, repeat: int) -> list:
    peak = [web_rss_mb(stack)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], web_rss_mb(stack))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    cpu = web_cpu_seconds(stack)
    answers = []
    for _ in range(repeat):
        response = session.post(
            f"{stack.base_url}/api/v1/predictions/", files={field: (name, data)}, timeout=600
        )
        code = response.json().get("error", {}).get("code", "") if response.content else ""
        answers.append(f"{response.status_code} {code}".strip())
    cpu = (web_cpu_seconds(stack) - cpu) / repeat
    stop.set()
    sampler.join()
    return [
        ", ".join(sorted(set(answers))),
        f"{cpu:.2f}",
        f"{peak[0]:.0f}",
        f"{web_rss_mb(stack):.0f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frames", type=int, default=100_000)
    args = parser.parse_args()

    from tests.support.stack import local_stack

    kinds = [
        ("zeros-zip", "archive", "zeros.zip", zeros_zip()),
        ("frames-gif", "image", "frames.gif", frames_gif(args.frames)),
        ("heavy-zip", "archive", "heavy.zip", heavy_zip(20, 6320)),
    ]
    extra_env = {"FACEAGE_UPLOAD_RATE": "", "FACEAGE_BATCH_MAX_FILES": "20"}
    rows = []
    with local_stack(extra_env=extra_env) as stack:
        session = browser_session(stack.base_url)
        start = web_rss_mb(stack)
        for label, field, name, data in kinds:
            rows.append(
                [
                    label,
                    f"{len(data) / 1024:.0f}",
                    *measure(stack, session, field, name, data, args.repeat),
                ]
            )
    print(f"web processes at the start: {start:.0f} MB resident (gunicorn master + 2 workers)")
    print_table(
        [
            "request",
            "KB sent",
            "answers",
            "web CPU s/request",
            "peak web RSS MB",
            "web RSS MB after",
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
