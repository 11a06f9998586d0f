"""Refusing a request body by its declared size, before any of it is read.

Django reads a multipart body to the end (into memory or temporary files) before a view can
say "too large". A body longer than the largest request the product accepts (a full batch:
``FACEAGE_BATCH_MAX_FILES`` photos of ``FACEAGE_MAX_UPLOAD_BYTES``, plus room for the form) is
answered 413 from its ``Content-Length`` alone. A buffering reverse proxy in front
(docs/deployment.md) does the same for bodies without one and for slow senders.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext

from faceage_site.errors import respond_with_error

MULTIPART_ROOM = 1024 * 1024  # form fields and part headers around the photos


def max_request_bytes() -> int:
    """The longest body accepted, in bytes."""
    return settings.FACEAGE_MAX_UPLOAD_BYTES * settings.FACEAGE_BATCH_MAX_FILES + MULTIPART_ROOM


class BodySizeLimitMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        refusal = self.refusal(request)
        return refusal if refusal is not None else self.get_response(request)

    def refusal(self, request):
        """The error response for a body refused by its declared size, else None. It runs
        before the locale middleware, so it picks the reader's language itself."""
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(declared)
        except ValueError:
            length = -1
        if 0 <= length <= max_request_bytes():
            return None
        with translation.override(translation.get_language_from_request(request)):
            return self._refuse(request, length)

    def _refuse(self, request, length: int):
        if length < 0:
            return respond_with_error(
                request,
                400,
                "bad_content_length",
                gettext("The Content-Length header is not a size."),
            )
        limit = max_request_bytes()
        return respond_with_error(
            request,
            413,
            "request_too_large",
            gettext(
                "The request is %(size)s MB; at most %(limit)s MB are accepted in one "
                "request. Send fewer or smaller photos."
            )
            % {"size": length // 1048576, "limit": limit // 1048576},
        )
