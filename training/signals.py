"""Training's reactions to what happens in the predictor app."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from predictor.models import AgeLabel


@receiver(post_delete, sender=AgeLabel)
def label_deleted(sender, instance: AgeLabel, **kwargs) -> None:
    """A label is gone (its photo deleted by its owner or by retention, or the label
    removed): no chip cache may keep its face."""
    from training.feedback import forget_chips

    forget_chips()


@receiver(post_save, sender=AgeLabel)
def label_saved(sender, instance: AgeLabel, **kwargs) -> None:
    """Consent withdrawn: the face leaves the chip caches at once, not at the next run."""
    if not instance.consent:
        from training.feedback import forget_chips

        forget_chips()
