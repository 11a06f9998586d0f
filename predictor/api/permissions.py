"""Who may change what through the API (docs/api.md, "Who may upload").

A request that changes something (an upload, a delete) is made either by an authenticated
caller, with a token or a logged-in session (DRF checks that session's CSRF token), or by an
anonymous visitor's browser session, which must pass the same CSRF check as the site's own
forms. An anonymous request without the site's CSRF cookie and token is refused: another
site cannot upload into a visitor's history, and a script that keeps no cookie is told to use
a token, instead of getting a prediction it could never read back."""

from __future__ import annotations

from django.utils.translation import gettext_lazy
from rest_framework.authentication import CSRFCheck
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import SAFE_METHODS, BasePermission


def _csrf_failure(request) -> str | None:
    """The reason Django's CSRF check refuses ``request`` (a Django request), or None: the
    check DRF's SessionAuthentication runs for a logged-in session."""
    # DRF's CSRFCheck answers the reason itself (its _reject), where Django's answers a 403.
    check = CSRFCheck(lambda _request: None)  # type: ignore[arg-type]
    check.process_request(request)
    return check.process_view(request, None, (), {})  # type: ignore[arg-type,return-value]


class AnonymousChangesNeedCsrf(BasePermission):
    """Refuses with 401 ``not_authenticated`` and a message that says what to do."""

    message = gettext_lazy(
        "Anonymous uploads through the API need the site's CSRF cookie and token, as the "
        "upload page sends them. Send an API token instead (Authorization: Token …; "
        "create one on the API token page, /accounts/token/, after logging in), "
        "or upload with the web form."
    )

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS or request.user.is_authenticated:
            return True
        if _csrf_failure(request._request) is not None:
            raise NotAuthenticated(self.message)
        return True
