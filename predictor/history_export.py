"""Your history as a file: CSV (one row per face) and JSON (one object per photo), for the
person who owns it, from a link on the history page."""

from __future__ import annotations

import csv
import io
import json

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from predictor.models import Prediction

COLUMNS = [
    "uploaded_at", "file_name", "status", "face", "age", "age_low", "age_high",
    "real_age", "model_version", "error",
]  # fmt: skip


def _safe_cell(value):
    """A spreadsheet must not run a file name as a formula (CSV injection): text that a
    spreadsheet would read as one gets a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _predictions(request: HttpRequest):
    return (
        Prediction.objects.owned_by(request)
        .order_by("-created_at")
        .select_related("model_version")
        .prefetch_related("faces", "faces__label")
    )


def _faces(prediction: Prediction) -> list[dict]:
    faces = []
    for face in prediction.faces.all():
        label = getattr(face, "label", None)
        faces.append(
            {
                "face": face.index + 1,
                "box": face.box,
                "age": round(face.age, 1),
                "age_low": face.age_low,
                "age_high": face.age_high,
                "real_age": label.age if label is not None else None,
            }
        )
    return faces


def _attachment(content: str, content_type: str, name: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@never_cache
@require_GET
def history_csv(request: HttpRequest) -> HttpResponse:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for prediction in _predictions(request):
        common = {
            "uploaded_at": prediction.created_at.isoformat(),
            "file_name": prediction.original_name,
            "status": prediction.status,
            "model_version": prediction.model_version.name if prediction.model_version else "",
            "error": prediction.error_message,
        }
        for face in _faces(prediction) or [{}]:  # a photo without faces: one row all the same
            row = {**common, **face}
            writer.writerow([_safe_cell("" if row.get(c) is None else row.get(c)) for c in COLUMNS])
    return _attachment(buffer.getvalue(), "text/csv; charset=utf-8", "faceage-history.csv")


@never_cache
@require_GET
def history_json(request: HttpRequest) -> HttpResponse:
    photos = [
        {
            "id": str(prediction.pk),
            "uploaded_at": prediction.created_at.isoformat(),
            "file_name": prediction.original_name,
            "status": prediction.status,
            "model_version": prediction.model_version.name if prediction.model_version else None,
            "error": prediction.error_message,
            "faces": _faces(prediction),
        }
        for prediction in _predictions(request)
    ]
    content = json.dumps({"photos": photos}, ensure_ascii=False, indent=1)
    return _attachment(content, "application/json", "faceage-history.json")
