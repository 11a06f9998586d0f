"""The browser the tests drive cannot reach anything but this machine."""

from __future__ import annotations

import pytest


def test_no_host_name_resolves_so_nothing_leaves_the_machine(context):
    from playwright.sync_api import Error as PlaywrightError

    page = context.new_page()
    try:
        with pytest.raises(PlaywrightError, match="ERR_NAME_NOT_RESOLVED"):
            page.goto("http://example.com/", timeout=10_000)
    finally:
        page.close()
