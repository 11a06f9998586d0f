"""Training's stored messages: each code, and its English template.

Runs, dataset imports and model exports store a code and its values (``error_code``,
``error_params``), and a run its ``stage`` as a code with its counts apart (``stage_done``,
``stage_total``); pages render them in the reader's language (``jobs.messages.render``).
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy, gettext_noop

# Why a training run failed or stopped.
GAVE_UP = "gave_up"
TOO_SLOW = "too_slow"
FAILED = "failed"
CANCELLED = "cancelled"
CANCELLED_EARLY = "cancelled_early"

RUN_MESSAGES: dict[str, str] = {
    GAVE_UP: gettext_noop("The training worker stopped unexpectedly %(attempts)s times."),
    TOO_SLOW: gettext_noop("Training took longer than %(seconds)s s."),
    FAILED: gettext_noop("Training failed: %(error)s"),
    CANCELLED: gettext_noop("Cancelled by an administrator."),
    CANCELLED_EARLY: gettext_noop("Cancelled before it started."),
}

# Why a dataset import failed. Its ``error`` value is the reader's own words about a file or
# a row (training.datasets), in English.
IMPORT_FAILED = "import_failed"
IMPORT_GAVE_UP = "gave_up"
NO_FACES = "no_faces"
NO_CONSENTED_FACES = "no_consented_faces"

IMPORT_MESSAGES: dict[str, str] = {
    IMPORT_FAILED: gettext_noop("The import failed: %(error)s"),
    IMPORT_GAVE_UP: gettext_noop("The import stopped unexpectedly %(attempts)s times."),
    NO_FACES: gettext_noop("No usable faces found in %(source)s."),
    NO_CONSENTED_FACES: gettext_noop("No one has consented to training with a labelled face yet."),
}

# Why a model export could not be built.
EXPORT_FAILED = "export_failed"
EXPORT_GAVE_UP = "gave_up"

EXPORT_MESSAGES: dict[str, str] = {
    EXPORT_FAILED: gettext_noop("The export could not be built: %(error)s"),
    EXPORT_GAVE_UP: gettext_noop("Building the export stopped unexpectedly %(attempts)s times."),
}


class Stage(models.TextChoices):
    """A running training run's stage; its own count (chips cut so far, of how many) is
    stored beside it, in ``stage_done`` and ``stage_total``."""

    NONE = "", gettext_lazy("not started")
    PREPARING = "preparing", gettext_lazy("preparing chips")
    TRAINING = "training", gettext_lazy("training")
    EVALUATING = "evaluating", gettext_lazy("evaluating")


# The run's log names each stage as it starts (log entries are templates with their values).
STAGE_LOG = {
    Stage.PREPARING: gettext_noop("preparing chips"),
    Stage.TRAINING: gettext_noop("training"),
    Stage.EVALUATING: gettext_noop("evaluating"),
}
