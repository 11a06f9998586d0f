"""Accounts without a shell: sign-up, confirming its email address, and the API token page,
where a logged-in person creates, sees once, replaces and revokes their own token
(``manage.py drf_create_token`` stays for administrators). Log-in, log-out and the password
pages are Django's own views with this site's templates (faceage_site/urls.py)."""

from __future__ import annotations

from typing import cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token

from predictor.accounts import claim_address, read_confirmation, send_address_check
from predictor.forms import SignUpForm
from predictor.throttling import limit_posts


@never_cache
@login_required(login_url="login")  # the site's login, not the admin's (staff only)
@require_http_methods(["GET", "POST"])
def api_token(request: HttpRequest) -> HttpResponse:
    """GET: whether a token exists (never the key itself). POST ``create``: a new token,
    replacing any earlier one, whose key is shown on this one answer only. POST ``revoke``:
    the token stops working at once."""
    user = cast(User, request.user)  # logged in (login_required)
    token = Token.objects.filter(user=user).first()
    new_key = None
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            if token is not None:
                token.delete()
                messages.success(request, _("Your API token is revoked: it no longer works."))
            return redirect("api-token")
        if token is not None:
            token.delete()  # a new key: the old one stops working
        token = Token.objects.create(user=user)
        new_key = token.key
    return render(request, "registration/api_token.html", {"token": token, "new_key": new_key})


@never_cache
@limit_posts("signup", "FACEAGE_SIGNUP_RATE")
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """Create an account and log in with it; photos uploaded before in this browser move to
    it, as they do at log-in (predictor.signals). The address given is mailed a link to
    confirm it (predictor.accounts); the answer is the same whether or not another account
    has that address."""
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        address = form.cleaned_data["email"]
        send_address_check(request, user, address)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(
            request,
            _(
                "Welcome, %(name)s: your account is ready. We sent a link to %(email)s: "
                "open it to confirm the address, so that a password reset can reach you."
            )
            % {"name": user.username, "email": address},
        )
        return redirect(settings.LOGIN_REDIRECT_URL)
    return render(request, "registration/signup.html", {"form": form}, status=200)


@never_cache
@require_http_methods(["GET", "POST"])
def confirm_email(request: HttpRequest, token: str) -> HttpResponse:
    """The link mailed at sign-up. GET shows a button (a mail scanner that fetches links
    confirms nothing); POST stores the address on the account, unless another account
    confirmed it first."""
    found = read_confirmation(token)
    if found is None:
        return render(request, "accounts/confirm_email.html", {"invalid": True}, status=400)
    user, address = found
    if request.method == "POST":
        if claim_address(user, address):
            messages.success(
                request,
                _("%(email)s is confirmed: a password reset can reach you there.")
                % {"email": address},
            )
        else:
            messages.error(
                request,
                _("%(email)s belongs to another account already; it was not added to this one.")
                % {"email": address},
            )
        return redirect(settings.LOGIN_REDIRECT_URL if request.user.is_authenticated else "login")
    return render(
        request,
        "accounts/confirm_email.html",
        {"address": address, "username": user.get_username()},
    )
