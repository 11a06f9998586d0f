import argparse
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from jobs import lifecycle
from training import messages
from training.datasets import DatasetError
from training.importing import confined_source, import_dataset
from training.models import Dataset
from training.progress_bar import ProgressBar

# The largest seed a dataset stores (a PostgreSQL integer).
MAX_SEED = 2**31 - 1


def split_seed(text: str) -> int:
    """``--seed``: a whole number in 0..MAX_SEED."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{value} is not in 0..{MAX_SEED}")
    return value


class Command(BaseCommand):
    help = (
        "Import a dataset (IMDB-WIKI, UTKFace or FairFace folder, or CSV) with a stored "
        "train/val/test split."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "source",
            nargs="?",
            default="",
            help="Folder (imdb_wiki, utkface, fairface) or CSV file; none for feedback",
        )
        parser.add_argument("--kind", choices=[k for k, _ in Dataset.Kind.choices], required=True)
        parser.add_argument("--seed", type=split_seed, default=0, help="Split seed")
        parser.add_argument(
            "--benchmark",
            action="store_true",
            help="Judge every candidate model on its test split (the promotion gate)",
        )

    def handle(self, *args, name, source, kind, seed, benchmark=False, **options):

        path: Path | str
        if kind == Dataset.Kind.FEEDBACK:
            path = ""  # people's labels: a snapshot of the consented faces, no files
        else:
            if not source:
                raise CommandError(f"a {kind} dataset needs a source folder or file")
            try:
                path = confined_source(source)
            except DatasetError as error:
                raise CommandError(str(error)) from error
            if not Path(path).exists():
                raise CommandError(f"{path} does not exist")
        dataset, created = Dataset.objects.get_or_create(
            name=name, defaults={"kind": kind, "source": str(path), "split_seed": seed}
        )
        if not created and (dataset.kind, dataset.source) != (kind, str(path)):
            raise CommandError(f"a dataset named {name!r} already exists with another source")
        if benchmark and not dataset.is_benchmark:
            Dataset.objects.filter(pk=dataset.pk).update(is_benchmark=True)
        # The import is a job like the worker's: claimed by this process, so the sweeper
        # leaves it alone while it runs and finishes it in a worker if this process dies.
        lifecycle.restart(Dataset, dataset.pk)
        claimed = lifecycle.claim(Dataset, dataset.pk)
        if claimed is None:
            raise CommandError(f"{name} is being imported by another process")
        try:
            dataset = import_dataset(claimed, progress=ProgressBar("storing", self.stderr))
        except DatasetError as error:
            raise CommandError(str(error)) from error
        except Exception as error:
            # A reader's failure no check foresaw: the row ends failed now, as a worker's
            # import would (training.tasks.import_dataset), not when the sweeper finds it.
            reason = f"{error.__class__.__name__}: {error}"
            lifecycle.fail(Dataset, dataset.pk, messages.IMPORT_FAILED, {"error": reason})
            raise CommandError(f"The import of {name} failed: {reason}") from error
        report = dataset.report
        self.stdout.write(f"{dataset.name}: kept {report['kept']}; dropped {report['dropped']}")
        self.stdout.write(f"split: {dataset.split_counts()}")
        for problem in report.get("problems", [])[:10]:
            self.stdout.write(f"  {problem}")
