"""One user's heavy batch does not hold up another user's photo, on real processes
(issue 13, item 1)."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime

import pytest
from PIL import Image

from tests.datasets import sample_utkface
from tests.e2e.stack import browser_session, wait_terminal
from tests.support.stack import local_stack

pytestmark = pytest.mark.integration

HEAVY = 8


def heavy_zip() -> bytes:
    """Eight flat 6000x6000 PNGs: about 100 KB each, 36 MP each to decode."""
    png = io.BytesIO()
    Image.new("RGB", (6000, 6000), (120, 130, 140)).save(png, format="PNG")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for n in range(HEAVY):
            bundle.writestr(f"heavy-{n}.png", png.getvalue())
    return archive.getvalue()


def finished(body: dict) -> datetime:
    return datetime.fromisoformat(body["finished_at"].replace("Z", "+00:00"))


def test_a_small_photo_is_not_queued_behind_another_users_heavy_batch():
    """User A's zip of eight 36 MP photos is queued, then user B uploads one face: B's photo
    runs after at most the photo the worker has in hand and the one whose turn came before
    B's arrived, not after all eight, and each of A's photos ends on its own."""
    face = sample_utkface(1, seed=71)[0]
    with local_stack(beat=True) as stack:
        user_a, user_b = browser_session(stack.base_url), browser_session(stack.base_url)
        warm = user_b.post(
            f"{stack.base_url}/api/v1/predictions/",
            files={"image": (face.name, face.read_bytes())},
            timeout=60,
        )
        wait_terminal(user_b, warm.headers["Location"])  # the worker has loaded its network

        batch = user_a.post(
            f"{stack.base_url}/api/v1/predictions/",
            files={"archive": ("heavy.zip", heavy_zip(), "application/zip")},
            timeout=300,
        )
        assert batch.status_code == 202, batch.text
        a_urls = [item["url"] for item in batch.json()["predictions"]]
        assert len(a_urls) == HEAVY
        small = user_b.post(
            f"{stack.base_url}/api/v1/predictions/",
            files={"image": (face.name, face.read_bytes())},
            timeout=60,
        )
        assert small.status_code == 202, small.text

        b_body = wait_terminal(user_b, small.headers["Location"], timeout=300)
        a_bodies = [wait_terminal(user_a, url, timeout=600) for url in a_urls]

    assert b_body["status"] == "succeeded", b_body["error"]
    assert len(b_body["faces"]) == 1
    # Each of A's photos ended on its own: a working side of 4096 px, no time limit struck.
    assert [body["status"] for body in a_bodies] == ["succeeded"] * HEAVY, a_bodies
    assert {(body["width"], body["height"]) for body in a_bodies} == {(4096, 4096)}
    ahead_of_b = sum(finished(body) < finished(b_body) for body in a_bodies)
    assert ahead_of_b <= 2, f"{ahead_of_b} of A's {HEAVY} photos ran before B's"
