from django.core.management.base import BaseCommand, CommandError

from training import messages
from training.forms import TrainingRunForm
from training.mixes import MixError, parse_mix
from training.models import RunDataset, TrainingRun
from training.progress_bar import ProgressBar


class Command(BaseCommand):
    help = (
        "Train (fine-tune) an age model on one or more datasets, in this terminal, with a "
        "progress bar. --dataset repeats; NAME:WEIGHT sets how often a dataset is sampled."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dataset",
            action="append",
            metavar="NAME[:WEIGHT]",
            help="A dataset to learn from (repeat for several; the first one's test split is "
            "the run's own). WEIGHT (default 1) is its share of each epoch.",
        )
        parser.add_argument("--epochs", type=int, default=8)
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--learning-rate", type=float, default=1e-3)
        parser.add_argument(
            "--init",
            choices=[choice for choice, _ in TrainingRun.Init.choices],
            default=TrainingRun.Init.ACTIVE,
            help="Start from the active model (default), the bundled dlib network, or scratch",
        )
        parser.add_argument("--max-train-images", type=int)
        parser.add_argument("--max-steps-per-epoch", type=int)
        parser.add_argument("--auto-promote", action="store_true")
        parser.add_argument("--resume", type=int, metavar="RUN_ID", help="Resume an earlier run")

    def handle(self, *args, **options):
        from training import runner

        if options["resume"]:
            run = TrainingRun.objects.filter(pk=options["resume"]).first()
            if run is None:
                raise CommandError(f"no training run {options['resume']}")
        else:
            if not options["dataset"]:
                raise CommandError("name a dataset with --dataset (or resume a run with --resume)")
            try:
                mix = parse_mix(options["dataset"])
            except MixError as error:
                raise CommandError(str(error)) from error
            (dataset, own_weight), *extra = mix
            _check_options(dataset, options)
            run = TrainingRun.objects.create(
                dataset=dataset,
                epochs=options["epochs"],
                batch_size=options["batch_size"],
                learning_rate=options["learning_rate"],
                init=options["init"],
                max_train_images=options["max_train_images"],
                max_steps_per_epoch=options["max_steps_per_epoch"],
                auto_promote=options["auto_promote"],
            )
            for other, weight in extra:  # relative to the first dataset's
                RunDataset.objects.create(run=run, dataset=other, weight=weight / own_weight)
        claimed = runner.claim_run(run.pk)
        if claimed is None:
            raise CommandError(f"run {run.pk} is finished or held by a live worker")
        bar = ProgressBar("training", self.stderr)

        def show(info):
            total = info["steps_per_epoch"] * claimed.epochs
            done = (info["epoch"] - 1) * info["steps_per_epoch"] + info["step"]
            bar(done, total, f"epoch {info['epoch']} MAE {info['mae']:.2f}")

        try:
            result = runner.execute_run(
                claimed, terminal_progress=ProgressBar("chips", self.stderr), on_training=show
            )
        except Exception as error:
            reason = f"{error.__class__.__name__}: {error}"
            runner.fail_run(run.pk, messages.FAILED, {"error": reason})
            raise CommandError(f"training failed: {error}") from error
        self.stdout.write(f"run {result.pk}: {result.status}")
        if result.test_metrics:
            test, baseline = result.test_metrics, result.baseline_metrics
            self.stdout.write(f"test MAE {test['mae']:.3f}; active model {baseline['mae']:.3f}")
        if result.model_version:
            self.stdout.write(f"candidate model version: {result.model_version.name}")


def _check_options(dataset, options) -> None:
    """The run's numbers within the bounds the admin's form sets (epochs 1-200, a batch of
    4-1024, a learning rate of 1e-6 to 1, ...), or a CommandError naming each option."""

    def given(value):
        return "" if value is None else value

    form = TrainingRunForm(
        data={
            "dataset": dataset.pk,
            "epochs": options["epochs"],
            "batch_size": options["batch_size"],
            "learning_rate": options["learning_rate"],
            "init": options["init"],
            "max_train_images": given(options["max_train_images"]),
            "max_steps_per_epoch": given(options["max_steps_per_epoch"]),
            "auto_promote": "on" if options["auto_promote"] else "",
        }
    )
    if not form.is_valid():
        problems = [
            ("" if name == "__all__" else f"--{name.replace('_', '-')} {options.get(name)}: ")
            + " ".join(map(str, errors))
            for name, errors in form.errors.items()
        ]
        raise CommandError("; ".join(problems))
