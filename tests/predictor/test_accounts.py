"""Accounts without a shell: sign-up, password change and password reset by email."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

pytestmark = pytest.mark.django_db
PASSWORD = "a-fine-long-password-42"


def sign_up(client, **overrides):
    data = {
        "username": "newcomer",
        "email": "new@example.org",
        "password1": PASSWORD,
        "password2": PASSWORD,
        **overrides,
    }
    return client.post("/accounts/signup/", data)


def test_sign_up_logs_in_and_lands_on_the_history(client):
    assert 'href="/accounts/signup/"' in client.get("/accounts/login/").content.decode()
    response = sign_up(client)
    assert response.status_code == 302 and response["Location"] == "/history/"
    user = get_user_model().objects.get(username="newcomer")
    assert user.email == "new@example.org" and user.check_password(PASSWORD)
    page = client.get("/history/").content.decode()
    assert "Welcome, newcomer: your account is ready." in page
    assert "Log out newcomer" in page


def test_sign_up_errors_stand_next_to_their_fields(client, user):
    user.email = "taken@example.org"
    user.save()
    response = sign_up(client, email="TAKEN@example.org", password2="something-else-1")
    assert response.status_code == 200
    html = response.content.decode()
    # Each error sits in its own field's block, above the input it is about.
    email_block = html[html.index('<label for="id_email">') : html.index('id="id_email"')]
    assert "An account already uses this address" in email_block
    password_block = html[
        html.index('<label for="id_password2">') : html.index('id="id_password2"')
    ]
    assert "password fields didn" in password_block
    assert 'aria-invalid="true"' in html
    assert not get_user_model().objects.filter(username="newcomer").exists()


def test_password_change_needs_a_login_and_works(client, user):
    response = client.get("/accounts/password/change/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client.force_login(user)
    response = client.post(
        "/accounts/password/change/",
        {"old_password": "correct-horse-9", "new_password1": PASSWORD, "new_password2": PASSWORD},
    )
    assert response.status_code == 302 and response["Location"].endswith("/done/")
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_a_forgotten_password_is_reset_by_email(client, user):
    user.email = "alice@example.org"
    user.save()
    response = client.post("/accounts/password/reset/", {"email": "alice@example.org"})
    assert response.status_code == 302 and response["Location"].endswith("/sent/")
    (message,) = mail.outbox
    assert message.to == ["alice@example.org"] and "faceage" in message.subject
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/)", message.body).group(1)
    form = client.get(link, follow=True)  # Django swaps the token for a session marker
    assert form.status_code == 200 and 'name="new_password1"' in form.content.decode()
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": PASSWORD, "new_password2": PASSWORD}
    )
    assert done.status_code == 302 and done["Location"] == "/accounts/password/reset/complete/"
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    # An unknown address gets the same answer, and no email: nobody learns who has an account.
    mail.outbox.clear()
    response = client.post("/accounts/password/reset/", {"email": "nobody@example.org"})
    assert response.status_code == 302 and not mail.outbox
