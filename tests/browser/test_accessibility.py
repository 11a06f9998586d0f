"""Accessibility, measured: axe-core on every page the i18n walk visits, in English and in
Simplified Chinese, at 1280 px and at 390 px, in Debian's chromium.

axe-core's ``axe.min.js`` comes from the npm registry (``make test`` installs it under
``.cache/axe``; no CDN, nothing fetched at run time). It is injected as an init script through
the DevTools protocol, which the Content-Security-Policy does not govern, so the pages are
checked exactly as served. A violation of impact "serious" or "critical" fails the test; the
count per page, of every impact, is written to ``$FACEAGE_ARTIFACTS_DIR/axe-report.json``.
The site's own pages must also fit a 390 px screen in both languages (no sideways scrolling),
and each is saved as a screenshot, ``walk-<page>-<language>-<width>-<role>.png``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    WIDE_ELEMENTS,
    artifacts_dir,
    csp_watched_context,
)
from tests.services import _skip_or_fail
from tests.support.stack import BASE_DIR
from tests.test_i18n import (  # noqa: F401 (world is a fixture)
    ANONYMOUS,
    LANGUAGES,
    STAFF,
    USER,
    url_patterns,
    visits_for,
    world,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

AXE = BASE_DIR / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")

RUN_AXE = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
    count: v.nodes.length,
  }));
}"""


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        _skip_or_fail(f"axe-core is not installed at {AXE} (make test installs it with npm)")
    return AXE.read_text(encoding="utf-8")


def pages_to_check(walk) -> list[tuple[str, str]]:
    """(role, path) of every page the i18n walk reads with a GET and expects to be there."""
    seen: dict[tuple[str, str], None] = {}
    for route, name in url_patterns():
        for visit in visits_for(route, name, walk) or []:
            if visit.method != "get" or visit.login_redirect or 200 not in visit.statuses:
                continue
            if visit.path.endswith((".jpg", ".svg", ".csv", ".json", ".md", "/jsi18n/")):
                continue
            if visit.path in ("/healthz", "/api/schema/") or "/download/" in visit.path:
                continue
            seen[(visit.role, visit.path)] = None
    return list(seen)


def own_page(path: str) -> bool:
    """A page of this site's own templates (not the admin's, nor the API documentation's)."""
    return not path.startswith(("/admin/", "/api/"))


def session_cookie(role: str, walk) -> list[dict]:
    if role == ANONYMOUS:
        return []
    client = Client()
    client.force_login(walk.user if role == USER else walk.staff)
    return [{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies["sessionid"].value}]


def test_every_page_has_no_serious_or_critical_violation(
    browser, live_server, axe_source, request, shots
):
    walk = request.getfixturevalue("world")  # the i18n walk's users, rows and files
    pages = pages_to_check(walk)
    assert len(pages) > 40, pages
    report: dict[str, dict] = {}
    blocking: list[str] = []
    not_pages: set[str] = set()
    too_wide: list[str] = []
    for language in LANGUAGES:
        for role in (ANONYMOUS, USER, STAFF):
            paths = [path for who, path in pages if who == role]
            if not paths:
                continue
            cookies = [
                *session_cookie(role, walk),
                {"name": settings.LANGUAGE_COOKIE_NAME, "value": language},
            ]
            with csp_watched_context(
                browser,
                viewport=DESKTOP,
                locale="en-GB",
                expected=("https://cdn.redoc.ly/",),
            ) as context:
                context.add_cookies([{**cookie, "url": live_server.url} for cookie in cookies])
                context.add_init_script(script=axe_source)
                page = context.new_page()
                for path in paths:
                    for width, viewport in (("1280", DESKTOP), ("390", PHONE)):
                        page.set_viewport_size(viewport)
                        response = page.goto(live_server.url + path, wait_until="load")
                        key = f"{path} [{language}, {width} px, {role}]"
                        kind = response.headers.get("content-type", "")
                        if not kind.startswith("text/html"):
                            not_pages.add(f"{path} ({kind})")  # the API's JSON, say
                            continue
                        page.wait_for_timeout(300)  # scripts that fill the page (result, ReDoc)
                        found = page.evaluate(RUN_AXE)
                        if own_page(path):
                            if width == "390":
                                overflow = page.evaluate(
                                    "document.documentElement.scrollWidth - window.innerWidth"
                                )
                                if overflow > 1:
                                    too_wide.append(
                                        f"{key}: {overflow} px wider than the phone: "
                                        f"{page.evaluate(WIDE_ELEMENTS)}"
                                    )
                            name = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"
                            shots.take(page, f"walk-{name}-{language}-{width}-{role}")
                        report[key] = {
                            impact: sum(v["count"] for v in found if v["impact"] == impact)
                            for impact in ("minor", "moderate", "serious", "critical")
                        }
                        report[key]["rules"] = sorted(
                            f"{v['impact']} {v['id']}: {v['targets']}" for v in found
                        )
                        blocking.extend(
                            f"{key}: {v['impact']} {v['id']} ({v['help']}) at {v['targets']}"
                            for v in found
                            if v["impact"] in BLOCKING
                        )
                page.close()
    Path(artifacts_dir().parent / "axe-report.json").write_text(
        json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8"
    )
    assert len(report) > 4 * 40 and len(report) + 4 * len(not_pages) == 4 * len(pages)
    assert not blocking, f"{len(blocking)} serious or critical violations:\n" + "\n".join(blocking)
    # Every page of the site's own fits a 390 px phone in both languages, with no sideways
    # scroll (a Chinese page was 413 px wide once).
    assert not too_wide, "\n".join(too_wide)
