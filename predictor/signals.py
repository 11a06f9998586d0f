"""Hand an anonymous visitor's history to their account when they log in."""

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from predictor.models import ANONYMOUS_OWNER_SESSION_KEY, Batch, Prediction


@receiver(user_logged_in)
def adopt_anonymous_predictions(sender, request, user, **kwargs) -> None:
    if request is None or not hasattr(request, "session"):
        return
    token = request.session.pop(ANONYMOUS_OWNER_SESSION_KEY, "")
    if token:
        for model in (Prediction, Batch):  # a batch page follows its photos to the account
            model.objects.filter(owner__isnull=True, anonymous_owner=token).update(
                owner=user, anonymous_owner=""
            )
