"""``manage.py export_model NAME``: build a model version's SavedModel and TFLite downloads."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from predictor.models import ModelVersion


class Command(BaseCommand):
    help = (
        "Build the SavedModel and TFLite downloads (with the model card) of a model version "
        "under MEDIA_ROOT/exports, checking both against the served model."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="the model version's name, e.g. dlib-age-v1")
        parser.add_argument(
            "--force", action="store_true", help="rebuild even if the exports already exist"
        )

    def handle(self, *args, name: str, force: bool, **options):
        from predictor.export import FORMATS, ExportError, build_exports

        if name == ModelVersion.BUNDLED_NAME:
            ModelVersion.ensure_bundled()
        version = ModelVersion.objects.filter(name=name).first()
        if version is None:
            known = ", ".join(ModelVersion.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no model version {name!r} (known: {known})")
        try:
            paths = build_exports(version, force=force)
        except ExportError as error:
            raise CommandError(f"exporting {name} failed: {error}") from error
        for fmt in FORMATS:
            archive = paths.archive(fmt)
            self.stdout.write(f"{fmt:>10}: {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
