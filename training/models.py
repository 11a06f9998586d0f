"""Datasets (imported, labelled, split) and training runs (queued, observable, resumable)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models.functions import Concat
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from jobs.models import Job, JobStatus
from predictor.models import ModelVersion
from training import messages
from training.messages import EXPORT_MESSAGES, IMPORT_MESSAGES, RUN_MESSAGES, Stage


class Dataset(Job):
    class Kind(models.TextChoices):
        IMDB_WIKI = "imdb_wiki", gettext_lazy("IMDB-WIKI (.mat + crops)")
        UTKFACE = "utkface", gettext_lazy("UTKFace folder")
        CSV = "csv", gettext_lazy("CSV (path,age[,gender])")
        FAIRFACE = "fairface", gettext_lazy("FairFace folder (age groups)")
        FEEDBACK = "feedback", gettext_lazy("People's labels (faces given with consent)")

    class Status(models.TextChoices):
        # A dataset is the job of its import: the values are the job states (jobs.models).
        QUEUED = "queued", gettext_lazy("Waiting to import")
        IMPORTING = "running", gettext_lazy("Importing")
        READY = "succeeded", gettext_lazy("Ready")
        FAILED = "failed", gettext_lazy("Failed")

    name = models.CharField(max_length=100, unique=True, verbose_name=gettext_lazy("name"))
    kind = models.CharField(max_length=20, choices=Kind.choices, verbose_name=gettext_lazy("kind"))
    source = models.CharField(
        max_length=500,
        blank=True,
        help_text=gettext_lazy(
            "Folder (IMDB-WIKI, UTKFace, FairFace) or CSV file on the server; none for "
            "people's labels"
        ),
        verbose_name=gettext_lazy("source"),
    )
    status = models.CharField(
        max_length=10,
        choices=Status.choices,
        default=Status.QUEUED,
        db_index=True,
        verbose_name=gettext_lazy("status"),
    )
    split_seed = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("split seed"))
    is_benchmark = models.BooleanField(
        default=False,
        help_text=gettext_lazy(
            "Evaluate every candidate model on this dataset's test split, and refuse to "
            "promote one that is worse here than the active model"
        ),
        verbose_name=gettext_lazy("benchmark"),
    )
    content_hash = models.CharField(
        max_length=64,
        blank=True,
        help_text=gettext_lazy("Hash of paths, labels and split: the cache key"),
        verbose_name=gettext_lazy("content hash"),
    )
    report = models.JSONField(
        default=dict,
        blank=True,
        help_text=gettext_lazy("Kept and dropped, by reason"),
        verbose_name=gettext_lazy("report"),
    )
    imported_at = models.DateTimeField(
        null=True, blank=True, verbose_name=gettext_lazy("imported at")
    )

    class Meta:
        verbose_name = gettext_lazy("dataset")
        verbose_name_plural = gettext_lazy("datasets")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    # -- its import, as a job (jobs.lifecycle) ----------------------------------------------
    MESSAGES = IMPORT_MESSAGES
    GAVE_UP = messages.IMPORT_GAVE_UP

    def heartbeat_timeout(self) -> timedelta:
        """An import does not beat: its claim holds for the task's hard time limit."""
        return timedelta(seconds=settings.FACEAGE_IMPORT_TIME_LIMIT + 60)

    def split_counts(self) -> dict[str, int]:
        rows = self.items.values("split").annotate(count=models.Count("id"))
        return {row["split"]: row["count"] for row in rows}


class DatasetItem(models.Model):
    """One labelled face image of a dataset, with the split it belongs to."""

    SPLITS = (
        ("train", gettext_lazy("train")),
        ("val", gettext_lazy("validation")),
        ("test", gettext_lazy("test")),
    )

    dataset = models.ForeignKey(
        Dataset,
        on_delete=models.CASCADE,
        related_name="items",
        verbose_name=gettext_lazy("dataset"),
    )
    path = models.CharField(
        max_length=500,
        help_text=gettext_lazy("Relative to the dataset's source folder"),
        verbose_name=gettext_lazy("path"),
    )
    age = models.PositiveSmallIntegerField(verbose_name=gettext_lazy("age"))
    age_high = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text=gettext_lazy(
            "For an age group (FairFace's 20-29): its last year; age is its first"
        ),
        verbose_name=gettext_lazy("age group's last year"),
    )
    gender = models.CharField(max_length=6, blank=True, verbose_name=gettext_lazy("gender"))
    race = models.CharField(
        max_length=20,
        blank=True,
        help_text=gettext_lazy("The dataset's own label, for per-group accuracy reports only"),
        verbose_name=gettext_lazy("race"),
    )
    group = models.CharField(
        max_length=100,
        help_text=gettext_lazy("Person or source photo; never split"),
        verbose_name=gettext_lazy("group"),
    )
    split = models.CharField(
        max_length=5, choices=SPLITS, db_index=True, verbose_name=gettext_lazy("split")
    )
    face_box = models.JSONField(null=True, blank=True, verbose_name=gettext_lazy("face box"))

    class Meta:
        verbose_name = gettext_lazy("dataset item")
        verbose_name_plural = gettext_lazy("dataset items")
        constraints = [
            models.UniqueConstraint(fields=["dataset", "path"], name="one_item_per_path")
        ]

    def __str__(self) -> str:
        return f"{self.path} ({self.age}, {self.get_split_display()})"


class TrainingRun(Job):
    Status = JobStatus  # its states are the job states, `cancelled` included

    class Init(models.TextChoices):
        ACTIVE = "active", gettext_lazy("Fine-tune the active model")
        BUNDLED = "bundled", gettext_lazy("Fine-tune the bundled network")
        SCRATCH = "scratch", gettext_lazy("From scratch")

    dataset = models.ForeignKey(
        Dataset, on_delete=models.PROTECT, related_name="runs", verbose_name=gettext_lazy("dataset")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        verbose_name=gettext_lazy("created by"),
    )
    epochs = models.PositiveSmallIntegerField(default=8, verbose_name=gettext_lazy("epochs"))
    batch_size = models.PositiveSmallIntegerField(
        default=64, verbose_name=gettext_lazy("batch size")
    )
    learning_rate = models.FloatField(default=1e-3, verbose_name=gettext_lazy("learning rate"))
    init = models.CharField(
        max_length=10,
        choices=Init.choices,
        default=Init.ACTIVE,
        verbose_name=gettext_lazy("starting point"),
    )
    max_train_images = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=gettext_lazy("Use at most this many training images (for quick runs)"),
        verbose_name=gettext_lazy("max train images"),
    )
    max_steps_per_epoch = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=gettext_lazy("Cap the steps of each epoch (None: a full pass)"),
        verbose_name=gettext_lazy("max steps per epoch"),
    )
    auto_promote = models.BooleanField(
        default=False,
        help_text=gettext_lazy("Make the result active if it beats the active model"),
        verbose_name=gettext_lazy("auto promote"),
    )
    stage = models.CharField(
        max_length=20,
        blank=True,
        choices=Stage.choices,
        default=Stage.NONE,
        verbose_name=gettext_lazy("stage"),
    )
    epoch = models.PositiveSmallIntegerField(default=0, verbose_name=gettext_lazy("epoch"))
    step = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("step"))
    steps_per_epoch = models.PositiveIntegerField(
        default=0, verbose_name=gettext_lazy("steps per epoch")
    )
    progress = models.FloatField(
        default=0.0, help_text=gettext_lazy("0..1"), verbose_name=gettext_lazy("progress")
    )
    eta_seconds = models.FloatField(
        null=True, blank=True, verbose_name=gettext_lazy("ETA (seconds)")
    )
    history = models.JSONField(
        default=list,
        blank=True,
        help_text=gettext_lazy("Per-epoch metrics"),
        verbose_name=gettext_lazy("history"),
    )
    test_metrics = models.JSONField(
        default=dict, blank=True, verbose_name=gettext_lazy("test metrics")
    )
    baseline_metrics = models.JSONField(
        default=dict,
        blank=True,
        help_text=gettext_lazy("The active model, on the same test split"),
        verbose_name=gettext_lazy("baseline metrics"),
    )
    log = models.TextField(blank=True, verbose_name=gettext_lazy("log"))
    log_entries = models.JSONField(
        default=list,
        blank=True,
        help_text=gettext_lazy("The log's lines as message templates and their values"),
        verbose_name=gettext_lazy("log entries"),
    )
    # The stage's own count (chips cut so far, of how many), beside the overall progress.
    stage_done = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("stage done"))
    stage_total = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("stage total"))
    # Training loss every few steps: [global step, loss, MAE], so that the curve moves
    # before the first epoch ends (at most STEP_LOSS_POINTS points, thinned as it grows).
    step_losses = models.JSONField(
        default=list, blank=True, verbose_name=gettext_lazy("loss by step")
    )
    cancel_requested = models.BooleanField(
        default=False, verbose_name=gettext_lazy("cancel requested")
    )
    model_version = models.OneToOneField(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="training_run",
        verbose_name=gettext_lazy("model version"),
    )
    feedback_snapshot = models.JSONField(
        default=dict,
        blank=True,
        help_text=gettext_lazy(
            "For each dataset of people's labels: the label ids taken when the run first started"
        ),
        verbose_name=gettext_lazy("feedback snapshot"),
    )

    class Meta:
        verbose_name = gettext_lazy("training run")
        verbose_name_plural = gettext_lazy("training runs")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return gettext("Run %(id)s on %(dataset)s (%(status)s)") % {
            "id": self.pk,
            "dataset": self.dataset,
            "status": self.get_status_display(),
        }

    def get_absolute_url(self) -> str:
        return reverse("training:run", args=[self.pk])

    # -- as a job (jobs.lifecycle) -----------------------------------------------------------
    MESSAGES = RUN_MESSAGES
    GAVE_UP = messages.GAVE_UP

    @classmethod
    def max_attempts(cls) -> int:
        return settings.FACEAGE_TRAINING_MAX_ATTEMPTS

    def heartbeat_timeout(self) -> timedelta:
        """A run beats at every progress report; one silent this long lost its worker."""
        return timedelta(seconds=settings.FACEAGE_TRAINING_HEARTBEAT_TIMEOUT)

    def append_log(self, template: str, **params: object) -> None:
        """Add a line to the log: ``template`` (English, marked with gettext_noop where it is
        written) and its ``params``. ``log`` keeps the English line; ``log_entries`` keeps the
        template and parameters, so that the run's page shows each line in the reader's
        language (``translated_log``)."""
        now = timezone.now()
        line = template % params if params else template
        entry = {"at": now.isoformat(), "template": template, "params": params}
        with transaction.atomic():
            row = TrainingRun.objects.select_for_update().filter(pk=self.pk)
            entries = row.values_list("log_entries", flat=True).first() or []
            row.update(
                log=Concat(models.F("log"), models.Value(f"[{now:%H:%M:%S}] {line}\n")),
                log_entries=[*entries, entry],
            )

    def translated_log(self) -> list[str]:
        """The log in the active language, a line each (older runs: the English text)."""
        if not self.log_entries:
            return self.log.splitlines()
        lines = []
        for entry in self.log_entries:
            at = timezone.localtime(datetime.fromisoformat(entry["at"]))
            template = gettext(entry["template"])
            params = entry.get("params") or {}
            try:
                text = template % params if params else template
            except (KeyError, ValueError, TypeError):  # a translation that lost a placeholder
                text = entry["template"] % params if params else entry["template"]
            lines.append(f"[{at:%H:%M:%S}] {text}")
        return lines


class RunDataset(models.Model):
    """One more dataset a training run learns from, beside its own (``TrainingRun.dataset``,
    whose test split is the run's own), and how often it is sampled: each epoch draws from
    the datasets in proportion to their weights (the run's own dataset weighs 1)."""

    run = models.ForeignKey(
        TrainingRun,
        on_delete=models.CASCADE,
        related_name="extra_datasets",
        verbose_name=gettext_lazy("training run"),
    )
    dataset = models.ForeignKey(
        Dataset, on_delete=models.PROTECT, related_name="+", verbose_name=gettext_lazy("dataset")
    )
    weight = models.FloatField(default=1.0, verbose_name=gettext_lazy("sampling weight"))

    class Meta:
        verbose_name = gettext_lazy("further dataset")
        verbose_name_plural = gettext_lazy("further datasets")
        constraints = [
            models.UniqueConstraint(fields=["run", "dataset"], name="one_row_per_run_dataset"),
            models.CheckConstraint(condition=models.Q(weight__gt=0), name="positive_weight"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name}:{self.weight:g}"


# The export build task's hard time limit, in seconds (training.export.tasks).
EXPORT_TIME_LIMIT = 660


class ModelExport(Job):
    """The build of a version's downloads (SavedModel and TFLite zips), as a job: one row per
    version and export key (``training.export.files.export_key``: the weights and the card's
    metrics), so a version whose card changed is built again. The files themselves live in
    ``STORAGES["exports"]``; a row that succeeded whose files went missing is built again."""

    version = models.ForeignKey(
        ModelVersion,
        on_delete=models.CASCADE,
        related_name="exports",
        verbose_name=gettext_lazy("model version"),
    )
    key = models.CharField(max_length=32, verbose_name=gettext_lazy("export key"))

    MESSAGES = EXPORT_MESSAGES
    GAVE_UP = messages.EXPORT_GAVE_UP

    class Meta:
        verbose_name = gettext_lazy("model export")
        verbose_name_plural = gettext_lazy("model exports")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["version", "key"], name="one_export_per_key"),
        ]

    def __str__(self) -> str:
        return f"{self.version.name} ({self.key}, {self.get_status_display()})"

    def heartbeat_timeout(self) -> timedelta:
        """A build does not beat: its claim holds for the task's hard time limit."""
        return timedelta(seconds=EXPORT_TIME_LIMIT + 60)
