from __future__ import annotations

from bisect import bisect_left
from typing import cast

from django.urls import reverse
from django.utils.translation import gettext, gettext_lazy
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from predictor.models import AgeLabel, Face, ModelVersion, Prediction

_YES = {"1", "true"}
_NO = {"", "0", "false"}


def distribution_requested(request) -> bool:
    """The ``distribution`` query parameter: 1/true or 0/false (any case; default: 0).

    Raises a ValidationError (a 400 in the API's error shape) for any other value."""
    raw = request.query_params.get("distribution") if request is not None else None
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise serializers.ValidationError(
        {"distribution": [gettext("'distribution' must be 1 or 0 (or true or false).")]},
        code="invalid",
    )


class FaceSerializer(serializers.ModelSerializer):
    box = serializers.ListField(
        child=serializers.IntegerField(),
        min_length=4,
        max_length=4,
        help_text="[left, top, right, bottom] in pixels of the uploaded (upright) image",
    )
    age = serializers.FloatField(help_text="Estimated age in years (expected value)")
    age_std = serializers.FloatField(help_text="Spread of the estimate in years (std. deviation)")
    age_interval = serializers.SerializerMethodField(
        help_text="80% interval [low, high] in whole years: the 10th and 90th percentiles of "
        "the calibrated age distribution (null for faces stored before intervals existed)"
    )
    distribution = serializers.ListField(
        child=serializers.FloatField(),
        required=False,
        help_text="Only with ?distribution=1: probability of each whole age 0..100 "
        "(101 numbers, calibrated, rounded to 4 decimals)",
    )
    chip_url = serializers.SerializerMethodField(
        help_text="The aligned face crop the network read, at its input size (JPEG; owner only)"
    )
    drawn_by_user = serializers.BooleanField(
        read_only=True,
        help_text="true: a face its owner marked by hand (the `boxes` field, or 'Missed "
        "someone?'), which the detector had not found",
    )
    label = serializers.SerializerMethodField(  # type: ignore[assignment]  # a declared field
        help_text="The real age its owner gave, and whether it may be used for training "
        "(null when none was given; see POST …/faces/{index}/label)"
    )

    class Meta:
        model = Face
        fields = [
            "box",
            "age",
            "age_std",
            "age_interval",
            "distribution",
            "chip_url",
            "drawn_by_user",
            "label",
        ]

    @extend_schema_field(
        {
            "type": "array",
            "items": {"type": "integer"},
            "minItems": 2,
            "maxItems": 2,
            "nullable": True,
        }
    )
    def get_age_interval(self, obj: Face) -> list[int] | None:
        if obj.age_low is None or obj.age_high is None:
            return None
        return [obj.age_low, obj.age_high]

    def get_chip_url(self, obj: Face) -> str | None:
        if not obj.chip_jpeg:
            return None
        path = reverse("predictor:face-chip", args=[obj.prediction_id, obj.index])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {
                "age": {"type": "integer"},
                "consent": {"type": "boolean"},
                "updated_at": {"type": "string", "format": "date-time"},
            },
        }
    )
    def get_label(self, obj: Face) -> dict | None:
        label = getattr(obj, "label", None)
        return AgeLabelSerializer(label).data if label is not None else None

    def to_representation(self, instance: Face) -> dict:
        data = super().to_representation(instance)
        if not distribution_requested(self.context.get("request")):
            data.pop("distribution", None)
        return data


AGE_MESSAGE = gettext_lazy("The real age must be a whole number of years from 0 to 100.")


class AgeLabelSerializer(serializers.ModelSerializer):
    """A face's real age as its owner gave it."""

    age = serializers.IntegerField(
        min_value=AgeLabel.MIN_AGE,
        max_value=AgeLabel.MAX_AGE,
        help_text="The real age in whole years, 0-100",
        error_messages={key: AGE_MESSAGE for key in ("invalid", "min_value", "max_value")},
    )
    consent = serializers.BooleanField(
        default=False,
        help_text="true: faceage may use this face to train its model (off unless sent); "
        "false withdraws it. Either way the label counts towards accuracy figures.",
    )

    class Meta:
        model = AgeLabel
        fields = ["age", "consent", "updated_at"]
        read_only_fields = ["updated_at"]


class PredictionSerializer(serializers.ModelSerializer):
    model_version = serializers.SlugRelatedField(  # type: ignore[var-annotated]
        slug_field="name", read_only=True
    )
    faces = FaceSerializer(many=True, read_only=True)
    url = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField(
        help_text="Why the photo failed, or a note on one that succeeded (a face you marked "
        "that was found already): {code, message}, the message in the client's language "
        "(Accept-Language). null when there is nothing to say. The codes are listed in "
        "docs/api.md."
    )
    queue_position = serializers.SerializerMethodField(
        help_text="While queued: how many photos, anyone's, were queued before this one and "
        "still wait (an upper bound: the queue takes turns between people). null otherwise."
    )

    class Meta:
        model = Prediction
        fields = [
            "id",
            "status",
            "url",
            "image_url",
            "width",
            "height",
            "created_at",
            "started_at",
            "finished_at",
            "model_version",
            "error",
            "queue_position",
            "faces",
        ]

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_url(self, obj: Prediction) -> str:
        return self._absolute(reverse("api:prediction-detail", args=[obj.pk]))

    def get_image_url(self, obj: Prediction) -> str:
        return self._absolute(reverse("predictor:image", args=[obj.pk]))

    def get_queue_position(self, obj: Prediction) -> int | None:
        if obj.status != Prediction.Status.QUEUED:
            return None
        if self.parent is None:  # one photo: a count over the (status, created_at) index
            return Prediction.objects.filter(
                status=Prediction.Status.QUEUED, created_at__lt=obj.created_at
            ).count()
        return bisect_left(self._queued_times(obj), obj.created_at)

    def _queued_times(self, obj: Prediction) -> list:
        """When each queued photo up to the newest one listed here was queued, oldest
        first: one query for a whole list (a batch of 20 photos asks once, not 20 times),
        over the (status, created_at) index."""
        shown = self.parent.instance if self.parent is not None else None
        key = f"_queued_times_{id(shown)}"
        context = cast(dict, self.context)  # the request's own dict: a cache for this answer
        if key not in context:
            queued = [p.created_at for p in shown or () if p.status == Prediction.Status.QUEUED]
            queued.append(obj.created_at)  # (the list may be a manager, not the rows)
            context[key] = list(
                Prediction.objects.filter(
                    status=Prediction.Status.QUEUED, created_at__lte=max(queued)
                )
                .order_by("created_at")
                .values_list("created_at", flat=True)
            )
        return context[key]

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    )
    def get_error(self, obj: Prediction) -> dict | None:
        # Workers store a code and its values; the message is rendered for this client.
        return obj.error_payload()


class PredictionUploadSerializer(serializers.Serializer):
    image = serializers.FileField(
        help_text="A JPEG, PNG or WebP photo (at most FACEAGE_MAX_UPLOAD_BYTES)",
        allow_empty_file=True,  # we answer empty files with our own clearer message
    )
    boxes = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Faces the detector may miss, marked by hand: a JSON list of up to 20 boxes "
        "[left, top, right, bottom] in pixels of the photo as uploaded (upright), e.g. "
        "[[120, 80, 260, 240]]. Each is aligned and rated after the faces found, and its face "
        "has drawn_by_user: true. Not with a batch. Errors: 400 invalid_boxes.",
    )


class ModelVersionSerializer(serializers.ModelSerializer):
    """A model version. In the list, ``metrics`` leaves out the test split's ``scatter`` (up
    to 1,500 points); ``GET /api/v1/models/{name}/`` has it."""

    card_url = serializers.SerializerMethodField(help_text="The model card (Markdown)")
    metrics = serializers.SerializerMethodField(
        help_text="Test-split metrics, the active model's on the same split (baseline), "
        "every benchmark's figures for both (benchmarks) and the promotion gate's verdict"
    )
    download_urls = serializers.SerializerMethodField(
        help_text="SavedModel and TFLite zips; 202 while the export is being built"
    )
    second_opinion = serializers.SerializerMethodField(
        help_text="The face descriptor's age head mixed into the network's distribution and the "
        "weights of the mix (distribution ∝ network^network_weight × head^descriptor_weight); "
        "an empty object when the version has none. The downloads hold the network alone."
    )

    class Meta:
        model = ModelVersion
        fields = [
            "name",
            "framework",
            "created_at",
            "metrics",
            "is_active",
            "card_url",
            "download_urls",
            "temperature",
            "second_opinion",
            "promotion_override",
        ]
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                "head": {"type": "string"},
                "network_weight": {"type": "number"},
                "descriptor_weight": {"type": "number"},
            },
        }
    )
    def get_second_opinion(self, obj: ModelVersion) -> dict:
        return dict(obj.second_opinion or {})

    @extend_schema_field({"type": "object"})
    def get_metrics(self, obj: ModelVersion) -> dict:
        if self.context.get("compact"):
            return {key: value for key, value in obj.metrics.items() if key != "scatter"}
        return obj.metrics

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_card_url(self, obj: ModelVersion) -> str:
        return self._absolute(reverse("export:model-card", args=[obj.name]))

    @extend_schema_field(
        {
            "type": "object",
            "properties": {"savedmodel": {"type": "string"}, "tflite": {"type": "string"}},
        }
    )
    def get_download_urls(self, obj: ModelVersion) -> dict[str, str]:
        return {
            fmt: self._absolute(reverse("export:model-download", args=[obj.name, fmt]))
            for fmt in ("savedmodel", "tflite")
        }


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
