"""Upload rate limits, shared by the form and the API (429 with Retry-After)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class UploadRateThrottle(SimpleRateThrottle):
    """``FACEAGE_UPLOAD_RATE`` uploads per user, or per client address when anonymous."""

    scope = "uploads"

    def get_rate(self) -> str | None:
        # Read at request time (not import time) so the setting can change in tests.
        return settings.FACEAGE_UPLOAD_RATE or None

    def get_cache_key(self, request, view) -> str | None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            ident = f"user-{user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
