"""One error shape everywhere: {"error": {"code": ..., "message": ..., "field": ...}}."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

from faceage_site.errors import error_body

logger = logging.getLogger(__name__)


class UnusableImage(exceptions.APIException):
    """An upload that was received but cannot be used (bad format, too small...)."""

    status_code: int = status.HTTP_400_BAD_REQUEST

    def __init__(self, code: str, message: str, field: str = "image", http_status: int = 400):
        super().__init__(detail=message, code=code)
        self.status_code = http_status
        self.field = field
        self.error_code = code


class Conflict(exceptions.APIException):
    """The request fits, but not the resource's state now (a photo that runs again)."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "not_finished"


def _first_validation_error(detail, field: str | None = None) -> tuple[str | None, str, str]:
    """Walk DRF's nested ValidationError detail to its first message."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            return _first_validation_error(value, None if key == "non_field_errors" else key)
    if isinstance(detail, list) and detail:
        return _first_validation_error(detail[0], field)
    code = getattr(detail, "code", "invalid") or "invalid"
    return field, str(code), str(detail)


def error_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handling (logged) applies
    if isinstance(exc, UnusableImage):
        body = error_body(exc.error_code, str(exc.detail), exc.field)
    elif isinstance(exc, exceptions.ValidationError):
        field, code, message = _first_validation_error(exc.detail)
        if code == "required" and field:
            message = _("The '%(field)s' field is required.") % {"field": field}
        body = error_body(code, message, field)
    else:
        code = exc.get_codes() if hasattr(exc, "get_codes") else "error"
        if not isinstance(code, str):
            code = "error"
        body = error_body(code, str(getattr(exc, "detail", exc)), None)
    response.data = body
    return response
