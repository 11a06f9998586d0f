"""Error pages: JSON in the error shape under /api/, HTML elsewhere; and the shape itself
(``error_body``), which the API's errors (predictor.api.errors) use too."""

from django.core.exceptions import TooManyFilesSent
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext
from django.utils.translation import gettext_noop as _


def error_body(code: str, message: str, field: str | None = None) -> dict:
    """The one error shape, for the API and for every JSON error the site answers."""
    return {"error": {"code": code, "message": message, "field": field}}


def json_error(code: str, message: str, status_code: int, field: str | None = None):
    return JsonResponse(error_body(code, message, field), status=status_code)


_MESSAGES = {
    400: ("bad_request", _("The request could not be understood.")),
    403: ("forbidden", _("You do not have permission to do that.")),
    404: ("not_found", _("Not found.")),
    500: ("server_error", _("Something went wrong on our side. Please try again.")),
}


def respond_with_error(request, status: int, code: str | None = None, message: str | None = None):
    """``status`` with ``code`` and a translated ``message``: JSON under /api/, a page
    elsewhere (the standard message for the status when none is given)."""
    if code is None or message is None:
        code, english = _MESSAGES[status]
        message = gettext(english)
    if request.path.startswith("/api/"):
        return json_error(code, message, status)
    return render(request, "error.html", {"status": status, "message": message}, status=status)


def bad_request(request, exception=None):
    if isinstance(exception, TooManyFilesSent):
        # More file parts than Django parses at all (DATA_UPLOAD_MAX_NUMBER_FILES): the
        # batch cap's own answer, not a bare 400 the sender cannot act on.
        from predictor.archives import too_many_parts

        rejected = too_many_parts()
        return respond_with_error(request, rejected.http_status, rejected.code, rejected.message)
    return respond_with_error(request, 400)


def permission_denied(request, exception=None):
    return respond_with_error(request, 403)


def not_found(request, exception=None):
    return respond_with_error(request, 404)


def server_error(request):
    return respond_with_error(request, 500)
