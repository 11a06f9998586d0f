"""Template helpers shared by every page.

``{% relative_time value %}`` shows a time the way people read it ("2 minutes ago",
"2 分钟以前") inside a ``<time>`` element whose ``title`` holds the exact, localised
time (shown on hover) and whose ``datetime`` is machine readable.
"""

from __future__ import annotations

import datetime

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.translation import pgettext_lazy

register = template.Library()


@register.simple_tag
def relative_time(value: datetime.datetime | None) -> str:
    if not value:
        return ""
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    exact = formats.date_format(local, "DATETIME_FORMAT")
    return format_html(
        '<time datetime="{}" title="{}">{}</time>', local.isoformat(), exact, naturaltime(value)
    )


_GENDER_NAMES = {
    "female": pgettext_lazy("gender", "female"),
    "male": pgettext_lazy("gender", "male"),
    "unknown": pgettext_lazy("gender", "unknown"),
}


@register.filter
def gender_name(key: str) -> str:
    """A gender key of the evaluation metrics (``female``, ``male``, ``unknown``), in the
    reader's language; any other key is shown as stored."""
    return str(_GENDER_NAMES.get(key, key))


# The race labels of the datasets the importers read (FairFace's seven, UTKFace's five).
_RACE_NAMES = {
    "White": pgettext_lazy("race", "White"),
    "Black": pgettext_lazy("race", "Black"),
    "Latino Hispanic": pgettext_lazy("race", "Latino Hispanic"),
    "East Asian": pgettext_lazy("race", "East Asian"),
    "Southeast Asian": pgettext_lazy("race", "Southeast Asian"),
    "Indian": pgettext_lazy("race", "Indian"),
    "Middle Eastern": pgettext_lazy("race", "Middle Eastern"),
    "Asian": pgettext_lazy("race", "Asian"),
    "Others": pgettext_lazy("race", "Others"),
}


@register.filter
def race_name(key: str) -> str:
    """A dataset's race label, in the reader's language; any other label as stored."""
    return str(_RACE_NAMES.get(key, key))
