"""How long a person waits in the browser: from the upload button to the ages on the screen.

    .venv/bin/python bench/web_result.py [--photos 20] [--kinds utkface,wild]

A fresh stack (gunicorn, the Celery inference worker, embedded Redis, SQLite: what `make run`
starts) and Debian's ``chromium`` driven by Playwright, headless, on this machine. For each
photo, one at a time: open the upload page, choose the photo, press the upload button, and
time two moments from the press:

- the result page is open (the form's POST and its redirect);
- the result page shows the prediction finished (``#status`` is ``status-succeeded`` or
  ``status-failed``, which ``static/js/result.js`` sets when its request answers with the
  finished prediction; the boxes and ages are drawn in the same step).

Photos are the kinds of ``bench/load.py``: ``utkface`` (200 px aligned crops) and ``wild``
(FairFace validation portraits scaled to 448 px). The first photo of a run is a warm-up and is
not counted. Needs ``chromium`` and the ``playwright`` package, as the browser tests do.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.load import PHOTO_KINDS, percentile  # noqa: E402
from bench.tables import print_table  # noqa: E402

FINISHED = "#status.status-succeeded, #status.status-failed"


def one_upload(page, base_url: str, photo: Path) -> tuple[float, float, bool]:
    """Seconds from the press to the result page, and to the finished prediction shown."""
    page.goto(base_url + "/")
    page.set_input_files("#upload-form input[type=file]", str(photo))
    pressed = time.perf_counter()
    page.click("#upload-button")
    page.wait_for_url("**/p/*/", wait_until="commit")
    opened = time.perf_counter() - pressed
    page.wait_for_selector(FINISHED, state="attached", timeout=120_000)
    shown = time.perf_counter() - pressed
    succeeded = page.locator("#status.status-succeeded").count() == 1
    return opened, shown, succeeded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=20, help="photos of each kind")
    parser.add_argument("--kinds", default="utkface,wild", help="utkface, wild, comma-separated")
    args = parser.parse_args()
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    if not kinds or any(kind not in PHOTO_KINDS for kind in kinds):
        parser.error(f"--kinds: choose from {sorted(PHOTO_KINDS)}")
    chromium = shutil.which("chromium")
    if chromium is None:
        parser.error("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM_ARGS, DESKTOP
    from tests.support.stack import local_stack

    rows = []
    with tempfile.TemporaryDirectory(prefix="faceage-web-") as scratch:
        photos = {kind: PHOTO_KINDS[kind](Path(scratch))[: args.photos + 1] for kind in kinds}
        with (
            local_stack(extra_env={"FACEAGE_PREPARE_WORKERS": "1"}) as stack,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=CHROMIUM_ARGS
            )
            context = browser.new_context(viewport=DESKTOP, locale="en-GB")
            page = context.new_page()
            for kind in kinds:
                opened, shown, failed = [], [], 0
                for index, photo in enumerate(photos[kind]):
                    to_page, to_ages, succeeded = one_upload(page, stack.base_url, photo)
                    if index == 0:
                        continue  # the warm-up
                    opened.append(1000 * to_page)
                    shown.append(1000 * to_ages)
                    failed += not succeeded
                rows.append(
                    [
                        kind,
                        len(shown),
                        f"{statistics.median(opened):.0f}",
                        f"{statistics.median(shown):.0f}",
                        f"{percentile(shown, 0.95):.0f}",
                        f"{max(shown):.0f}",
                        failed,
                    ]
                )
            browser.close()
    print("one person at a time, headless chromium; ms from pressing upload")
    print_table(
        ["photos", "uploads", "page open p50", "ages shown p50", "p95", "max", "not succeeded"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
