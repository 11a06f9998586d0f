"""Email addresses that belong to their account, and nothing given away about others.

An address typed at sign-up is not trusted: ``user.email`` stays empty until its owner opens
the link mailed to it (``confirmation_link``, signed, valid CONFIRM_DAYS days), and a
password reset only ever mails a confirmed address. One address confirms one account. Sign-up
answers the same whether or not the address is in use: when it is, the email goes to the
address's owner instead, saying that someone tried, which account is theirs, and how to reset
its password. No more than FACEAGE_EMAILS_PER_ADDRESS emails of each kind go to one address,
however many requests ask for them (``email_allowed``). Addresses stored before confirmation
existed, or set by an administrator, count as confirmed.

A new password (changed, reset, or set by an administrator) revokes the account's API token
(``revoke_token_on_new_password``): whoever held the old password may have taken the token.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm
from django.core import signing
from django.core.cache import cache
from django.core.mail import send_mail
from django.db.models.signals import pre_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse

from predictor.throttling import AddressRateThrottle, admits

logger = logging.getLogger(__name__)

CONFIRM_DAYS = 3
_SALT = "faceage.accounts.confirm-email"


def email_allowed(address: str, kind: str) -> bool:
    """Whether one more email of ``kind`` ("signup": a confirmation or a notice; "reset")
    may go to ``address`` (FACEAGE_EMAILS_PER_ADDRESS of each kind, such as "3/hour"; empty:
    no limit). Each kind has its own budget, so sign-ups with someone's address cannot use up
    their password resets. Past the limit nothing is sent and the page says the same as
    ever, so the limit gives nothing away either."""
    digest = hashlib.sha256(address.strip().lower().encode()).hexdigest()[:32]
    throttle = AddressRateThrottle(f"email-{kind}", settings.FACEAGE_EMAILS_PER_ADDRESS, digest)
    allowed = admits(throttle, None)  # counted by the address, not by a request
    if not allowed:
        logger.warning("email to an address held back: over FACEAGE_EMAILS_PER_ADDRESS")
    return allowed


def owner_of(address: str, exclude_pk=None):
    """The active account whose confirmed address this is, if any."""
    users = get_user_model().objects.filter(email__iexact=address.strip(), is_active=True)
    if exclude_pk is not None:
        users = users.exclude(pk=exclude_pk)
    return users.order_by("pk").first()


def confirmation_token(user, address: str) -> str:
    return signing.dumps({"user": user.pk, "email": address}, salt=_SALT, compress=True)


def read_confirmation(token: str) -> tuple[Any, str] | None:
    """The account and address a confirmation link is for, or None when the link is
    damaged, older than CONFIRM_DAYS, or its account is gone or disabled."""
    try:
        payload = signing.loads(token, salt=_SALT, max_age=CONFIRM_DAYS * 86400)
    except signing.BadSignature:  # SignatureExpired is one too
        return None
    # Only this site signs a link, so its shape is ours; it is checked all the same, as any
    # value from outside (a wrong shape was a 500; a NUL in the address, one on PostgreSQL).
    if not isinstance(payload, dict):
        return None
    pk, address = payload.get("user"), payload.get("email")
    if type(pk) is not int or not isinstance(address, str) or "\x00" in address:
        return None
    user = get_user_model().objects.filter(pk=pk, is_active=True).first()
    if user is None:
        return None
    return user, address


def claim_address(user, address: str) -> bool:
    """Store ``address`` as ``user``'s, unless another account has it: False then. Two
    confirmations of one address at once take turns (a cache lock, shared by every web
    process through Redis), so only the first gets it."""
    key = "faceage:confirm-email:" + hashlib.sha256(address.lower().encode()).hexdigest()[:32]
    for _ in range(50):  # a confirmation takes milliseconds: wait up to about 5 s
        if cache.add(key, 1, timeout=30):
            break
        time.sleep(0.1)
    else:
        return False
    try:
        if owner_of(address, exclude_pk=user.pk) is not None:
            return False
        type(user).objects.filter(pk=user.pk).update(email=address)
        return True
    finally:
        cache.delete(key)


def _mail(request: HttpRequest, address: str, name: str, context: dict) -> None:
    """Send one email; a mail server that fails is logged, never the person's error (the
    account is made by then, and the page must not say more than it does for anyone)."""
    context = {"site": request.get_host(), "protocol": request.scheme, **context}
    subject = render_to_string(f"accounts/{name}_subject.txt", context, request).strip()
    body = render_to_string(f"accounts/{name}_email.txt", context, request)
    try:
        send_mail(" ".join(subject.splitlines()), body, None, [address])
    except Exception:
        logger.exception("the %s email could not be sent", name)


def send_address_check(request: HttpRequest, user, address: str) -> None:
    """Mail ``address``: a link that confirms it for ``user``, or, when another account has
    it already, a notice to that account's owner. Within email_allowed's limit."""
    if not address or not email_allowed(address, "signup"):
        return
    holder = owner_of(address, exclude_pk=user.pk)
    if holder is not None:
        _mail(
            request,
            address,
            "address_in_use",
            {"username": holder.get_username(), "reset_path": reverse("password-reset")},
        )
        return
    path = reverse("confirm-email", args=[confirmation_token(user, address)])
    _mail(
        request,
        address,
        "confirm_address",
        {"username": user.get_username(), "path": path, "days": CONFIRM_DAYS},
    )


class LimitedPasswordResetForm(PasswordResetForm):
    """Django's reset form, mailing only confirmed addresses (they are the only ones in
    ``user.email``), within email_allowed's limit per address."""

    def send_mail(
        self,
        subject_template_name,
        email_template_name,
        context,
        from_email,
        to_email,
        html_email_template_name=None,
    ) -> None:
        if not email_allowed(to_email, "reset"):
            return
        try:
            super().send_mail(
                subject_template_name,
                email_template_name,
                context,
                from_email,
                to_email,
                html_email_template_name,
            )
        except Exception:  # the page reads the same for every address, mail server or not
            logger.exception("a password reset email could not be sent")


@receiver(pre_save, sender=settings.AUTH_USER_MODEL)
def revoke_token_on_new_password(sender, instance, update_fields=None, **kwargs) -> None:
    # set_password leaves the new raw password in _password until the save; Django's own
    # re-hash at log-in (a newer hasher, more iterations) clears it first: the password is
    # the same then, and the token stays.
    if instance.pk is None or getattr(instance, "_password", None) is None:
        return
    if update_fields is not None and "password" not in update_fields:
        return
    from rest_framework.authtoken.models import Token

    stored = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is not None and stored != instance.password:
        Token.objects.filter(user_id=instance.pk).delete()
