"""Batches in the REST API: several photos (or a zip) in one POST, and a batch to poll.

``POST /api/v1/predictions/`` hands a request here when it carries more than one file, an
``archive`` part, or a zip in ``image`` (see ``is_batch_request``); one plain photo keeps the
single-upload response. The rules for what is skipped and what refuses the whole batch are
in predictor.archives and docs/api.md ("Batches").
"""

from __future__ import annotations

from typing import cast

from django.db.models import Count
from django.urls import reverse
from django.utils.translation import ngettext
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import Throttled
from rest_framework.response import Response

from faceage_site.errors import error_body
from predictor.api.serializers import ErrorSerializer, PredictionSerializer
from predictor.archives import BatchRejected, collect_batch_files, create_batch, is_archive
from predictor.models import Batch, Prediction
from predictor.throttling import UploadRateThrottle


def batch_uploads(request) -> list:
    return request.FILES.getlist("image") + request.FILES.getlist("archive")


def is_batch_request(request) -> bool:
    uploads = batch_uploads(request)
    if request.FILES.getlist("archive") or len(uploads) > 1:
        return True
    return len(uploads) == 1 and is_archive(uploads[0])


def batch_counts(batch: Batch) -> dict:
    counts = {choice: 0 for choice in Prediction.Status.values}
    rows = batch.predictions.values("status").annotate(n=Count("pk")).order_by()
    for row in rows:
        counts[row["status"]] = row["n"]
    return counts


def rejected_response(rejected: BatchRejected) -> Response:
    body = error_body(rejected.code, rejected.message, "image")
    if rejected.problems:
        body["error"]["files"] = [problem.as_dict() for problem in rejected.problems]
    return Response(body, status=rejected.http_status)


def create_batch_response(view, request) -> Response:
    """202 with the batch and one prediction per usable photo, or one error for the batch."""
    try:
        files = collect_batch_files(batch_uploads(request))
        throttle = UploadRateThrottle()
        # The request itself already counted one upload; every further photo counts too.
        if not throttle.allow_more(request, view, files.count - 1):
            raise Throttled(wait=throttle.wait())
        batch, predictions, problems = create_batch(request, files)
    except BatchRejected as rejected:
        return rejected_response(rejected)
    location = request.build_absolute_uri(reverse("api:batch-detail", args=[batch.pk]))
    body = {
        "batch": {"id": str(batch.pk), "url": location},
        "predictions": [
            {
                "name": prediction.original_name,
                "id": str(prediction.pk),
                "status": prediction.status,
                "url": request.build_absolute_uri(
                    reverse("api:prediction-detail", args=[prediction.pk])
                ),
            }
            for prediction in predictions
        ],
        "errors": [problem.as_dict() for problem in problems],
    }
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class BatchSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()
    total = serializers.SerializerMethodField()
    done = serializers.SerializerMethodField()
    summary = serializers.SerializerMethodField()
    predictions = serializers.SerializerMethodField()

    class Meta:
        model = Batch
        fields = ["id", "url", "created_at", "total", "counts", "done", "summary", "predictions"]

    def get_url(self, obj: Batch) -> str:
        return self.context["request"].build_absolute_uri(
            reverse("api:batch-detail", args=[obj.pk])
        )

    def _counts(self, obj: Batch) -> dict:
        cache = cast(dict, self.context).setdefault("_counts", {})  # this answer's own dict
        if obj.pk not in cache:
            cache[obj.pk] = batch_counts(obj)
        return cache[obj.pk]

    def get_counts(self, obj: Batch) -> dict[str, int]:
        return self._counts(obj)

    def get_total(self, obj: Batch) -> int:
        return sum(self._counts(obj).values())

    def get_done(self, obj: Batch) -> bool:
        counts = self._counts(obj)
        return counts[Prediction.Status.QUEUED] + counts[Prediction.Status.RUNNING] == 0

    def get_summary(self, obj: Batch) -> str:
        counts = self._counts(obj)
        finished = counts[Prediction.Status.SUCCEEDED] + counts[Prediction.Status.FAILED]
        total = sum(counts.values())
        return ngettext(
            "%(finished)s of %(total)s photo finished",
            "%(finished)s of %(total)s photos finished",
            total,
        ) % {"finished": finished, "total": total}

    def get_predictions(self, obj: Batch) -> list[dict]:
        predictions = (
            obj.predictions.order_by("created_at", "original_name")
            .prefetch_related("faces", "faces__label")
            .select_related("model_version")
        )
        return list(PredictionSerializer(predictions, many=True, context=self.context).data)


@extend_schema_view(
    retrieve=extend_schema(
        summary="A batch: counts by status, whether all are finished, and its predictions",
        responses={
            200: BatchSerializer,
            404: OpenApiResponse(ErrorSerializer, description="Not found (or not yours)"),
        },
    )
)
class BatchViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = BatchSerializer

    def get_queryset(self):
        # Another owner's batch is a 404, like another owner's prediction.
        return Batch.objects.owned_by(self.request)
