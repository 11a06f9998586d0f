"""The model card: what a version was trained on, how it measures, what it is for.

One context, two Django templates: ``training/model_card.md`` (inside each download and at
``/models/<name>/card.md``) and ``training/model_card.html`` (on the model page). Both escape
what they are given; no Markdown is parsed. No TensorFlow here: the web process renders cards.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.template.loader import render_to_string
from django.utils import translation

from predictor.vision.bundled_models import CHANNEL_MEANS, CHIP_PADDING, INPUT_SCALE
from training.export import INPUT_NAME, SIGNATURE_NAME, file_stem

if TYPE_CHECKING:
    from predictor.models import ModelVersion


def _rows(table: dict | None) -> list[dict[str, Any]]:
    return [
        {"group": group, "mae": row.get("mae"), "count": row.get("count")}
        for group, row in (table or {}).items()
        if isinstance(row, dict)
    ]


def evaluation(version: ModelVersion) -> dict[str, Any] | None:
    """The version's test-split metrics and where they come from.

    A trained version carries its own. The bundled network has none of its own, but every
    training run measures the active model on its test split as a baseline: the latest such
    measurement of this version is used.
    """
    from training.models import TrainingRun

    metrics = version.metrics or {}
    if metrics.get("mae") is not None:
        return {"metrics": metrics, "dataset": metrics.get("dataset", ""), "run": None}
    run = (
        TrainingRun.objects.filter(baseline_metrics__model_version=version.name)
        .select_related("dataset")
        .order_by("-finished_at", "-pk")
        .first()
    )
    if run is None or run.baseline_metrics.get("mae") is None:
        return None
    return {"metrics": run.baseline_metrics, "dataset": run.dataset.name, "run": run.pk}


def _training_data(version: ModelVersion) -> dict[str, Any]:
    from training.models import Dataset

    metrics = version.metrics or {}
    if version.is_bundled:
        return {"bundled": True}
    if version.is_shipped:
        from predictor.vision.bundled_models import shipped_model_card

        card = shipped_model_card(version.shipped_name)
        # A version that serves another shipped network's weights with a second opinion
        # (faceage-v6, faceage-v7, faceage-v8): that network's training is the one described.
        network_card = shipped_model_card(card.get("weights") or version.shipped_name)
        training = network_card["training"]
        return {
            "bundled": False,
            "dataset": network_card["training_data"]["dataset"],
            "train_images": network_card["training_data"]["train_faces"],
            "weights_of": card.get("weights") or "",
            "epochs_run": training["epochs_run"],
            "best_epoch": training["best_epoch"],
            # A soup (build_bundled_model --soup N --soup-with NAME): the first member's
            # figures above, the other members and the shipped networks that joined beside them.
            "soup": 1 + len(training.get("soup") or []) + len(training.get("soup_with") or []),
            "soup_with": ", ".join(training.get("soup_with") or []),
            # build_bundled_model --start NAME: it continued a shipped network's training.
            "start_network": training.get("start_network") or "",
            # ... and its weights are the mean of that fine-tune's and shipped networks' only
            # (no other seeds), so "each trained the same way" would not be true.
            "soup_of_fine_tune": bool(
                training.get("start_network")
                and training.get("soup_with")
                and not training.get("soup")
            ),
        }
    data: dict[str, Any] = {"bundled": False, "dataset": metrics.get("dataset", "")}
    data.update(metrics.get("training") or {})
    if data["dataset"]:
        found = Dataset.objects.filter(name=data["dataset"]).first()
        if found is not None:
            data["kind"] = found.get_kind_display()
            data["splits"] = found.split_counts()
            dropped = (found.report or {}).get("dropped") or {}
            data["dropped"] = sum(int(count) for count in dropped.values())
    return data


def card_context(version: ModelVersion) -> dict[str, Any]:
    """Everything the model card says, computed from the database."""
    measured = evaluation(version)
    metrics = measured["metrics"] if measured else {}
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
        "evaluation": measured,
        "metrics": metrics,
        "decades": decades,
        "genders": genders,
        "worst_decade": worst,
        "best_decade": best,
        "num_classes": classes[0],
        "class_ages": classes[1],
        "age_range": classes[2],
        "chip_size": version.chip_size,
        "chip_padding": CHIP_PADDING,
        "channel_means": [round(float(m), 3) for m in CHANNEL_MEANS],
        "input_scale": INPUT_SCALE,
        "signature_name": SIGNATURE_NAME,
        "input_name": INPUT_NAME,
        "stem": file_stem(version),
        "temperature": float(getattr(version, "temperature", 1.0)),
        "second_opinion": getattr(version, "second_opinion", None) or {},
    }


def _render(template: str, version: ModelVersion, language: str | None) -> str:
    context = card_context(version)
    if language is None:
        return render_to_string(template, context)
    with translation.override(language):
        return render_to_string(template, context)


def model_card_markdown(version: ModelVersion, language: str | None = None) -> str:
    """The model card as Markdown (in ``language``, default: the active language)."""
    text = _render("training/model_card.md", version, language)
    # Templates leave runs of blank lines where blocks are skipped.
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def model_card_html(version: ModelVersion, language: str | None = None) -> str:
    """The same card as HTML for the model page (autoescaped like any page)."""
    return _render("training/model_card.html", version, language)
