"""Naming the datasets of a training run and their sampling weights: ``utk`` or ``ff:2``."""

from __future__ import annotations

import math

from django.utils.translation import gettext as _

from training.models import Dataset


class MixError(ValueError):
    """A dataset that does not exist or is not ready, or a weight that is not positive."""


def parse_mix(items: list[str]) -> list[tuple[Dataset, float]]:
    """``["utk", "ff:2"]`` -> the ready datasets with their weights (1 when not given).

    Raises :class:`MixError` with a message naming the item at fault, for a person."""
    chosen: list[tuple[Dataset, float]] = []
    for item in items:
        name, _sep, weight_text = item.strip().partition(":")
        name = name.strip()
        try:
            weight = float(weight_text) if weight_text.strip() else 1.0
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight <= 0:
            raise MixError(
                _("%(item)s: the weight after ':' must be a positive number.") % {"item": item}
            )
        dataset = Dataset.objects.filter(name=name, status=Dataset.Status.READY).first()
        if dataset is None:
            raise MixError(_("No ready dataset named %(name)s.") % {"name": repr(name)})
        if any(existing.pk == dataset.pk for existing, _weight in chosen):
            raise MixError(_("%(name)s is named twice.") % {"name": repr(name)})
        chosen.append((dataset, weight))
    return chosen
