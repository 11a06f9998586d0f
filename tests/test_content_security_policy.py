"""Every page is served with a Content-Security-Policy that allows scripts from the site's own
files only, and no page needs more: no inline script, no inline event handler (issue 13,
item 12). The walk is the i18n test's, which visits every URL pattern, the admin's included.
The browser tests check the other side: chromium refuses nothing on the pages they drive."""

from __future__ import annotations

from html.parser import HTMLParser

from tests.test_i18n import fetch, url_patterns, visits_for, world  # noqa: F401 (a fixture)


class InlineScripts(HTMLParser):
    """Collects script elements without ``src`` (other than JSON data blocks, which are never
    run) and ``on…`` event-handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        data_block = (names.get("type") or "").lower() in (
            "application/json",
            "application/ld+json",
        )
        if tag == "script" and "src" not in names and not data_block:
            self.found.append("<script> without src")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}={value!r}>")
            if name in ("href", "src", "action") and (value or "").lower().startswith(
                "javascript:"
            ):
                self.found.append(f"<{tag} {name}={value!r}>")


def script_sources(policy: str) -> list[str]:
    for directive in policy.split(";"):
        parts = directive.split()
        if parts and parts[0] == "script-src":
            return parts[1:]
    return []


def test_every_page_has_the_policy_and_nothing_inline_that_it_would_refuse(request, monkeypatch):
    import training.export.views

    walk = request.getfixturevalue("world")  # the i18n walk's users, rows and files
    monkeypatch.setattr(training.export.views, "request_export", lambda version, key=None: "queued")
    problems: list[str] = []
    pages = 0
    for route, name in url_patterns():
        for visit in visits_for(route, name, walk) or []:
            response = fetch(visit, walk, "en")
            if not response.get("Content-Type", "").startswith("text/html"):
                continue
            label = f"{visit.method.upper()} {visit.path} as {visit.role}"
            policy = response.get("Content-Security-Policy", "")
            if script_sources(policy) != ["'self'"]:
                problems.append(f"{label}: script-src is {script_sources(policy)}")
            if "frame-ancestors 'none'" not in policy or "object-src 'none'" not in policy:
                problems.append(f"{label}: policy {policy!r}")
            parser = InlineScripts()
            parser.feed(response.content.decode())
            problems.extend(f"{label}: {found}" for found in parser.found)
            pages += 1
    assert pages > 30
    assert not problems, "\n".join(problems)


def test_swagger_ui_loads_its_start_up_script_as_a_file(client):
    page = client.get("/api/docs/")
    parser = InlineScripts()
    parser.feed(page.content.decode())
    assert parser.found == []
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content
