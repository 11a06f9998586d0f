"""Logins are rate-limited (django-axes): repeated wrong passwords lock that name out from
that address, with a page that says what happened (429); others are not affected."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def attempt(client: Client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(
        "/accounts/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


def test_wrong_passwords_lock_the_name_out_from_that_address(user, settings):
    settings.AXES_FAILURE_LIMIT = 5
    client = Client()
    for _ in range(4):
        assert attempt(client, "alice", "wrong").status_code == 200  # the form, with its error
    locked = attempt(client, "alice", "wrong")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    # Now even the right password is refused, from that address...
    assert attempt(client, "alice", "correct-horse-9").status_code == 429
    # ...but not from another one, nor for another name from the same one.
    assert attempt(Client(), "alice", "correct-horse-9", "10.0.0.2").status_code == 302
    assert attempt(Client(), "bob", "wrong").status_code == 200


def test_the_admin_login_is_locked_out_too(admin_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    for _ in range(3):
        client.post("/admin/login/", {"username": "admin", "password": "nope"})
    response = client.post("/admin/login/", {"username": "admin", "password": "password"})
    assert response.status_code == 429


def test_a_success_resets_the_count(user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    for _ in range(2):
        attempt(client, "alice", "wrong")
    assert attempt(client, "alice", "correct-horse-9").status_code == 302
    client.logout()
    for _ in range(2):
        assert attempt(client, "alice", "wrong").status_code == 200


def test_the_lockout_page_is_in_chinese_for_a_chinese_reader(user, settings):
    settings.AXES_FAILURE_LIMIT = 1
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    response = attempt(client, "alice", "wrong")
    assert response.status_code == 429
    assert "Too many failed logins" not in response.content.decode()


def test_what_a_login_records_fits_its_columns_on_any_database(user, settings):
    """A NUL or an over-long value in a login's username or headers: PostgreSQL refuses it
    (a 500 there, where SQLite stores it), so it is stored as its column can hold it, and
    the attempt still counts towards the lockout."""
    from axes.models import AccessAttempt, AccessLog

    settings.AXES_FAILURE_LIMIT = 2
    headers = {"HTTP_USER_AGENT": "agent\x00" + "a" * 300, "HTTP_ACCEPT": "text/html\x00"}
    long_name = "x" * 300
    client = Client()
    assert (
        client.post(
            "/accounts/login/", {"username": long_name, "password": "wrong"}, **headers
        ).status_code
        == 200
    )
    assert attempt(client, "alice", "wrong").status_code == 200
    (long_one,) = AccessAttempt.objects.filter(username__startswith="x")
    assert long_one.username == "x" * 255
    assert long_one.user_agent == ("agent\ufffd" + "a" * 300)[:255]
    assert long_one.http_accept == "text/html\ufffd"
    # The long name's second failure locks it out, as any name's would.
    assert (
        client.post(
            "/accounts/login/", {"username": long_name, "password": "wrong"}, **headers
        ).status_code
        == 429
    )
    # A log-in with such headers is logged the same way.
    assert (
        client.post(
            "/accounts/login/", {"username": "alice", "password": "correct-horse-9"}, **headers
        ).status_code
        == 302
    )
    assert AccessLog.objects.get(username="alice").user_agent.startswith("agent\ufffd")
