"""Staff pages for training runs: live progress, learning curves, cancel."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from training import charts
from training import messages as run_messages
from training.models import TrainingRun


def stage_text(run: TrainingRun) -> str:
    """The stage in the reader's language, with its own count where it has one: "preparing
    chips: 5,200 of 18,454"."""
    name = run.get_stage_display() if run.stage else ""
    if run.stage_total:
        return _("%(stage)s: %(done)s of %(total)s") % {
            "stage": name,
            "done": f"{run.stage_done:,}",
            "total": f"{run.stage_total:,}",
        }
    return name


def stage_progress(run: TrainingRun) -> float | None:
    """The stage's own share done (chips cut of how many), for a bar of its own beside the
    run's overall one; None when the stage has no count or the run has ended."""
    if not run.stage_total or run.is_terminal:
        return None
    return min(1.0, run.stage_done / run.stage_total)


def progress_payload(run: TrainingRun) -> dict:
    return {
        "id": run.pk,
        "status": run.status,
        "stage": run.stage,
        "status_display": run.get_status_display(),
        "stage_display": stage_text(run),
        "epoch": run.epoch,
        "epochs": run.epochs,
        "step": run.step,
        "steps_per_epoch": run.steps_per_epoch,
        "progress": run.progress,
        "stage_progress": stage_progress(run),
        "eta_seconds": run.eta_seconds,
        "history": run.history,
        "error": run.error_message,
        "error_code": run.error_code,
        "stage_done": run.stage_done,
        "stage_total": run.stage_total,
        "heartbeat_seconds": (
            max(0, round((timezone.now() - run.heartbeat_at).total_seconds()))
            if run.heartbeat_at and not run.is_terminal
            else None
        ),
        "step_losses": run.step_losses,
        "log_tail": run.translated_log()[-15:],
        "model_version": run.model_version.name if run.model_version else None,
    }


@staff_member_required
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(
        TrainingRun.objects.select_related("dataset", "model_version"), pk=run_id
    )
    context = {
        "run": run,
        "stage": stage_text(run),
        "stage_progress": stage_progress(run),
        "log_lines": run.translated_log(),
    }
    return render(request, "training/run_detail.html", context)


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
            status=TrainingRun.Status.CANCELLED,
            error_code=run_messages.CANCELLED_EARLY,
            error_params={},
            finished_at=timezone.now(),
        )
    elif not run.is_terminal:
        TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)
        messages.info(request, _("Cancelling: the run stops at its next progress report."))
    return redirect(run)
