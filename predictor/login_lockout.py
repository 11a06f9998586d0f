"""The login lockout (django-axes), storing only what its tables can hold.

django-axes records each failed login, and each log-in and log-out, with the username typed,
the browser's ``User-Agent`` and its ``Accept`` header. It cuts the two headers to their
columns' lengths but keeps a NUL, and it keeps the username whole, while Django's log-in
form checks no length before it asks the backends. PostgreSQL refuses both (a NUL in text; a
value over ``varchar(255)``), so such a log-in was a 500 there, where SQLite stored it. Here
a NUL becomes U+FFFD and each value is cut to its column: the attempt is counted, and the
person gets the form's "Please enter a correct username and password" as for any other.
"""

from __future__ import annotations

from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings

# The columns' lengths in axes.models (AccessBase).
_USERNAME = 255
_USER_AGENT = 255
_HTTP_ACCEPT = 1025
_PATH_INFO = 255


def storable(value: str | None, length: int) -> str | None:
    """``value`` as a text column of ``length`` characters can hold it on any database."""
    if value is None:
        return None
    return str(value).replace("\x00", "\ufffd")[:length]


def login_username(request, credentials: dict[str, Any] | None) -> str | None:
    """The username a login attempt is counted under (``AXES_USERNAME_CALLABLE``): the one
    given to ``authenticate``, or else the form's, made storable."""
    field = getattr(settings, "AXES_USERNAME_FORM_FIELD", "username")  # set by axes.conf
    if credentials:
        value = credentials.get(field)
    else:
        value = request.POST.get(field) if request is not None else None
    return storable(value, _USERNAME)


class LoginLockoutHandler(AxesDatabaseHandler):
    """django-axes's database handler (``AXES_HANDLER``), with the request's headers made
    storable before a record is written."""

    def user_login_failed(self, sender, credentials, request=None, **kwargs):
        _make_storable(request)
        return super().user_login_failed(sender, credentials, request, **kwargs)

    def user_logged_in(self, sender, request, user, **kwargs):
        _make_storable(request)
        return super().user_logged_in(sender, request, user, **kwargs)

    def user_logged_out(self, sender, request, user, **kwargs):
        _make_storable(request)
        return super().user_logged_out(sender, request, user, **kwargs)


def _make_storable(request) -> None:
    if request is None:
        return
    for name, length in (
        ("axes_user_agent", _USER_AGENT),
        ("axes_http_accept", _HTTP_ACCEPT),
        ("axes_path_info", _PATH_INFO),
    ):
        if hasattr(request, name):
            setattr(request, name, storable(getattr(request, name), length))
