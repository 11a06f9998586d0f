"""The API's token authentication: DRF's, refusing a key no token could have.

DRF looks the key up as it comes. A key with a NUL in it (``Authorization: Token \\x00abc``)
reached the database that way, and PostgreSQL refuses NUL in text: the request was a 500
where SQLite answered 401. A token's key is 40 hexadecimal digits (``Token.generate_key``);
a key that is not ASCII letters and digits is refused as an unknown key is.
"""

from __future__ import annotations

from django.utils.translation import gettext
from rest_framework import authentication, exceptions

# DRF's own message for an unknown key, translated by DRF's catalogue.
INVALID_TOKEN = "Invalid token."


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key: str):
        if not (key.isascii() and key.isalnum()):
            raise exceptions.AuthenticationFailed(gettext(INVALID_TOKEN))
        return super().authenticate_credentials(key)
