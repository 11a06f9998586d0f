"""Every page and endpoint without a path parameter answers OPTIONS and HEAD without a 5xx,
for a visitor and for staff: DRF answers OPTIONS itself, through the view's own renderers,
and a view that renders only a template had none for it (the API docs page was a 500)."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver


def plain_routes(patterns=None, prefix="") -> list[str]:
    """The paths of every route that takes no value from the URL."""
    found = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = str(pattern.pattern)
        if route.startswith("^"):  # a regex (DRF's router): only one that matches one path
            route = route.removeprefix("^").removesuffix("$")
            if set(route) & set("()[]{}\\?*+|.$"):
                continue
        if "<" in route:
            continue
        if isinstance(pattern, URLResolver):
            found += plain_routes(pattern.url_patterns, prefix + route)
        elif isinstance(pattern, URLPattern):
            found.append("/" + prefix + route)
    return found


ROUTES = plain_routes()


def test_the_walk_finds_the_sites_pages():
    assert {"/", "/history/", "/api/docs/", "/api/v1/predictions/", "/staff/"} <= set(ROUTES)


@pytest.mark.parametrize("who", ["visitor", "staff"])
def test_options_and_head_are_never_a_server_error(who, django_user_model, enqueued):
    from django.test import Client

    client = Client(raise_request_exception=False)
    if who == "staff":
        staff = django_user_model.objects.create_user("staff", password="x", is_staff=True)
        client.force_login(staff)
    answers = {
        (method, path): getattr(client, method)(path).status_code
        for path in ROUTES
        for method in ("options", "head")
    }
    assert not {key: status for key, status in answers.items() if status >= 500}
