"""Browser tests: Playwright drives Debian's ``chromium`` against a real running faceage.

Playwright never downloads a browser here: the system ``chromium`` (``shutil.which``) is
passed as ``executable_path``, headless, with the flags that keep it off the network. Where
``chromium`` or the ``playwright`` package is absent the tests skip with the reason; under
``FACEAGE_REQUIRE_SERVICES=1`` (set by ``.ci/run``) that absence is an error instead.

Screenshots go to ``$FACEAGE_ARTIFACTS_DIR/screenshots`` (default ``var/artifacts``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.datasets import require_dataset
from tests.services import _skip_or_fail
from tests.support.stack import BASE_DIR, LocalStack, local_stack, stop_process_group

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# Keep chromium off the network and quiet: no sandbox (root, containers), no GPU, no
# QUIC, no first-run, background, component-update, sync or default-app traffic, and no
# host resolves but localhost and 127.0.0.1, where the stacks and live servers listen.
CHROMIUM_ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
]


def artifacts_dir() -> Path:
    root = Path(os.environ.get("FACEAGE_ARTIFACTS_DIR", BASE_DIR / "var" / "artifacts"))
    folder = root / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        _skip_or_fail("Debian's chromium is not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _skip_or_fail("the playwright package is not installed (pip install -e '.[dev]')")
    return path


@pytest.fixture(scope="module")
def browser(chromium_path) -> Iterator:
    from playwright.sync_api import sync_playwright

    # The sync API runs an event loop in this thread; Django (pytest-django's fixtures) must
    # still be allowed to touch its settings and database here.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # launch() gives chromium a fresh temporary user-data-dir (profile), removed on close.
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def stack(chromium_path) -> Iterator[LocalStack]:
    """One real faceage per test module: gunicorn, Celery workers, embedded Redis, SQLite.

    Asks for ``chromium_path`` first so that a missing browser skips before processes start.
    """
    require_dataset("utkface")  # skip before starting processes when the faces are absent
    with local_stack(extra_env={"FACEAGE_PREPARE_WORKERS": "1"}) as running:
        yield running


@pytest.fixture(scope="module")
def training_worker(stack: LocalStack) -> Iterator[subprocess.Popen]:
    """A Celery worker on the ``training`` queue, next to the stack's inference worker."""
    worker = stack.start_training_worker(stack.workdir / "training-worker.log")
    try:
        yield worker
    finally:
        stop_process_group(worker)


class Shots:
    """Full-page screenshots named ``NN-what.png`` in the artifacts folder."""

    def __init__(self) -> None:
        self.folder = artifacts_dir()
        self.saved: list[Path] = []

    def take(self, page, name: str) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
        self.saved.append(path)
        return path


@pytest.fixture(scope="module")
def shots() -> Shots:
    return Shots()


# What reaches past the right edge of the window (at most 5 of each): the innermost elements,
# and runs of text too long to wrap (a file name in a sentence overflows its element's box).
WIDE_ELEMENTS = """() => {
  const past = (rect) => rect.right > window.innerWidth + 1;
  const elements = [...document.querySelectorAll("body *")]
    .filter(e => past(e.getBoundingClientRect()))
    .filter(e => ![...e.children].some(c => past(c.getBoundingClientRect())))
    .slice(0, 5)
    .map(e => `${e.tagName.toLowerCase()}.${e.className.baseVal ?? e.className}`
              + ` ${Math.round(e.getBoundingClientRect().width)}px`);
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node && texts.length < 5; node = walker.nextNode()) {
    const range = document.createRange();
    range.selectNodeContents(node);
    if (past(range.getBoundingClientRect())) {
      const where = node.parentElement.tagName.toLowerCase();
      texts.push(`text in ${where}: ${node.textContent.slice(0, 60)}`);
    }
  }
  return [...elements, ...texts];
}"""


def wait_for_js(page, expression: str, timeout_ms: int = 60_000) -> None:
    """Wait until ``expression`` is true in the page. Playwright's ``wait_for_function``
    compiles its predicate inside the page, which the Content-Security-Policy forbids (no
    eval); ``evaluate`` goes through the DevTools protocol, which the policy does not
    govern, so this polls with it."""
    import time

    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout_ms} ms: {expression}")
        page.wait_for_timeout(100)


@contextlib.contextmanager
def csp_watched_context(
    browser, timeout_ms: int = 60_000, expected: tuple[str, ...] = (), **options
) -> Iterator:
    """A browser context that fails the test when a page breaks the Content-Security-Policy:
    chromium reports each script, handler or resource it refused on the console. A refusal
    naming one of ``expected`` is one the policy is there for (a third party's file)."""
    created = browser.new_context(**options)
    created.set_default_timeout(timeout_ms)
    refusals: list[str] = []

    def watch(message) -> None:
        text = message.text
        if "Content Security Policy" in text and not any(item in text for item in expected):
            refusals.append(text)

    created.on("console", watch)
    # An uncaught error in one of the site's scripts fails the test as well.
    errors: list[str] = []
    created.on("weberror", lambda error: errors.append(str(error.error)))
    try:
        yield created
    finally:
        created.close()
    assert not refusals, f"the Content-Security-Policy refused: {refusals}"
    assert not errors, f"a page's script failed: {errors}"


@pytest.fixture
def context(browser):
    """A fresh browser context (own cookies and session) at desktop size."""
    with csp_watched_context(browser, viewport=DESKTOP, locale="en-GB") as created:
        yield created
