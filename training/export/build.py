"""Building a version's exports: the SavedModel and TFLite files, checked against the served
model (TensorFlow: workers and management commands only; imported inside functions).

:func:`write_exports` needs no Django: it writes both zips into a local folder.
:func:`build_exports` renders the card, builds into a private scratch folder and publishes the
result through the exports storage (:mod:`training.export.files`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings

from predictor.vision.bundled_models import CHANNEL_MEANS, CHIP_PADDING, CHIP_SIZE, INPUT_SCALE
from training.export import (
    CARD_NAME,
    FORMATS,
    INPUT_NAME,
    PARITY_TOLERANCE_YEARS,
    SIGNATURE_FILE,
    SIGNATURE_NAME,
    ExportError,
)
from training.export.card import model_card_markdown
from training.export.files import ExportFiles, export_files

if TYPE_CHECKING:
    from predictor.models import ModelVersion
    from predictor.vision.age_network import AgeNetwork

logger = logging.getLogger(__name__)


# --- Building (TensorFlow: workers and management commands only) -------------------------


def signature_description(network: AgeNetwork) -> dict[str, Any]:
    """The machine-readable description of the export's signature (``signature.json``)."""
    return {
        "signature": SIGNATURE_NAME,
        "inputs": {
            INPUT_NAME: {
                "shape": [None, network.chip_size, network.chip_size, 3],
                "dtype": "uint8",
                "layout": "NHWC",
                "color_order": "RGB",
                "value_range": [0, 255],
                "normalization": "done inside the model: (pixels - channel_means) * scale",
                "channel_means": [float(m) for m in CHANNEL_MEANS],
                "scale": float(INPUT_SCALE),
                "alignment": (
                    "dlib 5-point landmarks (shape_predictor_5_face_landmarks.dat), then "
                    f"dlib.get_face_chip_details(shape, {network.chip_size}, {CHIP_PADDING}) and "
                    "dlib.extract_image_chip; where the chip reaches past the photo, its edge "
                    "repeated outwards instead of black (faceage's predictor/vision/alignment.py)"
                ),
            }
        },
        "outputs": {
            "age_probabilities": {"shape": [None, network.num_classes], "dtype": "float32"},
            "expected_age": {"shape": [None], "dtype": "float32", "unit": "years"},
            "age_std": {"shape": [None], "dtype": "float32", "unit": "years"},
        },
        "class_ages": [float(age) for age in network.class_ages],
        # faceage's 80% interval comes from the calibrated distribution
        # softmax(log(age_probabilities) / temperature); expected_age uses the raw one.
        "calibration_temperature": float(getattr(network, "temperature", 1.0)),
    }


def _serving_function(network: AgeNetwork):
    import tensorflow as tf

    model = network.model
    class_ages = tf.constant(network.class_ages, dtype=tf.float32)
    size = network.chip_size

    @tf.function(
        input_signature=[tf.TensorSpec((None, size, size, 3), tf.uint8, name=INPUT_NAME)],
        autograph=False,  # straight-line code: nothing for AutoGraph to convert
    )
    def serve(chips):
        probabilities = model(tf.cast(chips, tf.float32), training=False)
        expected = tf.reduce_sum(probabilities * class_ages[None, :], axis=1)
        spread = tf.reduce_sum(
            probabilities * tf.square(class_ages[None, :] - expected[:, None]), axis=1
        )
        return {
            "age_probabilities": probabilities,
            "expected_age": expected,
            "age_std": tf.sqrt(spread),
        }

    return serve


def write_savedmodel(network: AgeNetwork, directory: Path) -> Path:
    """Write ``network`` as a SavedModel with the ``serving_default`` signature.

    A plain ``tf.Module`` holding the weights and the traced function: loading it needs
    TensorFlow only (no Keras, no faceage code). Keras' ExportArchive stored every weight
    twice (21.5 MB instead of 10.8 MB for the bundled network).
    """
    import tensorflow as tf

    serve = _serving_function(network)
    module = tf.Module()
    module.weights = [variable.value for variable in network.model.weights]
    module.serve = serve
    tf.saved_model.save(module, os.fspath(directory), signatures={SIGNATURE_NAME: serve})
    return directory


def convert_to_tflite(savedmodel_dir: Path) -> bytes:
    """The SavedModel's ``serving_default`` function as a float32 TFLite flatbuffer."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(
        os.fspath(savedmodel_dir), signature_keys=[SIGNATURE_NAME]
    )
    return converter.convert()


def tflite_runner(model: bytes | Path):
    """A callable ``(chips) -> dict of outputs`` for a TFLite model.

    Uses LiteRT (``ai_edge_litert``), which replaces the deprecated ``tf.lite.Interpreter``;
    falls back to the latter where LiteRT is not installed.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - LiteRT is a dependency on Linux
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    if isinstance(model, bytes):
        interpreter = Interpreter(model_content=model)
    else:
        interpreter = Interpreter(model_path=os.fspath(model))
    runner = interpreter.get_signature_runner(SIGNATURE_NAME)

    def run(chips: np.ndarray) -> dict[str, np.ndarray]:
        return runner(**{INPUT_NAME: np.ascontiguousarray(chips, dtype=np.uint8)})

    return run


def savedmodel_runner(directory: Path):
    """A callable ``(chips) -> dict of outputs`` for a SavedModel directory."""
    import tensorflow as tf

    loaded = tf.saved_model.load(os.fspath(directory))
    signature = loaded.signatures[SIGNATURE_NAME]

    def run(chips: np.ndarray) -> dict[str, np.ndarray]:
        outputs = signature(**{INPUT_NAME: tf.constant(chips, dtype=tf.uint8)})
        return {name: value.numpy() for name, value in outputs.items()}

    run.loaded = loaded  # type: ignore[attr-defined]  # keep the variables alive
    return run


def check_parity(network: AgeNetwork, runners: dict[str, Any], chips: np.ndarray) -> dict:
    """Largest difference in expected age (years) between each runner and ``network``.

    Raises :class:`ExportError` above :data:`PARITY_TOLERANCE_YEARS`.
    """
    served = network.predict(chips).ages
    report = {}
    for name, run in runners.items():
        ages = np.asarray(run(chips)["expected_age"], dtype=np.float64)
        if ages.shape != served.shape:
            raise ExportError(f"{name}: {ages.shape} ages for {served.shape} chips")
        report[name] = float(np.abs(ages - served).max())
        if not report[name] <= PARITY_TOLERANCE_YEARS:
            raise ExportError(
                f"{name} export differs from the served model by {report[name]:.4f} years "
                f"(allowed {PARITY_TOLERANCE_YEARS})"
            )
    return report


def _zip_folder(target: Path, entries: dict[str, Path | bytes]) -> None:
    """Write a zip of ``{name in archive: file, folder or bytes}`` atomically."""
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, source in entries.items():
            if isinstance(source, bytes):
                archive.writestr(name, source)
            elif source.is_dir():
                for path in sorted(source.rglob("*")):
                    if path.is_file():
                        archive.write(path, f"{name}/{path.relative_to(source).as_posix()}")
            else:
                archive.write(source, name)
    partial.replace(target)


def write_exports(
    network: AgeNetwork, directory: Path, stem: str, card: str, check_chips: np.ndarray
) -> dict[str, Any]:
    """Build both exports of ``network`` into ``directory`` (no Django needed).

    Writes ``{stem}-savedmodel.zip`` (folder ``{stem}-savedmodel/`` with ``saved_model/``,
    the card and ``signature.json``) and ``{stem}-tflite.zip`` (``{stem}.tflite``, the card,
    ``signature.json``), after checking that both give the served ages for ``check_chips``.

    Returns ``{"parity": {format: max difference in years}, "bytes": {format: size}}``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    signature = json.dumps(signature_description(network), indent=2).encode()
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as scratch:
        savedmodel_dir = write_savedmodel(network, Path(scratch) / "saved_model")
        tflite = convert_to_tflite(savedmodel_dir)
        parity = check_parity(
            network,
            {"savedmodel": savedmodel_runner(savedmodel_dir), "tflite": tflite_runner(tflite)},
            check_chips,
        )
        zips = {fmt: directory / f"{stem}-{fmt}.zip" for fmt in FORMATS}
        _zip_folder(
            zips["savedmodel"],
            {
                f"{stem}-savedmodel/saved_model": savedmodel_dir,
                f"{stem}-savedmodel/{CARD_NAME}": card.encode(),
                f"{stem}-savedmodel/{SIGNATURE_FILE}": signature,
            },
        )
        _zip_folder(
            zips["tflite"],
            {
                f"{stem}-tflite/{stem}.tflite": tflite,
                f"{stem}-tflite/{CARD_NAME}": card.encode(),
                f"{stem}-tflite/{SIGNATURE_FILE}": signature,
            },
        )
    return {
        "parity": parity,
        "bytes": {fmt: zips[fmt].stat().st_size for fmt in FORMATS},
    }


def random_check_chips(count: int = 8, seed: int = 0, chip_size: int = CHIP_SIZE) -> np.ndarray:
    """Chips for the build-time parity check: noise, plus flat and extreme images.

    Real faces are checked by the test suite; here any input exercises every layer.
    """
    rng = np.random.default_rng(seed)
    chips = rng.integers(0, 256, (count, chip_size, chip_size, 3), dtype=np.uint8)
    chips[0] = 0
    chips[1] = 255
    chips[2] = np.asarray(CHANNEL_MEANS, dtype=np.float32).round().astype(np.uint8)
    return chips


def build_exports(version: ModelVersion, force: bool = False) -> ExportFiles:
    """Build (or find already built) the exports of ``version`` and publish them.

    Older exports of the same version (stale card metrics) are removed after a build. On
    failure :class:`ExportError` is raised with the reason (the build task stores it on the
    export's job row, for the model page to show).
    """
    from predictor.serving import load_network

    files = export_files(version)
    if files.ready() and not force:
        return files
    # The card inside the download is the English one; the page shows it translated.
    card = model_card_markdown(version, language=settings.LANGUAGE_CODE)
    # A private scratch folder per build: a second build at the same time cannot disturb it.
    with tempfile.TemporaryDirectory(prefix="faceage-export-") as scratch:
        try:
            network = load_network(version)
            # The exports hold the age network alone: the second opinion (the face descriptor,
            # a second network on onnxruntime) is not part of them, and the card says so.
            network.second_opinion = None
            check = random_check_chips(chip_size=network.chip_size)
            report = write_exports(network, Path(scratch), files.stem, card, check)
            if force:
                files.remove()
            # Saving through the storage can fail too (a full disk, an object store down):
            # publish removes what it saved, and the failure is recorded like any other.
            if not files.publish(Path(scratch), report):
                logger.info("exports of %s were published by another build first", version.name)
        except Exception as error:
            reason = f"{error.__class__.__name__}: {error}"
            if isinstance(error, ExportError):
                raise
            raise ExportError(reason) from error
    files.remove_stale()
    logger.info("exported %s: %s", version.name, report)
    return files
