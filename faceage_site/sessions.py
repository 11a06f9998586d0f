"""The session engine: Django's database sessions, keyed only by keys Django could have made.

A session key comes from the browser's cookie. Django checks only its length, so a cookie of
``"abcdefgh\\000"`` (a quoted cookie's octal escape is a NUL) reached the database, and
PostgreSQL refuses NUL in text: every page answered 500 to that browser. A key Django makes
is 32 of ``VALID_KEY_CHARS`` (lowercase letters and digits); a key of any other character is
no session, as an unknown key always was.
"""

from __future__ import annotations

from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore


class SessionStore(DatabaseSessionStore):
    def _validate_session_key(self, key: str | None) -> bool:
        # (A method of SessionBase that django-stubs does not declare.)
        valid = super()._validate_session_key(key)  # type: ignore[misc]
        return bool(valid) and set(key or "") <= _KEY_CHARS


_KEY_CHARS = frozenset(VALID_KEY_CHARS)
