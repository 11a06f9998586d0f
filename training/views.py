"""Staff pages for training runs: live progress, learning curves, cancel."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from faceage_site import i18n
from predictor import charts
from training.models import TrainingRun


def progress_payload(run: TrainingRun) -> dict:
    return {
        "id": run.pk,
        "status": run.status,
        "stage": run.stage,
        "status_display": run.get_status_display(),
        "stage_display": i18n.translate_reason(run.stage),
        "epoch": run.epoch,
        "epochs": run.epochs,
        "step": run.step,
        "steps_per_epoch": run.steps_per_epoch,
        "progress": run.progress,
        "eta_seconds": run.eta_seconds,
        "history": run.history,
        "error": i18n.translate_reason(run.error),
        "log_tail": run.log.splitlines()[-15:],
        "model_version": run.model_version.name if run.model_version else None,
    }


@staff_member_required
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(
        TrainingRun.objects.select_related("dataset", "model_version"), pk=run_id
    )
    return render(request, "training/run_detail.html", {"run": run})


@staff_member_required
@require_GET
def run_progress(request: HttpRequest, run_id: int) -> JsonResponse:
    return JsonResponse(progress_payload(get_object_or_404(TrainingRun, pk=run_id)))


@staff_member_required
@require_GET
def run_curves(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=run_id)
    response = HttpResponse(charts.learning_curves(run.history), content_type="image/svg+xml")
    response["Cache-Control"] = "no-store"
    return response


@staff_member_required
@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=run_id)
    if run.status == TrainingRun.Status.QUEUED:
        TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED).update(
            status=TrainingRun.Status.CANCELLED, error=i18n.TRAINING_CANCELLED_EARLY
        )
    elif not run.is_terminal:
        TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)
        messages.info(request, _("Cancelling: the run stops at its next progress report."))
    return redirect(run)
