"""Model downloads and model cards: public, like the model pages.

The model card and the downloads are public: faceage is a public product, the bundled
weights are CC0, and a card is most useful to people deciding whether to use a model.
(A fine-tuned version's card names the terms of its training data.) The web process only
serves files a worker built (training.export.tasks); it never imports TensorFlow.
"""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from jobs.models import JobStatus
from predictor.models import ModelVersion
from training.export import FORMATS
from training.export.card import model_card_markdown
from training.export.files import export_files
from training.export.tasks import (
    RETRY_FAILED_AFTER_SECONDS,
    find_export_row,
    recent_failure,
    request_export,
)

PENDING_RETRY_SECONDS = 15


def export_status(version: ModelVersion) -> dict:
    """``{"state": "ready" | "failed" | "missing", "error": str}`` for a version's exports."""
    files = export_files(version)
    if files.ready():
        return {"state": "ready", "error": ""}
    row = find_export_row(version, files.key)
    if row is not None and row.status == JobStatus.FAILED:
        return {"state": "failed", "error": row.error_message}
    return {"state": "missing", "error": ""}


@require_GET
def model_card(request: HttpRequest, name: str) -> HttpResponse:
    """The model card as Markdown, in the visitor's language."""
    version = get_object_or_404(ModelVersion, name=name)
    response = HttpResponse(
        model_card_markdown(version), content_type="text/markdown; charset=utf-8"
    )
    response["Content-Disposition"] = (
        f'inline; filename="{export_files(version).stem}-MODEL_CARD.md"'
    )
    return response


@require_GET
def model_download(request: HttpRequest, name: str, fmt: str) -> HttpResponseBase:
    """The zip of a version's SavedModel or TFLite export, or a page saying it is being built."""
    if fmt not in FORMATS:
        raise Http404(_("Unknown export format."))
    version = get_object_or_404(ModelVersion, name=name)
    files = export_files(version)
    manifest = files.built()
    if manifest is not None:
        try:
            handle = files.storage.open(manifest["files"][fmt], "rb")
        except OSError:
            pass  # removed since the check: built again below
        else:
            return FileResponse(
                handle,
                as_attachment=True,
                filename=files.download_name(fmt),
                content_type="application/zip",
            )
    row = find_export_row(version, files.key)
    if row is not None and recent_failure(row):
        failure = row.error_message
        response = render(
            request,
            "training/export_pending.html",
            {
                "version": version,
                "format": fmt,
                "failure": True,
                # The reason may name server paths: staff only.
                "reason": failure if request.user.is_staff else "",
            },
            status=503,
        )
        response["Retry-After"] = str(RETRY_FAILED_AFTER_SECONDS)
        return response
    if request_export(version, files.key) == "unavailable":
        response = render(
            request,
            "training/export_pending.html",
            {"version": version, "format": fmt, "unavailable": True},
            status=503,
        )
        response["Retry-After"] = "60"
        return response
    response = render(
        request,
        "training/export_pending.html",
        {"version": version, "format": fmt, "retry_seconds": PENDING_RETRY_SECONDS},
        status=202,
    )
    response["Retry-After"] = str(PENDING_RETRY_SECONDS)
    return response
