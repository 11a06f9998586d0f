"""Accounts without a shell: sign-up, password change and password reset by email."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

pytestmark = pytest.mark.django_db
PASSWORD = "a-fine-long-password-42"


def sign_up(client, environ=None, **overrides):
    data = {
        "username": "newcomer",
        "email": "new@example.org",
        "password1": PASSWORD,
        "password2": PASSWORD,
        **overrides,
    }
    return client.post("/accounts/signup/", data, **(environ or {}))


def test_sign_up_logs_in_and_lands_on_the_history(client):
    assert 'href="/accounts/signup/"' in client.get("/accounts/login/").content.decode()
    response = sign_up(client)
    assert response.status_code == 302 and response["Location"] == "/history/"
    user = get_user_model().objects.get(username="newcomer")
    assert user.check_password(PASSWORD)
    page = client.get("/history/").content.decode()
    assert "Welcome, newcomer: your account is ready." in page
    assert "We sent a link to new@example.org" in page
    assert "Log out newcomer" in page

    # The address is the account's only once its owner opens the link mailed to it.
    assert user.email == ""
    (message,) = mail.outbox
    assert message.to == ["new@example.org"] and "Confirm" in message.subject
    link = confirmation_link(message)
    page = client.get(link)  # a mail scanner that fetches the link confirms nothing
    assert page.status_code == 200 and "new@example.org" in page.content.decode()
    user.refresh_from_db()
    assert user.email == ""
    response = client.post(link, follow=True)
    assert "new@example.org is confirmed" in response.content.decode()
    user.refresh_from_db()
    assert user.email == "new@example.org"
    # A damaged link is a 400 that says what to do.
    damaged = client.get(link[:-3] + "xx/")
    assert damaged.status_code == 400 and "damaged" in damaged.content.decode()


def confirmation_link(message) -> str:
    return re.search(r"http://testserver(/accounts/email/confirm/\S+/)", message.body).group(1)


def test_sign_up_says_nothing_about_an_address_in_use_and_mails_its_owner(client, user):
    user.email = "alice@example.org"
    user.save()
    response = sign_up(client, email="ALICE@example.org")
    # The same answer as for a new address: the account is made, the page says a link went.
    assert response.status_code == 302 and response["Location"] == "/history/"
    assert "We sent a link to ALICE@example.org" in client.get("/history/").content.decode()
    newcomer = get_user_model().objects.get(username="newcomer")
    assert newcomer.email == ""
    # The address's owner is told, and no link that could give it to the new account is sent.
    (message,) = mail.outbox
    assert message.to == ["ALICE@example.org"]
    assert "It already belongs to your account alice" in message.body
    assert "/accounts/email/confirm/" not in message.body
    # A password reset for the address reaches alice's account only.
    mail.outbox.clear()
    client.post("/accounts/password/reset/", {"email": "alice@example.org"})
    (reset,) = mail.outbox
    assert "account alice " in reset.body


def test_the_first_to_confirm_an_address_keeps_it(client):
    sign_up(client, username="first")
    client.logout()
    sign_up(client, username="second")
    first_link, second_link = (confirmation_link(message) for message in mail.outbox)
    client.post(second_link)
    answer = client.post(first_link, follow=True).content.decode()
    assert "belongs to another account already" in answer
    emails = dict(get_user_model().objects.values_list("username", "email"))
    assert emails == {"first": "", "second": "new@example.org"}


def test_an_unconfirmed_address_gets_no_reset_email(client):
    sign_up(client)
    client.logout()
    mail.outbox.clear()
    response = client.post("/accounts/password/reset/", {"email": "new@example.org"})
    assert response.status_code == 302 and not mail.outbox


def test_sign_up_errors_stand_next_to_their_fields(client, user):
    response = sign_up(client, email="not an address", password2="something-else-1")
    assert response.status_code == 200
    html = response.content.decode()
    # Each error sits in its own field's block, above the input it is about.
    email_block = html[html.index('<label for="id_email">') : html.index('id="id_email"')]
    assert "Enter a valid email address" in email_block
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


def test_sign_up_and_password_reset_are_limited_per_address(client, settings):
    settings.FACEAGE_SIGNUP_RATE = "2/hour"
    settings.FACEAGE_PASSWORD_RESET_RATE = "2/hour"
    for number in range(2):
        assert sign_up(client, username=f"n{number}").status_code == 302
        client.logout()
    refused = sign_up(client, username="n2")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "Too many attempts" in refused.content.decode()
    assert not get_user_model().objects.filter(username="n2").exists()
    # Another address is not held up by this one; reading the page never counts.
    assert sign_up(client, {"REMOTE_ADDR": "10.0.0.9"}, username="n3").status_code == 302
    assert client.get("/accounts/signup/").status_code in (200, 302)

    for _ in range(2):
        assert (
            client.post("/accounts/password/reset/", {"email": "x@example.org"}).status_code == 302
        )
    assert client.post("/accounts/password/reset/", {"email": "x@example.org"}).status_code == 429


def test_one_address_gets_a_few_emails_however_many_ask(client, user, settings):
    settings.FACEAGE_EMAILS_PER_ADDRESS = "2/hour"
    user.email = "alice@example.org"
    user.save()
    for number in range(4):  # from four places, so the per-address page limit is not hit
        response = client.post(
            "/accounts/password/reset/",
            {"email": "alice@example.org"},
            REMOTE_ADDR=f"10.0.1.{number}",
        )
        assert response.status_code == 302  # the same answer each time
    assert len(mail.outbox) == 2


def test_a_new_password_revokes_the_api_token(client, user):
    from rest_framework.authtoken.models import Token

    Token.objects.create(user=user)
    client.force_login(user)  # logging in saves last_login: the token stays
    assert Token.objects.filter(user=user).exists()
    client.post(
        "/accounts/password/change/",
        {"old_password": "correct-horse-9", "new_password1": PASSWORD, "new_password2": PASSWORD},
    )
    assert not Token.objects.filter(user=user).exists()
    # The same when an administrator (or a reset) sets it.
    Token.objects.create(user=user)
    user.refresh_from_db()
    user.set_password("another-long-password-7")
    user.save()
    assert not Token.objects.filter(user=user).exists()


def test_a_rehash_at_log_in_is_not_a_new_password(user):
    """Django re-hashes a password at log-in when its hasher is strengthened (each feature
    release raises the iterations); the password is the same, so the token stays."""
    from rest_framework.authtoken.models import Token

    Token.objects.create(user=user)
    from django.contrib.auth.hashers import make_password

    # What check_password's setter does: a new hash of the same password, _password None.
    user.password = make_password("correct-horse-9")
    user.save(update_fields=["password"])
    assert Token.objects.filter(user=user).exists()
    user.set_password("correct-horse-9")  # the same text, but set: a new password
    user.save(update_fields=["password"])
    assert not Token.objects.filter(user=user).exists()


def test_sign_ups_with_an_address_cannot_use_up_its_password_resets(client, user, settings):
    settings.FACEAGE_EMAILS_PER_ADDRESS = "2/hour"
    user.email = "alice@example.org"
    user.save()
    for number in range(3):  # someone signs up with alice's address, again and again
        sign_up(
            client,
            {"REMOTE_ADDR": f"10.0.2.{number}"},
            username=f"squatter{number}",
            email="alice@example.org",
        )
        client.logout()
    assert len(mail.outbox) == 2  # the notices stop at the limit
    mail.outbox.clear()
    client.post("/accounts/password/reset/", {"email": "alice@example.org"})
    assert len(mail.outbox) == 1 and "account alice " in mail.outbox[0].body


def test_a_mail_server_that_fails_does_not_fail_the_sign_up(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr("predictor.accounts.send_mail", refuse)
    response = sign_up(client)
    assert response.status_code == 302 and response["Location"] == "/history/"
    assert get_user_model().objects.filter(username="newcomer").exists()


@pytest.mark.parametrize(
    "payload",
    [
        [1, 2],
        "str",
        {"user": "\x00", "email": "e@x"},
        {"user": [1], "email": "e@x"},
        {"user": True, "email": "e@x"},
        {"user": "PK", "email": "e\x00@x"},
    ],
)
def test_a_signed_link_of_another_shape_is_a_damaged_link(client, user, payload):
    """Only the site signs a link, but what it reads back is checked as any value from
    outside: a wrong shape was a 500, and a NUL in the address one on PostgreSQL."""
    from django.core import signing

    from predictor.accounts import _SALT, read_confirmation

    if isinstance(payload, dict) and payload["user"] == "PK":
        payload = {**payload, "user": user.pk}
    token = signing.dumps(payload, salt=_SALT, compress=True)
    assert read_confirmation(token) is None
    assert client.get(f"/accounts/email/confirm/{token}/").status_code == 400
