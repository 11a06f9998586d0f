"""URL converters shared by the apps' URL patterns."""

from __future__ import annotations

from django.urls import register_converter


class ModelNameConverter:
    """A model version's name in a URL: Django's ``str`` (anything but a slash) less the NUL
    character, which PostgreSQL refuses in a text lookup (a 500 there; SQLite just finds
    nothing). A name never holds one, so such a URL is a 404."""

    regex = r"[^/\x00]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


# Registered once, when the first URL module that uses it imports this one.
register_converter(ModelNameConverter, "model_name")
