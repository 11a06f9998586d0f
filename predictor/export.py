"""Downloadable exports of a ModelVersion: a TensorFlow SavedModel, a TFLite file, a model card.

Both exports wrap the same function, the one the workers serve:

* **input** ``chips``: ``(N, 64, 64, 3)`` ``uint8``, RGB (not BGR), raw pixel values 0..255,
  NHWC. Each chip is one face aligned the way dlib does it: 5-point landmarks
  (``shape_predictor_5_face_landmarks.dat``), then ``dlib.get_face_chip_details(shape, 64,
  0.2)`` and ``dlib.extract_image_chip``. The network subtracts the channel means and scales
  by 1/256 itself: feed raw pixels. N may be any size (TFLite: resize the input first).
* **outputs** ``age_probabilities`` ``(N, K)`` float32 (softmax over the K age classes, whose
  ages in years are listed in ``signature.json``), ``expected_age`` ``(N,)`` float32 (the
  probability-weighted mean of the class ages, in years: the age faceage reports) and
  ``age_std`` ``(N,)`` float32 (the distribution's standard deviation, years).

The signature is called ``serving_default`` in both formats.

Exports are built once per version (and per content of its card's metrics) into
``MEDIA_ROOT/exports/`` by the Celery task :func:`predictor.export_tasks.build_model_export`
or ``manage.py export_model``, never by the web process. This module keeps TensorFlow imports
inside the functions that build or load exports, so the web process can import it for paths
and the model card.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation

from predictor.vision.bundled_models import CHANNEL_MEANS, CHIP_PADDING, CHIP_SIZE, INPUT_SCALE

if TYPE_CHECKING:
    from predictor.models import ModelVersion
    from predictor.vision.age_network import AgeNetwork

logger = logging.getLogger(__name__)

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


# --- Paths (no TensorFlow) ---------------------------------------------------------------


def export_key(version: ModelVersion) -> str:
    """What an export depends on: the weights (name, artifact) and the card's metrics
    (the version's own, or the training-run baseline the card shows for the bundled one)."""
    evaluation = _evaluation(version)
    card_metrics = [evaluation["run"], evaluation["metrics"]] if evaluation else None
    payload = json.dumps(
        [
            EXPORT_FORMAT_VERSION,
            version.name,
            version.artifact,
            version.metrics,
            card_metrics,
            getattr(version, "temperature", 1.0),
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def file_stem(version: ModelVersion) -> str:
    """A safe file name stem for the version (names may contain any character)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", version.name).strip("-.")
    return stem or f"model-{version.pk}"


@dataclass(frozen=True)
class ExportPaths:
    directory: Path
    stem: str

    @property
    def savedmodel_zip(self) -> Path:
        return self.directory / f"{self.stem}-savedmodel.zip"

    @property
    def tflite_zip(self) -> Path:
        return self.directory / f"{self.stem}-tflite.zip"

    @property
    def error_file(self) -> Path:
        """Written by a failed build: the reason, for the page to show."""
        return self.directory.with_name(self.directory.name + ".failed")

    def archive(self, fmt: str) -> Path:
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; expected one of {FORMATS}")
        return self.savedmodel_zip if fmt == "savedmodel" else self.tflite_zip

    def ready(self) -> bool:
        return self.savedmodel_zip.is_file() and self.tflite_zip.is_file()

    def error(self) -> str:
        try:
            return self.error_file.read_text(encoding="utf-8").strip()
        except OSError:
            return ""


def exports_root() -> Path:
    return Path(settings.MEDIA_ROOT) / "exports"


def export_paths(version: ModelVersion) -> ExportPaths:
    """Where the exports of ``version`` (in its current state) live, built or not."""
    return ExportPaths(exports_root() / f"v{version.pk}-{export_key(version)}", file_stem(version))


# --- Model card (no TensorFlow) ----------------------------------------------------------


def _rows(table: dict | None) -> list[dict[str, Any]]:
    return [
        {"group": group, "mae": row.get("mae"), "count": row.get("count")}
        for group, row in (table or {}).items()
        if isinstance(row, dict)
    ]


def _evaluation(version: ModelVersion) -> dict[str, Any] | None:
    """The version's test-split metrics and where they come from.

    A trained version carries its own. The bundled network has none of its own, but every
    training run measures the active model on its test split as a baseline: the latest such
    measurement of this version is used (the training app is looked up lazily; predictor
    never imports training).
    """
    metrics = version.metrics or {}
    if metrics.get("mae") is not None:
        return {"metrics": metrics, "dataset": metrics.get("dataset", ""), "run": None}
    from django.apps import apps

    if not apps.is_installed("training"):
        return None
    training_run = apps.get_model("training", "TrainingRun")
    run = (
        training_run.objects.filter(baseline_metrics__model_version=version.name)
        .select_related("dataset")
        .order_by("-finished_at", "-pk")
        .first()
    )
    if run is None or run.baseline_metrics.get("mae") is None:
        return None
    return {"metrics": run.baseline_metrics, "dataset": run.dataset.name, "run": run.pk}


def _training_data(version: ModelVersion) -> dict[str, Any]:
    metrics = version.metrics or {}
    if version.is_bundled:
        return {"bundled": True}
    if version.is_shipped:
        from predictor.vision.bundled_models import shipped_model_card

        card = shipped_model_card(version.shipped_name)
        training = card["training"]
        return {
            "bundled": False,
            "dataset": card["training_data"]["dataset"],
            "train_images": card["training_data"]["train_faces"],
            "epochs_run": training["epochs_run"],
            "best_epoch": training["best_epoch"],
        }
    data: dict[str, Any] = {"bundled": False, "dataset": metrics.get("dataset", "")}
    data.update(metrics.get("training") or {})
    from django.apps import apps

    if data["dataset"] and apps.is_installed("training"):
        dataset = apps.get_model("training", "Dataset").objects.filter(name=data["dataset"])
        found = dataset.first()
        if found is not None:
            data["kind"] = found.get_kind_display()
            data["splits"] = found.split_counts()
            dropped = (found.report or {}).get("dropped") or {}
            data["dropped"] = sum(int(count) for count in dropped.values())
    return data


def card_context(version: ModelVersion) -> dict[str, Any]:
    """Everything the model card says, computed from the database (no TensorFlow)."""
    evaluation = _evaluation(version)
    metrics = evaluation["metrics"] if evaluation else {}
    decades = _rows(metrics.get("mae_by_decade"))
    genders = _rows(metrics.get("mae_by_gender"))
    # A decade of a handful of faces says little: compare those with at least 20 faces.
    solid = [row for row in decades if (row["count"] or 0) >= 20 and row["mae"] is not None]
    worst = max(solid, key=lambda row: row["mae"]) if len(solid) > 1 else None
    best = min(solid, key=lambda row: row["mae"]) if len(solid) > 1 else None
    # The bundled head has 81 classes (0.25, 1, ..., 80 years); training builds 101 (0..100).
    classes = (
        (81, "0.25, 1, 2, …, 80", "0-80") if version.is_bundled else (101, "0, 1, …, 100", "0-100")
    )
    return {
        "version": version,
        "training_data": _training_data(version),
        "evaluation": evaluation,
        "metrics": metrics,
        "decades": decades,
        "genders": genders,
        "worst_decade": worst,
        "best_decade": best,
        "num_classes": classes[0],
        "class_ages": classes[1],
        "age_range": classes[2],
        "chip_size": CHIP_SIZE,
        "chip_padding": CHIP_PADDING,
        "channel_means": [round(float(m), 3) for m in CHANNEL_MEANS],
        "input_scale": INPUT_SCALE,
        "signature_name": SIGNATURE_NAME,
        "input_name": INPUT_NAME,
        "stem": file_stem(version),
        "temperature": float(getattr(version, "temperature", 1.0)),
    }


def model_card_markdown(version: ModelVersion, language: str | None = None) -> str:
    """The model card as Markdown (in ``language``, default: the active language)."""
    context = card_context(version)
    if language is None:
        text = render_to_string("predictor/model_card.md", context)
    else:
        with translation.override(language):
            text = render_to_string("predictor/model_card.md", context)
    # Templates leave runs of blank lines where blocks are skipped.
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def markdown_to_html(text: str) -> str:
    """HTML for the Markdown subset the model card uses (headings, paragraphs, lists,
    tables, code blocks, inline code). Every piece of text is escaped first."""
    from django.utils.html import escape

    def inline(value: str) -> str:
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(value))

    html: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            block = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                block.append(lines[i])
                i += 1
            html.append(f"<pre><code>{escape(chr(10).join(block))}</code></pre>")
        elif heading := re.match(r"^(#{1,4}) (.*)$", line):
            level = len(heading[1]) + 1  # the page's own <h1> is the title
            html.append(f"<h{level}>{inline(heading[2])}</h{level}>")
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{inline(lines[i][2:])}</li>")
                i += 1
            html.append(f"<ul>{''.join(items)}</ul>")
            continue
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                cells = [cell.strip() for cell in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-+:?", cell) for cell in cells):
                    rows.append(cells)
                i += 1
            head, *body = rows or [[]]
            html.append(
                '<table class="metrics"><thead><tr>'
                + "".join(f"<th>{inline(cell)}</th>" for cell in head)
                + "</tr></thead><tbody>"
                + "".join(
                    "<tr>" + "".join(f"<td>{inline(cell)}</td>" for cell in row) + "</tr>"
                    for row in body
                )
                + "</tbody></table>"
            )
            continue
        elif line.strip():
            paragraph = [line]
            while (
                i + 1 < len(lines)
                and lines[i + 1].strip()
                and not re.match(r"^(#|- |\||```)", lines[i + 1])
            ):
                i += 1
                paragraph.append(lines[i])
            html.append(f"<p>{inline(' '.join(paragraph))}</p>")
        i += 1
    return "\n".join(html)


# --- Building (TensorFlow: workers and management commands only) -------------------------


def signature_description(network: AgeNetwork) -> dict[str, Any]:
    """The machine-readable description of the export's signature (``signature.json``)."""
    return {
        "signature": SIGNATURE_NAME,
        "inputs": {
            INPUT_NAME: {
                "shape": [None, CHIP_SIZE, CHIP_SIZE, 3],
                "dtype": "uint8",
                "layout": "NHWC",
                "color_order": "RGB",
                "value_range": [0, 255],
                "normalization": "done inside the model: (pixels - channel_means) * scale",
                "channel_means": [float(m) for m in CHANNEL_MEANS],
                "scale": float(INPUT_SCALE),
                "alignment": (
                    "dlib 5-point landmarks (shape_predictor_5_face_landmarks.dat), then "
                    f"dlib.get_face_chip_details(shape, {CHIP_SIZE}, {CHIP_PADDING}) and "
                    "dlib.extract_image_chip"
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

    @tf.function(
        input_signature=[tf.TensorSpec((None, CHIP_SIZE, CHIP_SIZE, 3), tf.uint8, name=INPUT_NAME)],
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
        paths = ExportPaths(directory, stem)
        _zip_folder(
            paths.savedmodel_zip,
            {
                f"{stem}-savedmodel/saved_model": savedmodel_dir,
                f"{stem}-savedmodel/{CARD_NAME}": card.encode(),
                f"{stem}-savedmodel/{SIGNATURE_FILE}": signature,
            },
        )
        _zip_folder(
            paths.tflite_zip,
            {
                f"{stem}-tflite/{stem}.tflite": tflite,
                f"{stem}-tflite/{CARD_NAME}": card.encode(),
                f"{stem}-tflite/{SIGNATURE_FILE}": signature,
            },
        )
    return {
        "parity": parity,
        "bytes": {fmt: paths.archive(fmt).stat().st_size for fmt in FORMATS},
    }


def random_check_chips(count: int = 8, seed: int = 0) -> np.ndarray:
    """Chips for the build-time parity check: noise, plus flat and extreme images.

    Real faces are checked by the test suite; here any input exercises every layer.
    """
    rng = np.random.default_rng(seed)
    chips = rng.integers(0, 256, (count, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    chips[0] = 0
    chips[1] = 255
    chips[2] = np.asarray(CHANNEL_MEANS, dtype=np.float32).round().astype(np.uint8)
    return chips


def build_exports(version: ModelVersion, force: bool = False) -> ExportPaths:
    """Build (or find already built) the exports of ``version`` under MEDIA_ROOT/exports.

    Older exports of the same version (stale card metrics) are removed after a build.
    On failure the reason is written next to the export folder for the page to show, and
    :class:`ExportError` is raised.
    """
    from predictor.serving import load_network

    paths = export_paths(version)
    if paths.ready() and not force:
        return paths
    # The card inside the download is the English one; the page shows it translated.
    card = model_card_markdown(version, language=settings.LANGUAGE_CODE)
    root = paths.directory.parent
    root.mkdir(parents=True, exist_ok=True)
    # A private, hidden folder per build: a second build at the same time cannot disturb it.
    building = Path(tempfile.mkdtemp(dir=root, prefix=f".{paths.directory.name}.building-"))
    try:
        network = load_network(version)
        report = write_exports(network, building, paths.stem, card, random_check_chips())
    except Exception as error:
        shutil.rmtree(building, ignore_errors=True)
        reason = f"{error.__class__.__name__}: {error}"
        paths.error_file.write_text(reason, encoding="utf-8")
        if isinstance(error, ExportError):
            raise
        raise ExportError(reason) from error
    if force:
        shutil.rmtree(paths.directory, ignore_errors=True)
    try:
        building.rename(paths.directory)
    except OSError:
        # Another build finished first (the folder exists and is not empty): keep that one.
        shutil.rmtree(building, ignore_errors=True)
        if not paths.ready():
            raise ExportError(f"could not move the export into {paths.directory}") from None
    paths.error_file.unlink(missing_ok=True)
    for old in root.glob(f"v{version.pk}-*"):  # stale exports (hidden build folders excluded)
        if old.name != paths.directory.name:
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    logger.info("exported %s: %s", version.name, report)
    return paths
