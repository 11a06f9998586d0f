"""Datasets (imported, labelled, split) and training runs (queued, observable, resumable)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy

from predictor.models import ModelVersion


class Dataset(models.Model):
    class Kind(models.TextChoices):
        IMDB_WIKI = "imdb_wiki", gettext_lazy("IMDB-WIKI (.mat + crops)")
        UTKFACE = "utkface", gettext_lazy("UTKFace folder")
        CSV = "csv", gettext_lazy("CSV (path,age[,gender])")

    class Status(models.TextChoices):
        IMPORTING = "importing", gettext_lazy("Importing")
        READY = "ready", gettext_lazy("Ready")
        FAILED = "failed", gettext_lazy("Failed")

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    source = models.CharField(
        max_length=500,
        help_text=gettext_lazy("Folder (IMDB-WIKI, UTKFace) or CSV file on the server"),
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.IMPORTING)
    split_seed = models.PositiveIntegerField(default=0)
    content_hash = models.CharField(
        max_length=64,
        blank=True,
        help_text=gettext_lazy("Hash of paths, labels and split: the cache key"),
    )
    report = models.JSONField(
        default=dict, blank=True, help_text=gettext_lazy("Kept and dropped, by reason")
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    imported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = gettext_lazy("dataset")
        verbose_name_plural = gettext_lazy("datasets")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

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

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    path = models.CharField(
        max_length=500, help_text=gettext_lazy("Relative to the dataset's source folder")
    )
    age = models.PositiveSmallIntegerField()
    gender = models.CharField(max_length=6, blank=True)
    group = models.CharField(
        max_length=100, help_text=gettext_lazy("Person or source photo; never split")
    )
    split = models.CharField(max_length=5, choices=SPLITS, db_index=True)
    face_box = models.JSONField(null=True, blank=True)

    class Meta:
        verbose_name = gettext_lazy("dataset item")
        verbose_name_plural = gettext_lazy("dataset items")
        constraints = [
            models.UniqueConstraint(fields=["dataset", "path"], name="one_item_per_path")
        ]

    def __str__(self) -> str:
        return f"{self.path} ({self.age}, {self.split})"


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", gettext_lazy("Queued")
        RUNNING = "running", gettext_lazy("Running")
        SUCCEEDED = "succeeded", gettext_lazy("Succeeded")
        FAILED = "failed", gettext_lazy("Failed")
        CANCELLED = "cancelled", gettext_lazy("Cancelled")

    TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    class Init(models.TextChoices):
        BUNDLED = "bundled", gettext_lazy("Fine-tune the bundled network")
        SCRATCH = "scratch", gettext_lazy("From scratch")

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="runs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    epochs = models.PositiveSmallIntegerField(default=8)
    batch_size = models.PositiveSmallIntegerField(default=64)
    learning_rate = models.FloatField(default=1e-3)
    init = models.CharField(max_length=10, choices=Init.choices, default=Init.BUNDLED)
    max_train_images = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=gettext_lazy("Use at most this many training images (for quick runs)"),
    )
    max_steps_per_epoch = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=gettext_lazy("Cap the steps of each epoch (None: a full pass)"),
    )
    auto_promote = models.BooleanField(
        default=False, help_text=gettext_lazy("Make the result active if it beats the active model")
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    stage = models.CharField(
        max_length=40, blank=True, help_text=gettext_lazy("preparing, training, evaluating")
    )
    epoch = models.PositiveSmallIntegerField(default=0)
    step = models.PositiveIntegerField(default=0)
    steps_per_epoch = models.PositiveIntegerField(default=0)
    progress = models.FloatField(default=0.0, help_text=gettext_lazy("0..1"))
    eta_seconds = models.FloatField(null=True, blank=True)
    history = models.JSONField(
        default=list, blank=True, help_text=gettext_lazy("Per-epoch metrics")
    )
    test_metrics = models.JSONField(default=dict, blank=True)
    baseline_metrics = models.JSONField(
        default=dict, blank=True, help_text=gettext_lazy("The active model, on the same test split")
    )
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_by = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    model_version = models.OneToOneField(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_run"
    )
    created_at = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = gettext_lazy("training run")
        verbose_name_plural = gettext_lazy("training runs")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Run {self.pk} on {self.dataset} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("training:run", args=[self.pk])

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    def append_log(self, line: str) -> None:
        stamp = timezone.now().strftime("%H:%M:%S")
        TrainingRun.objects.filter(pk=self.pk).update(
            log=models.functions.Concat(models.F("log"), models.Value(f"[{stamp}] {line}\n"))
        )
