"""The worker's loaded model: built once per process, swapped when the active version changes.

Only Celery workers and management commands import this module (it pulls in
TensorFlow and dlib). The web process never does.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage

from predictor.models import ModelVersion
from predictor.vision.age_network import AgeNetwork
from predictor.vision.bundled_models import shipped_model_path
from predictor.vision.centerface import face_detector
from predictor.vision.estimator import AgeEstimator

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_loaded: dict[str, Any] = {"version_id": None, "estimator": None}
_shadow: dict[str, Any] = {"version_id": None, "estimator": None}
_earlier: dict[str, Any] = {"version_id": None, "estimator": None}


def load_network(version: ModelVersion) -> AgeNetwork:
    """The version's network, with its calibration temperature and its second opinion set."""
    network = _load_weights(version)
    network.temperature = version.temperature
    network.second_opinion = second_opinion_of(version, network)
    return network


def second_opinion_of(version: ModelVersion, network: AgeNetwork):
    """The second opinion ``version`` stores, for its ``network`` (None without one), with
    the descriptor network and the heads' session built now rather than on the first photo.

    Raises:
        ValueError: the network does not give the ages 0-100 that the opinion mixes.
        FileNotFoundError: the head it names does not ship.
    """
    if not version.second_opinion:
        return None
    from predictor.vision.second_opinion import AGES, from_settings, shared_descriptor

    if network.num_classes != AGES:
        raise ValueError(
            f"{version.name}: a second opinion needs a network of {AGES} ages, this one has "
            f"{network.num_classes}"
        )
    opinion = from_settings(version.second_opinion)
    shared_descriptor()
    opinion.head.warm()
    return opinion


def _load_weights(version: ModelVersion) -> AgeNetwork:
    if version.is_bundled:
        return AgeNetwork.bundled()
    if version.is_shipped:
        return AgeNetwork.from_keras_file(shipped_model_path(version.shipped_name))
    # Read through the storage API so a worker on another host (S3, NFS) works;
    # a local filesystem storage gives us the path directly.
    try:
        return AgeNetwork.from_keras_file(Path(default_storage.path(version.artifact)))
    except NotImplementedError:
        import shutil
        import tempfile

        # Keras reads the whole file into memory, so the copy can go once it has loaded.
        with tempfile.TemporaryDirectory(prefix="faceage-model-") as folder:
            local = Path(folder) / "model.keras"
            with default_storage.open(version.artifact, "rb") as source, open(local, "wb") as copy:
                shutil.copyfileobj(source, copy)
            return AgeNetwork.from_keras_file(local)


def estimator_for(version: ModelVersion) -> AgeEstimator:
    """The estimator for ``version``, loading its network only when it changed."""
    with _lock:
        current = _loaded["estimator"]
        if _loaded["version_id"] == version.pk and current is not None:
            # The temperature (and the second opinion) may have been changed since the
            # weights were loaded.
            current.network.temperature = version.temperature
            current.network.second_opinion = second_opinion_of(version, current.network)
            current.network.mirrored = settings.FACEAGE_MIRRORED_INFERENCE
            return current
        logger.info("loading model version %s (%s)", version.pk, version.name)
        network = load_network(version)
        # Serving averages each face's distribution with its mirror image's (the exported
        # network is the plain one; its card says so).
        network.mirrored = settings.FACEAGE_MIRRORED_INFERENCE
        estimator = (
            current.with_network(network)
            if current is not None
            else AgeEstimator(network, face_detector(settings.FACEAGE_FACE_DETECTOR))
        )
        _loaded.update(version_id=version.pk, estimator=estimator)
        return estimator


def shadow_estimator_for(version: ModelVersion, active: AgeEstimator) -> AgeEstimator:
    """The estimator of the candidate run in shadow: its own network beside the active one
    (loaded once per process), sharing the active estimator's detector and aligner."""
    return _beside(_shadow, version, active, "to run in shadow")


def earlier_estimator_for(version: ModelVersion) -> AgeEstimator:
    """The estimator of an earlier version, for a face marked on a photo it rated: beside
    the active network (one earlier version per process), so marking faces on old photos
    never unloads the network that serves new ones."""
    active = estimator_for(ModelVersion.active())
    if version.pk == _loaded["version_id"]:
        return active
    return _beside(_earlier, version, active, "for a face marked on a photo it rated")


def _beside(slot: dict, version: ModelVersion, active: AgeEstimator, why: str) -> AgeEstimator:
    with _lock:
        current = slot["estimator"]
        if slot["version_id"] == version.pk and current is not None:
            current.network.temperature = version.temperature
            current.network.second_opinion = second_opinion_of(version, current.network)
            return current
        logger.info("loading model version %s (%s) %s", version.pk, version.name, why)
        network = load_network(version)
        network.mirrored = settings.FACEAGE_MIRRORED_INFERENCE
        estimator = active.with_network(network)
        slot.update(version_id=version.pk, estimator=estimator)
        return estimator


def release_shadow() -> None:
    """Drop the shadow network once no candidate runs in shadow (ended, or promoted: then
    ``estimator_for`` loads it as the active one), so a worker does not hold it twice."""
    with _lock:
        _shadow.update(version_id=None, estimator=None)
