"""``manage.py export_model NAME``: build a model version's SavedModel and TFLite downloads.

It lives in the training app because ``--evaluate-on`` measures the version on an imported
dataset: training imports predictor, never the reverse (pyproject.toml, import-linter)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from predictor.models import ModelVersion


class Command(BaseCommand):
    help = (
        "Build the SavedModel and TFLite downloads (with the model card) of a model version "
        "in the exports storage (MEDIA_ROOT/exports by default), checking both against the "
        "served model."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="the model version's name, e.g. dlib-age-v1")
        parser.add_argument(
            "--force", action="store_true", help="rebuild even if the exports already exist"
        )
        parser.add_argument(
            "--evaluate-on",
            metavar="DATASET",
            help="first measure the version on this imported dataset's test split and record "
            "the metrics (MAE, by decade, by gender) on it, for its card. Only for versions "
            "without metrics of their own, such as the bundled one.",
        )

    def handle(self, *args, name: str, force: bool, evaluate_on: str | None, **options):
        from training.export import FORMATS, ExportError
        from training.export.build import build_exports

        if name == ModelVersion.BUNDLED_NAME:
            ModelVersion.ensure_bundled()
        version = ModelVersion.objects.filter(name=name).first()
        if version is None:
            known = ", ".join(ModelVersion.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no model version {name!r} (known: {known})")
        if evaluate_on:
            self._evaluate(version, evaluate_on)
        from training.export.tasks import record_outcome

        try:
            files = build_exports(version, force=force)
        except ExportError as error:
            record_outcome(version, str(error))  # the model page shows it too
            raise CommandError(f"exporting {name} failed: {error}") from error
        record_outcome(version, None)
        for fmt in FORMATS:
            stored = files.stored_name(fmt)
            try:
                where = files.storage.path(stored)
            except NotImplementedError:  # a storage without local paths
                where = stored
            self.stdout.write(f"{fmt:>10}: {where} ({files.size(fmt) / 1e6:.1f} MB)")

    def _evaluate(self, version: ModelVersion, dataset_name: str) -> None:
        # TensorFlow and dlib: loaded only when a dataset is measured.
        from training.models import Dataset
        from training.progress_bar import ProgressBar
        from training.runner import SizedSplit, evaluate_version_on

        if (version.metrics or {}).get("mae") is not None:
            raise CommandError(
                f"{version.name} already has test metrics from its own training run "
                f"({version.metrics.get('dataset')}); they are not replaced"
            )
        dataset = Dataset.objects.filter(name=dataset_name, status=Dataset.Status.READY).first()
        if dataset is None:
            raise CommandError(f"no imported (ready) dataset {dataset_name!r}")
        metrics = evaluate_version_on(
            version, SizedSplit(dataset, "test", ProgressBar("chips", self.stderr))
        )
        if not metrics["count"]:
            raise CommandError(f"{dataset.name} has no usable faces in its test split")
        version.metrics = {"dataset": dataset.name, "split": "test", **metrics}
        version.save(update_fields=["metrics"])
        self.stdout.write(
            f"{version.name} on {dataset.name}/test: {metrics['count']} faces, "
            f"MAE {metrics['mae']:.3f}, CS@5 {metrics['cs5']:.3f}"
        )
