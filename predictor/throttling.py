"""Upload rate limits, shared by the form and the API (429 with Retry-After)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


def client_address(request) -> str:
    """The client's address: the socket's, or with ``FACEAGE_NUM_PROXIES`` proxies in front,
    the X-Forwarded-For entry that the outermost of them appended. Upload limits and login
    lockouts both count by it.

    DRF's own default trusts the whole header, which any client can set, so each made-up
    value would get a counter of its own. This reads the setting per request, with DRF's rule
    (``NUM_PROXIES``, set from the same setting)."""
    remote_address = request.META.get("REMOTE_ADDR", "")
    proxies = settings.FACEAGE_NUM_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if not proxies or not forwarded:
        return remote_address
    addresses = forwarded.split(",")
    return addresses[-min(proxies, len(addresses))].strip()


class UploadRateThrottle(SimpleRateThrottle):
    """``FACEAGE_UPLOAD_RATE`` uploads per user, or per client address when anonymous."""

    scope = "uploads"

    def get_rate(self) -> str | None:
        # Read at request time (not import time) so the setting can change in tests.
        return settings.FACEAGE_UPLOAD_RATE or None

    def get_ident(self, request) -> str:
        return client_address(request)

    def get_cache_key(self, request, view) -> str | None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            ident = f"user-{user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_more(self, request, view, extra: int) -> bool:
        """Count ``extra`` uploads more than the one ``allow_request`` already counted.

        A batch of n photos uses n uploads of the allowance: the request counts one when it
        arrives, and this counts the other n - 1 once they are known. When fewer remain,
        nothing more is recorded and the caller refuses the whole batch (``wait()`` then
        says how long until there is room).
        """
        if extra <= 0 or self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) + extra > self.num_requests:
            return False
        self.history[:0] = [self.now] * extra
        self.cache.set(self.key, self.history, self.duration)
        return True
