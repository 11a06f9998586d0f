"""The API token page: create, see once, replace and revoke your own token (issue 11, item 5)."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests import images

pytestmark = pytest.mark.django_db

URL = "/accounts/token/"


def works(key: str, enqueued) -> bool:
    """Whether an upload with this token is accepted (a CSRF-checking client, as scripts are)."""
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    photo = SimpleUploadedFile("a.jpg", images.encode(Image.new("RGB", (64, 64), "teal")))
    return (
        client.post("/api/v1/predictions/", {"image": photo}, format="multipart").status_code == 202
    )


def shown_key(page: str) -> str | None:
    found = re.search(r'id="token-key"[^>]*value="([0-9a-f]{40})"', page)
    return found.group(1) if found else None


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_token_is_shown_once_replaced_and_revoked(client, user, enqueued):
    client.force_login(user)
    assert "You have no API token yet." in client.get(URL).content.decode()

    created = client.post(URL, {"action": "create"})
    assert "no-store" in created["Cache-Control"] or "no-cache" in created["Cache-Control"]
    first = shown_key(created.content.decode())
    assert first == Token.objects.get(user=user).key
    assert works(first, enqueued)
    again = client.get(URL).content.decode()
    assert shown_key(again) is None and first not in again  # shown once only
    assert "You have a token" in again

    replaced = shown_key(client.post(URL, {"action": "create"}).content.decode())
    assert replaced and replaced != first
    assert not works(first, enqueued) and works(replaced, enqueued)

    revoked = client.post(URL, {"action": "revoke"}, follow=True)
    assert "no longer works" in revoked.content.decode()
    assert not Token.objects.filter(user=user).exists()
    assert not works(replaced, enqueued)


def test_nobody_sees_or_revokes_another_persons_token(client, user, other_user, enqueued):
    theirs = Token.objects.create(user=other_user)
    client.force_login(user)
    page = client.get(URL).content.decode()
    assert theirs.key not in page and "You have no API token yet." in page
    client.post(URL, {"action": "revoke"})
    assert Token.objects.filter(pk=theirs.pk).exists()
