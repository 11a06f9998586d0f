"""The staff console (/staff/): the active model, the candidates beside it with Promote and
Roll back, the training runs with live progress, and a button to train a new model.

The same actions as the admin's (``ModelVersion.promote``, ``ModelVersion.rollback_target``),
on one page made for the job rather than a list of admin actions.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from predictor.models import ModelVersion, NothingToRollBackTo, PromotionNeedsReason
from training.models import TrainingRun

CANDIDATES_SHOWN = 6
RUNS_SHOWN = 10
DECADES = ["0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"]
CHART_HEIGHT = 48  # pixels of the tallest per-decade bar


def _decade_mae(metrics: dict, decade: str) -> float | None:
    """Test MAE of one decade of true ages; "70+" pools every decade from 70 up."""
    by_decade = metrics.get("mae_by_decade") or {}
    if decade != "70+":
        entry = by_decade.get(decade)
        return entry.get("mae") if isinstance(entry, dict) else None
    old = [
        entry
        for key, entry in by_decade.items()
        if isinstance(entry, dict) and int(key.split("-")[0]) >= 70 and entry.get("count")
    ]
    total = sum(entry["count"] for entry in old)
    return sum(entry["mae"] * entry["count"] for entry in old) / total if total else None


def model_row(version: ModelVersion) -> dict:
    """What the console shows of one version: its test-split figures and gate verdict."""
    metrics = version.metrics or {}
    return {
        "version": version,
        "dataset": metrics.get("dataset", ""),
        "mae": version.test_mae,
        "cs5": metrics.get("cs5"),
        "children": version.test_figure("mae_children_0_12"),
        "count": metrics.get("count"),
        "decades": [(decade, _decade_mae(metrics, decade)) for decade in DECADES],
        "regressions": version.gate_regressions,
        "gate_judged": "gate" in metrics and "active_model" in (metrics.get("gate") or {}),
    }


def with_bar_heights(rows: list[dict]) -> list[dict]:
    """Scale every per-decade bar to the largest MAE among the rows shown, so that the
    charts side by side compare."""
    values = [mae for row in rows for _, mae in row["decades"] if mae is not None]
    top = max(values, default=0) or 1.0
    for row in rows:
        bars = [
            {
                "decade": decade,
                "mae": mae,
                "height": 0 if mae is None else max(1, round(CHART_HEIGHT * mae / top)),
                "x": 4 + index * 22,
                "label": decade.split("-")[0],  # the axis says 0, 10, 20 ... 70+
            }
            for index, (decade, mae) in enumerate(row["decades"])
        ]
        for bar in bars:
            bar["y"] = CHART_HEIGHT - bar["height"]
        row["bars"] = bars
    return rows


# Staff who may change model versions, as the admin's Promote and Roll back actions require.
MAY_CHANGE_MODELS = permission_required("predictor.change_modelversion", raise_exception=True)


@staff_member_required
@MAY_CHANGE_MODELS
@require_GET
def console(request: HttpRequest) -> HttpResponse:
    active = ModelVersion.active()
    candidates = list(
        ModelVersion.objects.filter(is_active=False).order_by("-created_at")[:CANDIDATES_SHOWN]
    )
    rows = with_bar_heights([model_row(active)] + [model_row(v) for v in candidates])
    runs = TrainingRun.objects.select_related("dataset", "model_version").order_by("-pk")[
        :RUNS_SHOWN
    ]
    context = {
        "active": rows[0],
        "candidates": rows[1:],
        "previous": ModelVersion.rollback_target(),
        "runs": runs,
        "chart_height": CHART_HEIGHT,
        "start_url": reverse("admin:training_trainingrun_start"),
    }
    return render(request, "training/staff.html", context)


@staff_member_required
@MAY_CHANGE_MODELS
@require_POST
def promote(request: HttpRequest, name: str) -> HttpResponse:
    version = get_object_or_404(ModelVersion, name=name)
    try:
        version.promote(request.POST.get("reason", ""))
    except PromotionNeedsReason:
        messages.error(
            request,
            _(
                "%(name)s is worse than the active model on a benchmark: write why you "
                "promote it all the same."
            )
            % {"name": version.name},
        )
        return redirect(reverse("staff-console") + f"#candidate-{version.pk}")
    messages.success(request, _("%(name)s is now active.") % {"name": version.name})
    return redirect("staff-console")


@staff_member_required
@MAY_CHANGE_MODELS
@require_POST
def roll_back(request: HttpRequest) -> HttpResponse:
    """Make the version active before ``from`` (the active one the page showed) active
    again. When ``from`` is no longer active, a second click or someone else did it first,
    and nothing changes."""
    seen = request.POST.get("from", "")
    try:
        previous = ModelVersion.roll_back_from(seen)
    except NothingToRollBackTo:
        messages.error(request, _("No earlier active version to roll back to."))
        return redirect("staff-console")
    if previous is None:
        messages.info(
            request,
            _(
                "Nothing changed: %(name)s is the active version now. "
                "Look again before rolling back."
            )
            % {"name": ModelVersion.active().name},
        )
    else:
        messages.success(
            request, _("Rolled back: %(name)s is active again.") % {"name": previous.name}
        )
    return redirect("staff-console")
