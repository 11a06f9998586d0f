"""Running a TrainingRun: prepare chips, fit, evaluate, register the candidate model.

Used by the Celery task (``training.tasks.train``) and by ``manage.py train``. It imports
TensorFlow, so only workers and management commands load it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone
from django.utils.translation import gettext_noop

from jobs import lifecycle
from predictor.messages import FINE_TUNED
from predictor.models import ModelVersion
from predictor.vision.bundled_models import CHIP_SIZE
from training import messages
from training.messages import STAGE_LOG, Stage
from training.models import Dataset, TrainingRun
from training.pipeline.chips import ChipSource

logger = logging.getLogger(__name__)
Status = TrainingRun.Status
# How many (step, loss, MAE) points a run keeps for its loss-by-step chart.
STEP_LOSS_POINTS = 400
# Log lines this module no longer writes but runs logged earlier hold: kept in the catalogue
# so that those logs stay translated.
EARLIER_LOG_LINES = (
    # Age-group runs before the coverage fit (2026-12-06).
    gettext_noop("calibration: temperature %(temperature)s, fitted on %(fitted_on)s"),
)


def claim_run(run_id: int) -> TrainingRun | None:
    """Take a queued run (or one whose worker died) for this process; None if not ours
    (``jobs.lifecycle.claim``). A run that had started before resumes from its checkpoint."""
    run = lifecycle.claim(TrainingRun, run_id)
    if run is not None and run.attempts > 1:
        run.append_log(
            gettext_noop("resumed by %(worker)s (attempt %(attempt)s)"),
            worker=run.claimed_by,
            attempt=run.attempts,
        )
    return run


def starting_point(run: TrainingRun) -> tuple[str, str | None, str]:
    """The fit's ``init``, the ``.keras`` file it starts from (for ``"active"``), and the
    starting model's name for the log and the description. A run that starts from the active
    model keeps a copy of it with its checkpoints, so a resume starts from the same one even
    if another model was promoted meanwhile."""
    if run.init != TrainingRun.Init.ACTIVE:
        return run.init, None, run.init
    copy = checkpoint_dir(run) / "start.keras"
    recorded = checkpoint_dir(run) / "start.txt"
    if copy.exists() and recorded.exists():
        return "active", str(copy), recorded.read_text().strip()
    version = ModelVersion.active()
    if version.is_bundled:
        return "bundled", None, version.name
    from predictor.serving import load_network

    copy.parent.mkdir(parents=True, exist_ok=True)
    load_network(version).save(copy)
    # The start's second opinion goes with the copy (start_second_opinion).
    (checkpoint_dir(run) / "start_second_opinion.json").write_text(
        json.dumps(version.second_opinion or {})
    )
    recorded.write_text(version.name)
    return "active", str(copy), version.name


def start_second_opinion(run: TrainingRun, network, val: dict) -> dict:
    """The second opinion of the model a run started from (``{}`` if none, or if the run
    does not start from the active model), with its mix weights fitted again on the run's
    validation split (:func:`predictor.vision.second_opinion.fit_weights`), for the run's
    ``network``: the candidate is measured, calibrated, judged and served with it."""
    recorded = checkpoint_dir(run) / "start_second_opinion.json"
    if run.init != TrainingRun.Init.ACTIVE or not recorded.exists():
        return {}
    settings_ = json.loads(recorded.read_text() or "{}")
    from predictor.vision.second_opinion import AGES, SecondOpinion, fit_weights, from_settings

    if not settings_ or network.num_classes != AGES or not len(val["ages"]):
        return {}
    from training.pipeline.calibration import split_probabilities

    opinion = from_settings(settings_)
    chips = val["chips"]
    weights = fit_weights(
        split_probabilities(network, chips),  # a batch at a time: memory stays bounded
        opinion.head_probabilities(chips),
        val.get("age_low", val["ages"]),
        val.get("age_high", val["ages"]),
    )
    return SecondOpinion(opinion.name, opinion.head, *weights).settings()


def checkpoint_dir(run: TrainingRun) -> Path:
    return Path(settings.FACEAGE_TRAINING_DIR) / f"run-{run.pk}"


def chip_sources(dataset: Dataset) -> list[ChipSource]:
    return [
        ChipSource(
            path=item.path,
            age=item.age,
            gender=item.gender,
            split=item.split,
            face_box=tuple(item.face_box) if item.face_box else None,
            age_high=item.age_high,
            race=item.race,
        )
        for item in dataset.items.order_by("path")
    ]


def start_chip_size(run: TrainingRun, init: str, start_model: str | None) -> int:
    """The side of the chips a run's network reads: its start's (64 px for the dlib
    network; a shipped or fine-tuned start may read larger chips)."""
    import keras

    folder = checkpoint_dir(run)
    if (folder / "state.json").exists() and (folder / "last.keras").exists():
        # A resume goes on training its own checkpoint, whatever was promoted meanwhile.
        return int(keras.saving.load_model(folder / "last.keras", compile=False).input_shape[1])
    if init != "active" or not start_model:
        return CHIP_SIZE
    return int(keras.saving.load_model(start_model, compile=False).input_shape[1])


def prepare_chips(dataset: Dataset, progress=None, chip_size: int = CHIP_SIZE) -> tuple[Path, dict]:
    """Aligned-chip TFRecords for a dataset, ``chip_size`` pixels a side, built once and then
    reused."""
    from training.pipeline.tfrecords import build_chip_cache

    if dataset.kind == Dataset.Kind.FEEDBACK:  # the chips the worker cut, from the database
        from training import feedback

        # Faces withdrawn since the snapshot leave it now (none is added); the older caches,
        # which may hold them, go.
        dataset = feedback.snapshot(dataset, feedback.label_ids(dataset))
        cache_dir, manifest = build_chip_cache(
            chip_sources(dataset),
            Path("."),
            feedback.cache_root(dataset),
            progress=progress,
            cut=feedback.stored_chips,
            chip_size=chip_size,
        )
        feedback.prune_caches(dataset, keep=cache_dir)
        return cache_dir, manifest
    cache_dir, manifest = build_chip_cache(
        chip_sources(dataset),
        Path(dataset.source) if dataset.kind != Dataset.Kind.CSV else Path(dataset.source).parent,
        Path(settings.FACEAGE_CHIP_CACHE_DIR),
        workers=settings.FACEAGE_PREPARE_WORKERS,
        progress=progress,
        chip_size=chip_size,
    )
    return cache_dir, manifest


class SizedSplit:
    """One split of a dataset with its chips cut at whatever size a network reads: each
    size is cut (and cached) once, when first asked for. A candidate and the active model
    may read different sizes; each is measured on chips cut for it, from the same faces."""

    def __init__(self, dataset: Dataset, split: str, progress=None) -> None:
        self.dataset, self.split, self.progress = dataset, split, progress
        self._by_size: dict[int, dict] = {}

    def keep(self, chip_size: int, split: dict) -> None:
        """``split`` is this split at ``chip_size``, already loaded by the caller."""
        self._by_size[chip_size] = split

    def at(self, chip_size: int) -> dict:
        if chip_size not in self._by_size:
            from training.pipeline.tfrecords import load_split

            cache_dir, manifest = prepare_chips(self.dataset, self.progress, chip_size=chip_size)
            self._by_size[chip_size] = load_split(cache_dir, manifest, self.split)
        return self._by_size[chip_size]

    def for_network(self, network) -> dict:
        return self.at(network.chip_size)


def serving_network(version: ModelVersion):
    """A version's network as workers serve it: its temperature, and mirrored inference
    when that is on, so that every figure measures what people get."""
    from predictor.serving import load_network

    network = load_network(version)
    network.mirrored = settings.FACEAGE_MIRRORED_INFERENCE
    return network


def evaluate_version_on(version: ModelVersion, split: SizedSplit) -> dict:
    """The version, served as workers serve it, on ``split`` cut at the size it reads."""
    from training.pipeline.evaluation import evaluate_network

    network = serving_network(version)
    return evaluate_network(network, split.for_network(network))


def training_datasets(run: TrainingRun) -> list[tuple[Dataset, float]]:
    """The run's own dataset (weight 1) first, then its further ones with their weights."""
    rows = run.extra_datasets.select_related("dataset").order_by("pk")  # same mix on a resume
    return [(run.dataset, 1.0), *((row.dataset, row.weight) for row in rows)]


SPLIT_KEYS = ("chips", "ages", "age_low", "age_high", "genders", "races")


def concatenate_splits(splits: list[dict]) -> dict:
    """One split made of several (the keys every training split has)."""
    if len(splits) == 1:
        return splits[0]
    keys = [key for key in SPLIT_KEYS if all(key in split for split in splits)]
    return {key: np.concatenate([split[key] for split in splits]) for key in keys}


def mix_splits(splits: list[dict], weights: list[float], seed: int = 0) -> dict:
    """One training split drawn from several in proportion to ``weights``: as many faces
    as they hold together, each split's share ``weight / sum(weights)``, a small split
    repeated and a large one subsampled (a fresh draw would need a fresh cache)."""
    if len(splits) == 1:
        return splits[0]
    total = sum(len(split["ages"]) for split in splits)
    rng = np.random.default_rng(seed)
    parts = []
    for split, weight in zip(splits, weights, strict=True):
        size = len(split["ages"])
        if size == 0:
            continue
        wanted = round(total * weight / sum(weights))
        index = np.concatenate(
            [np.tile(np.arange(size), wanted // size), rng.permutation(size)[: wanted % size]]
        )
        parts.append({key: split[key][index] for key in SPLIT_KEYS if key in split})
    return concatenate_splits(parts)


def benchmark_splits(
    run: TrainingRun, progress=None, chip_size: int = CHIP_SIZE
) -> list[tuple[str, SizedSplit]]:
    """The test split of every benchmark dataset, its chips cut (and cached) now at the
    run's ``chip_size``, during the preparing stage, with ``progress`` beating the run's
    heartbeat."""
    splits = []
    for benchmark in Dataset.objects.filter(is_benchmark=True, status=Dataset.Status.READY):
        run.append_log(gettext_noop("benchmark %(name)s: preparing its chips"), name=benchmark.name)
        test = SizedSplit(benchmark, "test", progress)
        if len(test.at(chip_size)["ages"]):
            splits.append((benchmark.name, test))
    return splits


def judge_on_benchmarks(
    run: TrainingRun, splits: list[tuple[str, SizedSplit]], candidate, active
) -> tuple[dict, list]:
    """The candidate and the active network on every benchmark's test split
    (:mod:`training.gate`), each on chips of the size it reads: results by dataset name, and
    the regressions found."""
    from training.gate import benchmark_results
    from training.pipeline.evaluation import evaluate_network

    if not splits:
        return {}, []
    results, regressions = benchmark_results(
        splits,
        lambda split: evaluate_network(candidate, split.for_network(candidate)),
        lambda split: evaluate_network(active, split.for_network(active)),
    )
    for name, result in results.items():
        if "accuracy" in result["candidate"]:
            template = gettext_noop(
                "benchmark %(name)s: age-group accuracy %(candidate)s (the active model: "
                "%(active)s)"
            )
            key, digits = "accuracy", 3
        else:
            template = gettext_noop(
                "benchmark %(name)s: MAE %(candidate)s (the active model: %(active)s)"
            )
            key, digits = "mae", 3
        run.append_log(
            template,
            name=name,
            candidate=f"{result['candidate'][key]:.{digits}f}",
            active=f"{result['active'][key]:.{digits}f}",
        )
    return results, regressions


def _storable_metrics(metrics: dict) -> dict:
    """An epoch's metrics as JSON can hold them: a value that is not a number is None (JSON
    has no NaN; PostgreSQL and SQLite's JSON check both refuse one)."""
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in metrics.items()
    }


def _shown(value: float | None) -> str:
    """A metric in the run's log: two decimals, or a dash where it is not a number."""
    return "-" if value is None else f"{value:.2f}"


class TrainingDiverged(RuntimeError):
    """The loss is no longer a number: the run cannot learn anything more."""


class _RunReporter:
    """Writes progress to the run row, at most every couple of seconds."""

    def __init__(self, run: TrainingRun, also=None) -> None:
        self.run = run
        self.also = also
        self.last_write = 0.0
        self.losses: list[list[float]] = list(run.step_losses or [])  # a resumed run's too

    def stage(self, stage: Stage, progress: float = 0.0) -> None:
        TrainingRun.objects.filter(pk=self.run.pk).update(
            stage=stage, progress=progress, stage_done=0, stage_total=0, heartbeat_at=timezone.now()
        )
        self.run.append_log(STAGE_LOG[stage])

    def preparing(self, done: int, total: int) -> None:
        """Chips cut so far, of how many: the stage's own count, shown beside its name."""
        if time.monotonic() - self.last_write > 2 or done == total:
            self.last_write = time.monotonic()
            TrainingRun.objects.filter(pk=self.run.pk).update(
                stage=Stage.PREPARING,
                stage_done=done,
                stage_total=total,
                heartbeat_at=timezone.now(),
            )

    def training(self, info: dict) -> None:
        if self.also is not None:
            self.also(info)
        step = (info["epoch"] - 1) * info["steps_per_epoch"] + info["step"]
        finite = math.isfinite(info["loss"]) and math.isfinite(info["mae"])
        if finite and (not self.losses or step > self.losses[-1][0]):
            self.losses.append([step, round(info["loss"], 4), round(info["mae"], 3)])
            if len(self.losses) > STEP_LOSS_POINTS:  # thin out: every other point, the last kept
                self.losses = self.losses[-1::-2][::-1]
        if time.monotonic() - self.last_write < 2:
            return
        self.last_write = time.monotonic()
        TrainingRun.objects.filter(pk=self.run.pk).update(
            epoch=info["epoch"],
            step=info["step"],
            steps_per_epoch=info["steps_per_epoch"],
            progress=info["progress"],
            eta_seconds=info["eta_seconds"],
            step_losses=self.losses,
            heartbeat_at=timezone.now(),
        )

    def epoch_done(self, metrics: dict) -> None:
        if not math.isfinite(metrics["loss"]):
            # A learning rate too high for the run: every later step is NaN too, and the
            # history (JSON) cannot hold a NaN on PostgreSQL.
            raise TrainingDiverged(
                f"the training loss became {metrics['loss']} in epoch {metrics['epoch']}: "
                "the learning rate is too high for this run; start one with a lower rate"
            )
        metrics = _storable_metrics(metrics)
        run = TrainingRun.objects.get(pk=self.run.pk)
        run.history = [*run.history, metrics]
        run.step_losses = self.losses  # every point so far, however recent the last write
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["history", "step_losses", "heartbeat_at"])
        self.run.append_log(
            gettext_noop(
                "epoch %(epoch)s done: loss %(loss)s, training MAE %(mae)s, validation MAE "
                "%(val_mae)s"
            ),
            epoch=metrics["epoch"],
            loss=f"{metrics['loss']:.3f}",
            mae=_shown(metrics["mae"]),
            val_mae=_shown(metrics["val_mae"]),
        )

    def cancelled(self) -> bool:
        return TrainingRun.objects.filter(pk=self.run.pk, cancel_requested=True).exists()


def execute_run(run: TrainingRun, terminal_progress=None, on_training=None) -> TrainingRun:
    """Do the whole run (the row must already be claimed by this process).

    ``terminal_progress(done, total)`` and ``on_training(info)`` let a terminal show bars.
    """
    from training.pipeline.calibration import calibrate
    from training.pipeline.evaluation import evaluate_network
    from training.pipeline.fit import FitConfig, FitHooks, fit
    from training.pipeline.tfrecords import load_split

    reporter = _RunReporter(run, on_training)
    dataset = run.dataset
    reporter.stage(Stage.PREPARING)
    # The start decides the chip size: every chip of the run is cut for the network it trains.
    init, start_model, start_name = starting_point(run)
    chip_size = start_chip_size(run, init, start_model)
    trains, vals, weights = [], [], []
    val_datasets: list[np.ndarray] = []  # each validation face's dataset, for calibration
    test = SizedSplit(dataset, "test", terminal_progress or reporter.preparing)
    mix = training_datasets(run)
    from training.feedback import freeze_for_run

    benchmark_sets = Dataset.objects.filter(is_benchmark=True, status=Dataset.Status.READY)
    # People's labels: the consented faces at the run's first start (kept with the run).
    freeze_for_run(run, [source for source, _ in mix] + list(benchmark_sets))
    for source, weight in mix:
        cache_dir, manifest = prepare_chips(
            source, progress=terminal_progress or reporter.preparing, chip_size=chip_size
        )
        counts, how = manifest["counts"], manifest["how"]
        run.append_log(
            gettext_noop(
                "%(name)s: %(train)s training, %(val)s validation and %(test)s test faces "
                "(the detector found %(detected)s, the dataset's box gave %(dataset_box)s, the "
                "whole image %(whole_image)s; %(skipped)s skipped)"
            ),
            name=source.name,
            **{split: counts.get(split, 0) for split in ("train", "val", "test")},
            **{way: how.get(way, 0) for way in ("detected", "dataset_box", "whole_image")},
            skipped=how.get("skipped", 0),
        )
        train, val = (load_split(cache_dir, manifest, s) for s in ("train", "val"))
        if source.pk == dataset.pk:
            test.keep(chip_size, load_split(cache_dir, manifest, "test"))
            if not (len(train["ages"]) and len(val["ages"]) and len(test.at(chip_size)["ages"])):
                raise ValueError(
                    f"the dataset needs train, validation and test faces; has {manifest['counts']}"
                )
        trains.append(train)
        vals.append(val)
        weights.append(weight)
        val_datasets.append(np.full(len(val["ages"]), source.name))
    train, val = mix_splits(trains, weights), concatenate_splits(vals)
    if len(trains) > 1:
        run.append_log(
            gettext_noop("training on %(datasets)s: %(faces)s faces an epoch"),
            datasets=", ".join(f"{s.name} (weight {w:g})" for s, w in mix),
            faces=len(train["ages"]),
        )
    benchmarks_to_judge = benchmark_splits(run, terminal_progress or reporter.preparing, chip_size)
    # The active model may read another size: the same faces are cut for it now, while the
    # feedback just frozen is what prepare_chips reads (evaluation cuts them itself only if
    # a model of yet another size was promoted meanwhile).
    active_size = ModelVersion.active().chip_size
    if active_size != chip_size:
        for split in [test, *(benchmark for _, benchmark in benchmarks_to_judge)]:
            split.at(active_size)
    if run.max_train_images and len(train["ages"]) > run.max_train_images:
        keep = np.random.default_rng(0).permutation(len(train["ages"]))[: run.max_train_images]
        train = {key: value[keep] for key, value in train.items()}

    reporter.stage(Stage.TRAINING)
    run.append_log(gettext_noop("starting from %(name)s"), name=start_name)
    config = FitConfig(
        start_model=start_model,
        epochs=run.epochs,
        batch_size=run.batch_size,
        learning_rate=run.learning_rate,
        init=init,
        steps_per_epoch=run.max_steps_per_epoch,
    )
    result = fit(
        train,
        val,
        config,
        checkpoint_dir(run),
        FitHooks(
            on_progress=reporter.training,
            on_epoch=reporter.epoch_done,
            should_stop=reporter.cancelled,
        ),
    )
    # The checkpoint's history is the truth: a worker killed after an epoch's checkpoint but
    # before its on_epoch row update left that epoch out of the row, and a resume skips it.
    history = [_storable_metrics(epoch) for epoch in result.history]
    TrainingRun.objects.filter(pk=run.pk).update(history=history)
    if result.cancelled:
        _finish(run, Status.CANCELLED, error_code=messages.CANCELLED)
        return run

    reporter.stage(Stage.EVALUATING, progress=1.0)
    # Measured, calibrated and judged as it will be served (mirrored inference included, and
    # the second opinion of the model it started from, if that had one).
    result.network.mirrored = settings.FACEAGE_MIRRORED_INFERENCE
    second_opinion = start_second_opinion(run, result.network, val)
    if second_opinion:
        from predictor.vision.second_opinion import from_settings

        result.network.second_opinion = from_settings(second_opinion)
        run.append_log(
            gettext_noop(
                "second opinion: %(head)s, mixed with weights %(network_weight)s (network) and "
                "%(descriptor_weight)s (head), fitted on the validation split"
            ),
            **{key: str(value) for key, value in second_opinion.items()},
        )
    metrics = evaluate_network(result.network, test.at(chip_size))
    # Temperature scaling: fitted on this run's validation split, checked on its test split.
    # Several datasets: a temperature that holds 80% on each one's validation faces.
    temperature, calibration = calibrate(
        result.network, val, test.at(chip_size), parts=np.concatenate(val_datasets)
    )
    if calibration["test_labels"] == "age_groups":
        # Groups have no true age to hold: the figure is the expected share of their years.
        template = gettext_noop(
            "calibration: temperature %(temperature)s; the 80%% interval held, in expectation, "
            "%(before)s of the test faces' age-group years before and %(after)s after"
        )
    else:
        template = gettext_noop(
            "calibration: temperature %(temperature)s; the 80%% interval held the true age "
            "for %(before)s of the test faces before and %(after)s after"
        )
    run.append_log(
        template,
        temperature=f"{temperature:.3f}",
        before=f"{calibration['before']['coverage_80']:.1%}",
        after=f"{calibration['after']['coverage_80']:.1%}",
    )
    baseline_version = ModelVersion.active()
    baseline_network = serving_network(baseline_version)
    # The same faces, cut at the size the active network reads (cut now if it differs).
    baseline = evaluate_network(baseline_network, test.for_network(baseline_network))
    baseline["model_version"] = baseline_version.name

    benchmarks, regressions = judge_on_benchmarks(
        run, benchmarks_to_judge, result.network, baseline_network
    )

    name = f"{dataset.name}-run{run.pk}"
    artifact = f"models/{name}.keras"
    local = checkpoint_dir(run) / "model.keras"
    result.network.save(local)
    with open(local, "rb") as handle:
        artifact = default_storage.save(artifact, handle)
    version = ModelVersion.objects.create(
        name=name,
        framework=ModelVersion.FRAMEWORK_KERAS,
        artifact=artifact,
        temperature=temperature,
        second_opinion=second_opinion,
        description_code=FINE_TUNED,
        description_params={"init": start_name, "dataset": dataset.name, "run": run.pk},
        metrics={
            "dataset": dataset.name,
            "split": "test",
            **{k: v for k, v in metrics.items()},
            "baseline": {k: v for k, v in baseline.items() if k != "scatter"},
            "calibration": calibration,
            "mirrored": settings.FACEAGE_MIRRORED_INFERENCE,
            "benchmarks": benchmarks,
            "gate": {
                "active_model": baseline_version.name,
                "regressions": [regression.as_dict() for regression in regressions],
                "mae_tolerance": settings.FACEAGE_GATE_MAE_TOLERANCE,
                "accuracy_tolerance": settings.FACEAGE_GATE_ACCURACY_TOLERANCE,
            },
            "training": {
                "epochs_run": len(result.history),
                "best_epoch": result.best_epoch,
                "best_val_mae": result.best_val_mae,
                "seconds": round(result.seconds, 1),
                "train_images": len(train["ages"]),
                "chip_size": chip_size,
            },
        },
    )
    TrainingRun.objects.filter(pk=run.pk).update(
        model_version=version, test_metrics=metrics, baseline_metrics=baseline
    )
    run.append_log(
        gettext_noop("test MAE %(mae)s (the active model %(active)s: %(active_mae)s)"),
        mae=f"{metrics['mae']:.3f}",
        active=baseline_version.name,
        active_mae=f"{baseline['mae']:.3f}",
    )
    if run.auto_promote:
        if metrics["mae"] >= baseline["mae"]:
            run.append_log(
                gettext_noop("not promoted: it does not beat %(active)s on this split"),
                active=baseline_version.name,
            )
        elif regressions:
            run.append_log(
                gettext_noop("not promoted: worse than the active model on %(regressions)s"),
                regressions="; ".join(str(regression) for regression in regressions),
            )
        else:
            version.activate()
            run.append_log(
                gettext_noop(
                    "promoted %(name)s: it beats the active model on the same split and is no "
                    "worse on %(count)s benchmark(s)"
                ),
                name=version.name,
                count=len(benchmarks),
            )
    _finish(run, Status.SUCCEEDED)
    run.refresh_from_db()
    return run


_FINISHED: dict[str, str] = {
    Status.SUCCEEDED: gettext_noop("finished: succeeded"),
    Status.FAILED: gettext_noop("finished: failed"),
    Status.CANCELLED: gettext_noop("finished: cancelled"),
}


def _finish(run: TrainingRun, status: str, error_code: str = "") -> None:
    TrainingRun.objects.filter(pk=run.pk).update(
        status=status,
        error_code=error_code,
        error_params={},
        finished_at=timezone.now(),
        progress=1.0 if status == Status.SUCCEEDED else run.progress,
    )
    run.append_log(_FINISHED[status])


def fail_run(run_id: int, code: str, params: dict | None = None) -> None:
    """Fail a run that is not finished with a code of ``training.messages`` and its values."""
    lifecycle.fail(TrainingRun, run_id, code, params)
