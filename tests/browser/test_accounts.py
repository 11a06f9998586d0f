"""A newcomer in chromium: sign up from the log-in page, land on their history, create an
API token on the token page, and call the API with it (at 1280 and 390 px)."""

from __future__ import annotations

import io
import json
import urllib.request
import uuid

import pytest
from PIL import Image

from predictor.models import Prediction
from tests.browser.conftest import DESKTOP, PHONE, csp_watched_context
from tests.browser.test_flows import assert_fits_a_phone

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
PASSWORD = "browser-sign-up-pass-31"


def multipart_photo() -> tuple[bytes, str]:
    buffer = io.BytesIO()
    Image.new("RGB", (160, 120), (90, 120, 150)).save(buffer, "JPEG")
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="api.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + buffer.getvalue()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_sign_up_then_create_a_token_and_use_the_api(browser, live_server, enqueued, shots):
    with csp_watched_context(browser, viewport=DESKTOP, locale="en-GB") as context:
        page = context.new_page()
        page.goto(live_server.url + "/accounts/login/")
        page.get_by_role("link", name="Sign up").click()
        page.wait_for_url(live_server.url + "/accounts/signup/")
        page.fill("#id_username", "newcomer")
        page.fill("#id_email", "newcomer@example.org")
        page.fill("#id_password1", PASSWORD)
        page.fill("#id_password2", PASSWORD + "x")  # a typo: the error stands by its field
        page.click("button[type=submit]")
        error = page.locator(".field.has-error")
        assert error.count() == 1 and "didn" in error.inner_text()
        assert error.locator("input").get_attribute("id") == "id_password2"
        page.set_viewport_size(PHONE)
        shots.take(page, "40-sign-up-error-phone")
        assert_fits_a_phone(page, "the sign-up page")
        page.set_viewport_size(DESKTOP)
        page.fill("#id_password1", PASSWORD)
        page.fill("#id_password2", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(live_server.url + "/history/")
        assert "Welcome, newcomer" in page.inner_text(".messages")

        page.get_by_role("link", name="API token").click()
        page.click("#create-token")
        key = page.input_value("#token-key")
        assert len(key) == 40
        shots.take(page, "41-token-created")
        page.close()

    body, content_type = multipart_photo()
    upload = urllib.request.Request(
        live_server.url + "/api/v1/predictions/",
        data=body,
        headers={"Authorization": f"Token {key}", "Content-Type": content_type},
        method="POST",
    )
    with urllib.request.urlopen(upload, timeout=30) as answer:
        assert answer.status == 202
        created = json.load(answer)
    prediction = Prediction.objects.get(pk=created["id"])
    assert prediction.owner.username == "newcomer" and enqueued == [created["id"]]
    listing = urllib.request.Request(
        live_server.url + "/api/v1/predictions/", headers={"Authorization": f"Token {key}"}
    )
    with urllib.request.urlopen(listing, timeout=30) as answer:
        assert [row["id"] for row in json.load(answer)["results"]] == [created["id"]]
