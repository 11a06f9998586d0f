"""Downloadable exports of a ModelVersion: a TensorFlow SavedModel, a TFLite file, a model card.

The exports belong with the model registry, on the training side: their card reads the
training data and the evaluations (training imports predictor, never the reverse).

* :mod:`training.export.card`: the model card, from Django templates (Markdown for the
  downloads, HTML for the model page), computed from the database.
* :mod:`training.export.files`: where the exports are kept, through Django's storage API
  (``STORAGES["exports"]``), and when they count as built.
* :mod:`training.export.build`: the SavedModel and TFLite build and its parity check
  (TensorFlow: workers and management commands only).
* :mod:`training.export.tasks`, :mod:`training.export.views`: the Celery task that builds
  them and the pages that serve them.

Both exports wrap the same function, the one the workers serve:

* **input** ``chips``: ``(N, 64, 64, 3)`` ``uint8``, RGB (not BGR), raw pixel values 0..255,
  NHWC. Each chip is one face aligned the way dlib does it: 5-point landmarks
  (``shape_predictor_5_face_landmarks.dat``), then ``dlib.get_face_chip_details(shape, 64,
  0.2)`` and ``dlib.extract_image_chip``, with the photo's edge repeated outwards where the
  chip reaches past the photo (``predictor.vision.alignment``; dlib alone fills black there).
  The network subtracts the channel means and scales
  by 1/256 itself: feed raw pixels. N may be any size (TFLite: resize the input first).
* **outputs** ``age_probabilities`` ``(N, K)`` float32 (softmax over the K age classes, whose
  ages in years are listed in ``signature.json``), ``expected_age`` ``(N,)`` float32 (the
  probability-weighted mean of the class ages, in years: the age faceage reports) and
  ``age_std`` ``(N,)`` float32 (the distribution's standard deviation, years).

The signature is called ``serving_default`` in both formats. Exports are built once per
version (and per content of its card's metrics) by a worker or ``manage.py export_model``,
never by the web process.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from predictor.models import ModelVersion

EXPORT_FORMAT_VERSION = 1
"""Bump when what an export contains changes: every cached export is then rebuilt."""

FORMATS = ("savedmodel", "tflite")
SIGNATURE_NAME = "serving_default"
INPUT_NAME = "chips"
OUTPUT_NAMES = ("age_probabilities", "expected_age", "age_std")
CARD_NAME = "MODEL_CARD.md"
SIGNATURE_FILE = "signature.json"
PARITY_TOLERANCE_YEARS = 0.01
"""An export is published only if it gives the served model's ages to within this."""


class ExportError(Exception):
    """An export could not be built, or does not match the served model."""


def file_stem(version: ModelVersion) -> str:
    """A safe file name stem for the version (names may contain any character)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", version.name).strip("-.")
    return stem or f"model-{version.pk}"
