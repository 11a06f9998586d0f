"""REST API under /api/v1/."""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext, gettext_noop
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotAuthenticated, NotFound, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response

from predictor import finished
from predictor.api.batches import create_batch_response, is_batch_request
from predictor.api.errors import Conflict, UnusableImage
from predictor.api.parsers import JSONParser
from predictor.api.serializers import (
    AgeLabelSerializer,
    ErrorSerializer,
    ModelVersionSerializer,
    PredictionSerializer,
    PredictionUploadSerializer,
    distribution_requested,
)
from predictor.converters import ModelNameConverter
from predictor.drawn_boxes import BoxesRejected, parse_boxes
from predictor.messages import rejection_message
from predictor.models import (
    FACES_CHANGED,
    AgeLabel,
    Batch,
    ModelVersion,
    PhotoNotFinished,
    Prediction,
)
from predictor.throttling import UploadRateThrottle
from predictor.uploads import create_prediction
from predictor.vision.image_loading import ImageRejected

# Codes for which the request itself is too big rather than merely unusable.
_TOO_LARGE = {"file_too_large": 413, "too_many_pixels": 413}

_errors = {
    400: OpenApiResponse(ErrorSerializer, description="Missing or unusable image"),
    404: OpenApiResponse(ErrorSerializer, description="Not found (or not yours)"),
    413: OpenApiResponse(ErrorSerializer, description="File or image too large"),
    403: OpenApiResponse(ErrorSerializer, description="Staff only"),
    409: OpenApiResponse(
        ErrorSerializer, description="The photo is running (again): label it once it has finished"
    ),
    401: OpenApiResponse(
        ErrorSerializer,
        description="An anonymous change without the site's CSRF cookie and token: send a token",
    ),
}


BOXES_NEED_ONE_PHOTO = gettext_noop(
    "'boxes' goes with one photo: send a batch without it, or each photo on its own."
)

# The upload's short answer (202, without wait): where to follow the prediction.
QUEUED_ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "status": {"type": "string"},
        "url": {"type": "string", "format": "uri"},
    },
    "required": ["id", "status", "url"],
}

WAIT_NEEDS_ONE_PHOTO = gettext_noop(
    "'wait' goes with one photo: send a batch without it and follow it at "
    "GET /api/v1/batches/<id>/, or send each photo on its own."
)

MAX_WAIT_SECONDS = 30
# How many `?wait=` long-polls one web process holds at once (docs/api.md).
_waiting = threading.BoundedSemaphore(settings.FACEAGE_MAX_WAITING_REQUESTS)
RETRY_AFTER_BUSY_SECONDS = 1


def wait_seconds(raw: str | None) -> float:
    """The `wait` query parameter: whole seconds, 0 to MAX_WAIT_SECONDS."""
    if raw is None or raw == "":
        return 0
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_WAIT_SECONDS:
        raise ValidationError(
            {
                "wait": [
                    gettext("'wait' must be a whole number of seconds from 0 to %(max)s.")
                    % {"max": MAX_WAIT_SECONDS}
                ]
            }
        )
    return value


# A long-poll's checks of the row: the first pause, and the longest (each is 1.5 times the one
# before).
WAIT_CHECK_SECONDS = (0.05, 0.5)


def wait_until_terminal(prediction_id, seconds: float) -> None:
    """Hold the request until the prediction is terminal (or gone), or ``seconds`` pass.

    Wakes the moment the worker announces the prediction finished (predictor.finished), and
    otherwise checks one indexed column at growing intervals, first after 50 ms and then at
    most every half second: an announcement lost on the way only makes the answer as late as
    those checks. Far cheaper for the server than a client re-requesting the whole
    representation in a loop."""
    deadline = time.monotonic() + seconds
    pause, longest = WAIT_CHECK_SECONDS
    with finished.watch(prediction_id) as announced:
        while True:
            found = Prediction.objects.filter(pk=prediction_id).values_list("status", flat=True)
            current = found.first()
            if current is None or current in Prediction.TERMINAL:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            announced.wait(min(pause, left))
            announced.clear()
            pause = min(pause * 1.5, longest)


# The query parameters of one prediction's representation (GET, and an upload with wait).
WAIT_PARAMETER = OpenApiParameter(
    "wait", int, description="Seconds to wait for a terminal status (0-30, default 0)"
)
DISTRIBUTION_PARAMETER = OpenApiParameter(
    "distribution",
    str,
    enum=["0", "1", "true", "false"],
    description="1: include each face's age distribution (101 probabilities)",
)


@extend_schema_view(
    list=extend_schema(
        summary="Your predictions, newest first",
        parameters=[DISTRIBUTION_PARAMETER],
        # 404: a page number past the last page.
        responses={200: PredictionSerializer(many=True), 400: _errors[400], 404: _errors[404]},
    ),
    retrieve=extend_schema(
        summary="One prediction",
        description=(
            "With `wait=N` (0-30 seconds), the answer is held until the prediction is "
            "finished or N seconds have passed, so a client needs no tight polling loop."
        ),
        parameters=[WAIT_PARAMETER, DISTRIBUTION_PARAMETER],
        responses={200: PredictionSerializer, 400: _errors[400], 404: _errors[404]},
    ),
    destroy=extend_schema(
        summary="Delete a prediction and its photo",
        responses={204: None, 401: _errors[401], 404: _errors[404]},
    ),
)
class PredictionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = PredictionSerializer
    parser_classes = [MultiPartParser, FormParser]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if self.action in ("list", "retrieve", "create"):
            distribution_requested(request)  # a bad ?distribution= is a 400 before any work

    def get_throttles(self):
        if self.action == "create":
            return [UploadRateThrottle()]
        return super().get_throttles()

    def get_queryset(self):
        # Someone else's id is a 404, not a 403: ids of others are not confirmed.
        return (
            Prediction.objects.owned_by(self.request)
            .prefetch_related("faces", "faces__label")
            .select_related("model_version")
        )

    @extend_schema(
        summary="Upload a photo; its faces are estimated in the background",
        description=(
            "Several `image` parts, an `archive` part (a zip) or a zip in `image` make a "
            "batch: the 202 answer then has `batch`, `predictions` and `errors` "
            "(see GET /api/v1/batches/{id}/ and docs/api.md). With `wait=N` (0-30 seconds, one "
            "photo only), the answer is held until the prediction is finished or N seconds have "
            "passed, and it is the whole prediction, as GET gives it: 201 once it is finished, "
            "202 while it still runs (check `status`)."
        ),
        request=PredictionUploadSerializer,
        parameters=[WAIT_PARAMETER, DISTRIBUTION_PARAMETER],
        responses={
            201: OpenApiResponse(
                PredictionSerializer, description="With wait: the finished prediction"
            ),
            # Without wait, the short answer; with it, the whole prediction: either one.
            202: OpenApiResponse(
                {"anyOf": [QUEUED_ANSWER_SCHEMA, {"$ref": "#/components/schemas/Prediction"}]},
                description="Queued: id, status and url; with wait, the whole prediction, "
                "still queued or running (ask again at url)",
            ),
            400: _errors[400],
            401: _errors[401],
            404: OpenApiResponse(
                ErrorSerializer, description="With wait: the photo was deleted during the wait"
            ),
            413: _errors[413],
        },
    )
    def create(self, request, *args, **kwargs):
        # Checked before the upload is read or stored (distribution too, in initial()).
        wait = wait_seconds(request.query_params.get("wait"))
        try:
            boxes = parse_boxes(request.data.get("boxes"))
        except BoxesRejected as rejected:
            raise UnusableImage(rejected.code, rejection_message(rejected), "boxes") from None
        if is_batch_request(request):  # several photos or a zip: predictor/api/batches.py
            if boxes:
                raise UnusableImage("invalid_boxes", gettext(BOXES_NEED_ONE_PHOTO), "boxes")
            if wait:
                raise ValidationError({"wait": [gettext(WAIT_NEEDS_ONE_PHOTO)]})
            return create_batch_response(self, request)
        upload = PredictionUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        try:
            prediction = create_prediction(request, upload.validated_data["image"], boxes)
        except ImageRejected as rejected:
            raise UnusableImage(
                rejected.code,
                rejection_message(rejected),
                "boxes" if isinstance(rejected, BoxesRejected) else "image",
                http_status=_TOO_LARGE.get(rejected.code, 400),
            ) from rejected
        location = request.build_absolute_uri(
            reverse("api:prediction-detail", args=[prediction.pk])
        )
        headers = {"Location": location}
        if wait:
            # One round trip: the whole representation, 201 once the prediction is finished,
            # 202 while it still runs (after the wait, or at once past the cap of waits).
            waited = self.waited(prediction, wait, headers)
            if waited is None:  # deleted during the wait (by its owner, elsewhere): as GET
                raise NotFound()
            done = waited.is_terminal
            return Response(
                self.get_serializer(waited).data,
                status=status.HTTP_201_CREATED if done else status.HTTP_202_ACCEPTED,
                headers=headers,
            )
        body = {"id": str(prediction.pk), "status": prediction.status, "url": location}
        return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)

    def waited(self, prediction: Prediction, wait: float, headers: dict) -> Prediction | None:
        """The prediction after waiting up to ``wait`` seconds for it to finish, read again
        (None if it was deleted meanwhile). A long-poll holds a web thread: past the cap, it
        is returned at once and ``headers`` gets Retry-After (when to ask again), so waits can
        never take every thread of a process."""
        if prediction.is_terminal:
            return prediction
        if not _waiting.acquire(blocking=False):
            headers["Retry-After"] = str(RETRY_AFTER_BUSY_SECONDS)
            return prediction
        try:
            wait_until_terminal(prediction.pk, wait)
        finally:
            _waiting.release()
        return self.get_queryset().filter(pk=prediction.pk).first()

    def retrieve(self, request, *args, **kwargs):
        wait = wait_seconds(request.query_params.get("wait"))
        prediction = self.get_object()  # the owner check comes first
        headers: dict[str, str] = {}
        if wait:
            prediction = self.waited(prediction, wait, headers) or self.get_object()  # 404
        return Response(self.get_serializer(prediction).data, headers=headers)

    def perform_destroy(self, instance: Prediction) -> None:
        instance.delete_with_files()

    @extend_schema(
        methods=["POST"],
        summary="Give a face's real age (logged-in owners)",
        description=(
            '`{"age": 34, "consent": true}`. Every label counts towards the model\'s live '
            "accuracy; only with `consent: true` may the face be used to train a model. Send "
            "`consent: false` to withdraw it, or DELETE to remove the label. Faces are "
            "numbered from 0 in the order of `faces`. While the photo runs (again, after a "
            "face was marked on it, say) a label is refused with a 409 `not_finished`."
        ),
        request=AgeLabelSerializer,
        responses={
            200: AgeLabelSerializer,
            400: _errors[400],
            401: _errors[401],
            404: _errors[404],
            409: _errors[409],
        },
    )
    @extend_schema(
        methods=["DELETE"],
        summary="Remove a face's real age",
        responses={204: None, 400: _errors[400], 401: _errors[401], 404: _errors[404]},
    )
    @action(
        detail=True,
        methods=["post", "delete"],
        url_path=r"faces/(?P<index>[0-9]+)/label",
        parser_classes=[JSONParser, FormParser, MultiPartParser],
    )
    def label(self, request, pk=None, index=None, format=None):
        if not request.user.is_authenticated:
            raise NotAuthenticated(
                gettext("Log in to give a face's real age: labels belong to an account.")
            )
        prediction = self.get_object()
        face = prediction.faces.filter(index=int(index)).first()
        if face is None:
            count = prediction.faces.count()
            raise ValidationError(
                {
                    "index": [
                        gettext("This photo has no face %(index)s.") % {"index": index}
                        + " "
                        + (
                            gettext("Its faces are numbered 0 to %(last)s.") % {"last": count - 1}
                            if count
                            else gettext("No face was found in it.")
                        )
                    ]
                },
                code="no_such_face",
            )
        if request.method == "DELETE":
            AgeLabel.objects.filter(face=face).delete()
            return Response(status=status.HTTP_204_NO_CONTENT)
        given = AgeLabelSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            label = AgeLabel.give(face, request.user, **given.validated_data)
        except PhotoNotFinished:
            raise Conflict(gettext(FACES_CHANGED)) from None
        return Response(AgeLabelSerializer(label).data)

    @extend_schema(
        summary="Delete all of your predictions and photos",
        responses={204: None, 401: _errors[401]},
    )
    @action(detail=False, methods=["delete"], url_path="all")
    def delete_all(self, request, *args, **kwargs):
        for prediction in self.get_queryset():
            prediction.delete_with_files()
        Batch.objects.owned_by(request).delete()  # nothing left in them
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        summary="Model versions; one is active (metrics without the test scatter)",
        # 404: a page number past the last page.
        responses={200: ModelVersionSerializer(many=True), 404: _errors[404]},
    ),
    retrieve=extend_schema(
        summary="One model version, with every metric and the test scatter",
        responses={200: ModelVersionSerializer, 404: _errors[404]},
    ),
)
class ModelVersionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = ModelVersionSerializer
    queryset = ModelVersion.objects.all()
    lookup_field = "name"
    lookup_value_regex = ModelNameConverter.regex  # no NUL, as in every URL with a name

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "compact": self.action == "list"}

    @extend_schema(
        summary="Live accuracy against people's labels (staff)",
        description=(
            "The version's MAE, CS@5 and bias (mean signed error, years; positive: too old) "
            "against the real ages people gave, overall, per ISO week of upload and per decade "
            "of real age; `drift` is the excess over its test MAE when above "
            "FACEAGE_LIVE_DRIFT_MARGIN over at least FACEAGE_LIVE_MIN_LABELS labels."
        ),
        responses={
            200: OpenApiTypes.OBJECT,
            401: _errors[401],
            403: _errors[403],
            404: _errors[404],
        },
    )
    @action(
        detail=True, methods=["get"], url_path="live-accuracy", permission_classes=[IsAdminUser]
    )
    def live_accuracy(self, request, name=None, format=None):
        from predictor.live_accuracy import live_accuracy, shadow_comparison

        version = self.get_object()
        return Response({**live_accuracy(version), "shadow": shadow_comparison(version)})
