from django.core.management.base import BaseCommand, CommandError

from predictor.models import ModelVersion
from training.models import Dataset


class Command(BaseCommand):
    help = "Evaluate a model version on a dataset's test split (MAE, CS@5, by decade and gender)."

    def add_arguments(self, parser):
        parser.add_argument("--model-version", required=True)
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--split", default="test", choices=["train", "val", "test"])

    def handle(self, *args, model_version, dataset, split, **options):
        from training.progress_bar import ProgressBar
        from training.runner import SizedSplit, evaluate_version_on

        version = ModelVersion.objects.filter(name=model_version).first()
        if version is None:
            raise CommandError(f"no model version {model_version!r}")
        data = Dataset.objects.filter(name=dataset, status=Dataset.Status.READY).first()
        if data is None:
            raise CommandError(f"no ready dataset {dataset!r}")
        metrics = evaluate_version_on(
            version, SizedSplit(data, split, ProgressBar("chips", self.stderr))
        )
        if not metrics["count"]:
            raise CommandError(f"{data.name} has no usable faces in its {split} split")
        self.stdout.write(
            f"{version.name} on {data.name}/{split}: {metrics['count']} faces, "
            f"MAE {metrics['mae']:.3f}, CS@5 {metrics['cs5']:.3f}"
        )
        for decade, row in metrics["mae_by_decade"].items():
            self.stdout.write(f"  {decade:>7}: MAE {row['mae']:6.2f}  ({row['count']} faces)")
        for gender, row in metrics["mae_by_gender"].items():
            self.stdout.write(f"  {gender:>7}: MAE {row['mae']:6.2f}  ({row['count']} faces)")
