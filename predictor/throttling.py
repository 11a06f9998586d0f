"""Rate limits: uploads, shared by the form and the API, and the account pages that send
email or create rows (429 with Retry-After)."""

from __future__ import annotations

import math
from functools import wraps

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


def admits(throttle: SimpleRateThrottle, request) -> bool:
    """Whether ``throttle`` lets ``request`` through (and counts it). DRF's throttles serve
    plain Django views here too: they read only ``request.user`` and its META, which a
    Django request has; there is no DRF view."""
    return throttle.allow_request(request, None)  # type: ignore[arg-type]


class UploadRateThrottle(SimpleRateThrottle):
    """``FACEAGE_UPLOAD_RATE`` uploads per user, or per client address when anonymous."""

    scope = "uploads"
    duration: int  # set from the rate by SimpleRateThrottle.__init__
    num_requests: int

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


class AddressRateThrottle(SimpleRateThrottle):
    """At most ``rate`` requests of one kind (``scope``) per client address (or per
    ``ident``), for the account pages that cost an email or a row (sign-up, password reset):
    their abuse is many requests from one place, whoever is logged in. An empty rate turns
    the limit off."""

    def __init__(self, scope: str, rate: str, ident: str | None = None) -> None:
        self.scope = scope
        self.rate = rate or None
        self.ident = ident  # counted by this instead of the client address
        super().__init__()

    def get_rate(self) -> str | None:
        return self.rate

    def get_cache_key(self, request, view) -> str | None:
        ident = self.ident if self.ident is not None else client_address(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


def limit_posts(scope: str, setting: str):
    """Decorate a view so its POSTs are limited to ``settings.<setting>`` (such as "10/hour")
    per client address; one over it gets the site's 429 page with ``Retry-After``."""

    def decorate(view):
        @wraps(view)
        def limited(request, *args, **kwargs):
            if request.method == "POST":
                throttle = AddressRateThrottle(scope, getattr(settings, setting))
                if not admits(throttle, request):
                    return too_many_requests(request, throttle.wait())
            return view(request, *args, **kwargs)

        return limited

    return decorate


def too_many_requests(request, wait: float | None, message: str | None = None):
    """The site's 429 page, saying how long to wait, with ``Retry-After``."""
    from django.shortcuts import render
    from django.utils.translation import ngettext

    seconds = max(1, math.ceil(wait or 1))
    text = message or ngettext(
        "Too many attempts. Please wait %(wait)d second and try again.",
        "Too many attempts. Please wait %(wait)d seconds and try again.",
        seconds,
    )
    response = render(
        request,
        "error.html",
        {"status": 429, "message": text % {"wait": seconds}},
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response
