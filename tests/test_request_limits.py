"""A body larger than any request the product accepts is refused from its Content-Length,
before Django reads it (413 in the error shape under /api/, a page elsewhere)."""

from __future__ import annotations

import io

import pytest
from django.test import Client

from faceage_site.request_limits import max_request_bytes

pytestmark = pytest.mark.django_db


class Unreadable(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def readable(self) -> bool:
        return True

    def read(self, size=-1):
        raise AssertionError("the body was read")

    readinto = read


def post(path: str, length: int, **headers):
    client = Client()
    return client.generic(
        "POST",
        path,
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(length),
        **{"wsgi.input": Unreadable()},
        **headers,
    )


def test_an_oversized_api_upload_is_refused_unread(settings):
    settings.FACEAGE_MAX_UPLOAD_BYTES = 1024 * 1024
    settings.FACEAGE_BATCH_MAX_FILES = 2
    assert max_request_bytes() == 3 * 1024 * 1024
    response = post("/api/v1/predictions/", 50 * 1024 * 1024)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "request_too_large" and "50 MB" in error["message"]


def test_an_oversized_form_upload_gets_the_error_page(settings):
    settings.FACEAGE_MAX_UPLOAD_BYTES = 1024 * 1024
    settings.FACEAGE_BATCH_MAX_FILES = 1
    response = post("/", 10 * 1024 * 1024)
    assert response.status_code == 413
    assert "at most 2 MB" in response.content.decode()


def test_a_nonsense_content_length_is_a_400():
    response = post("/api/v1/predictions/", -5)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_content_length"


def test_the_refusal_is_in_the_readers_language(settings):
    settings.FACEAGE_MAX_UPLOAD_BYTES = 1024 * 1024
    settings.FACEAGE_BATCH_MAX_FILES = 1
    chinese = post("/api/v1/predictions/", 10 * 1024 * 1024, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "一次请求最多接受" in chinese.json()["error"]["message"]
    english = post("/api/v1/predictions/", 10 * 1024 * 1024, HTTP_ACCEPT_LANGUAGE="en")
    assert "at most 2 MB" in english.json()["error"]["message"]
