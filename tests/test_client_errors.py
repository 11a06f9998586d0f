"""Requests the client got wrong are logged as warnings without a traceback, not as errors."""

from __future__ import annotations

import logging

import pytest

pytestmark = pytest.mark.django_db


def test_a_bad_host_header_is_a_one_line_warning(client, caplog):
    with caplog.at_level(logging.INFO):
        response = client.get("/", HTTP_HOST="attacker.example")
    assert response.status_code == 400
    [record] = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert record.levelno == logging.WARNING and "attacker.example" in record.getMessage()
    assert record.exc_info is None and record.exc_text is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_errors_of_ours_are_still_errors():
    from faceage_site.client_errors import ClientErrorAsWarning

    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "boom", (), None)
    record.status_code = 500
    assert ClientErrorAsWarning().filter(record) and record.levelno == logging.ERROR
