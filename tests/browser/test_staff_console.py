"""The staff console in chromium: a candidate is promoted with the Promote button (after the
page asks), then the Roll back button brings the earlier model back; at 1280 and 390 px."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from predictor.models import ModelVersion
from tests.browser.conftest import DESKTOP, PHONE, csp_watched_context
from tests.browser.test_flows import assert_fits_a_phone

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_staff_promote_a_candidate_and_roll_back(browser, live_server, shots, django_user_model):
    staff = django_user_model.objects.create_superuser("console", password="console-pass-77")
    before = ModelVersion.active()
    ModelVersion.objects.create(
        name="candidate-7",
        artifact="models/candidate-7.keras",
        metrics={
            "dataset": "utk",
            "mae": 4.9,
            "cs5": 0.62,
            "mae_children_0_12": 2.4,
            "mae_by_decade": {"0-9": {"mae": 2.4, "count": 9}, "30-39": {"mae": 5.5, "count": 20}},
            "gate": {"active_model": before.name, "regressions": []},
        },
    )
    client = Client()
    client.force_login(staff)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    with csp_watched_context(browser, viewport=DESKTOP, locale="en-GB") as context:
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
        )
        page = context.new_page()
        questions: list[str] = []

        def answer(dialog) -> None:
            questions.append(dialog.message)
            dialog.accept()

        page.on("dialog", answer)
        page.goto(live_server.url + "/")
        page.get_by_role("link", name="Staff", exact=True).click()
        page.wait_for_url(live_server.url + "/staff/")
        assert page.locator(".active-row th").inner_text().startswith(before.name)
        row = page.locator("tr", has_text="candidate-7")
        assert "4.90" in row.inner_text() and "62%" in row.inner_text()
        assert row.locator("svg.decade-chart rect").count() == 2
        shots.take(page, "30-staff-console")
        page.set_viewport_size(PHONE)
        shots.take(page, "31-staff-console-phone")
        assert_fits_a_phone(page, "the staff console")
        page.set_viewport_size(DESKTOP)

        row.get_by_role("button", name="Promote candidate-7").click()
        page.wait_for_selector(".messages li.success")
        assert "candidate-7 is now active." in page.inner_text(".messages")
        assert questions and "candidate-7" in questions[-1]
        assert ModelVersion.active().name == "candidate-7"
        assert page.locator(".active-row th").inner_text().startswith("candidate-7")
        shots.take(page, "32-staff-console-promoted")

        page.get_by_role("button", name=f"Roll back to {before.name}").click()
        page.wait_for_selector(".messages li.success")
        assert f"Rolled back: {before.name} is active again." in page.inner_text(".messages")
        assert ModelVersion.active() == before
        page.close()
