"""Train a network to ship in the repository as the default model.

    .venv/bin/python manage.py build_bundled_model [--epochs 6] [--learning-rate 5e-4] [--soup N]
        [--soup-with NAME ...] [--start NAME] [--scan-look SHARE]

The default shipped now, faceage-v5, was built with (its card's ``command``; docs/benchmarks.md)

    .venv/bin/python manage.py build_bundled_model --name faceage-v5 --start faceage-v4 \\
        --scan-look 0.3 --low-resolution 0.2 --epochs 3 --learning-rate 1e-4 \\
        --soup-with faceage-v4 --replaces faceage-v4

Data: FairFace's training photos only (CC BY 4.0, so the result may be redistributed), split
90/10 into training and validation. The validation split picks the best epoch and fits the
calibration temperature. Nothing is tuned on what the card reports as test figures:
FairFace's own validation photos (age-group accuracy) and the UTKFace development split's
test side (MAE, children's MAE, interval coverage; UTKFace is non-commercial, so it is used
for measurement only, never for training).

The start is the CC0 dlib network, fine-tuned with interval labels whose soft target inside
each age group follows the start's own distribution (training.pipeline.fit). ``--soup N``
trains N such networks with seeds SEED..SEED+N-1 and ships the mean of their weights
(training.pipeline.fit.soup): one network, whose validation and test figures are the
card's. ``--soup-with NAME`` adds a network already shipped in predictor/vision/models/ (a
fine-tune of the same start, at the same chip size) to that mean. ``--start NAME`` fine-tunes
such a shipped network instead of the dlib start. Chips are cut
by the serving code (CenterFace + dlib's 5-point alignment) and cached in
FACEAGE_CHIP_CACHE_DIR. Writes ``predictor/vision/models/<name>.keras`` and ``<name>.json``
(the card's figures), and prints them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from predictor.vision.bundled_models import (
    CHIP_SIZE,
    DEFAULT_SHIPPED_MODEL,
    shipped_versions,
    shipped_weights_name,
)
from training.progress_bar import ProgressBar

MODELS_DIR = Path(settings.BASE_DIR) / "predictor" / "vision" / "models"
# The options that decide what a build trains (its card's command repeats them).
RECIPE_OPTIONS = (
    "epochs",
    "learning_rate",
    "batch_size",
    "steps_per_epoch",
    "balance_groups",
    "chip_size",
    "teacher",
    "distill",
    "low_resolution",
    "scan_look",
    "start",
    "seed",
    "soup",
    "soup_with",
)
# The options that decide one member of a soup (its checkpoints are keyed by them).
MEMBER_OPTIONS = tuple(key for key in RECIPE_OPTIONS if key not in ("soup", "soup_with"))


def chips_for(
    records, root: Path, split_of, workers: int, label: str, chip_size: int = CHIP_SIZE
) -> dict[str, np.ndarray]:
    """``chip_size`` chips and labels of ``records`` (cached by content), with a terminal
    progress bar."""
    from training.pipeline.chips import ChipSource, cut_chips
    from training.pipeline.tfrecords import PIPELINE_VERSION

    size_key = "" if chip_size == CHIP_SIZE else f"{chip_size}\n"
    digest = hashlib.sha256(f"{PIPELINE_VERSION}\n{root}\n{size_key}".encode())
    for record in records:
        digest.update(f"{record.path}\t{record.age}\t{record.age_high}\n".encode())
    cache = Path(settings.FACEAGE_CHIP_CACHE_DIR) / f"bundled-{label}-{digest.hexdigest()[:16]}.npz"
    if cache.exists():
        with np.load(cache) as saved:
            return dict(saved)
    sources = [ChipSource(r.path, r.age, r.gender, split_of(r), None) for r in records]
    by_path = {r.path: r for r in records}
    bar = ProgressBar(f"chips ({label})")
    chips, low, high, splits = [], [], [], []
    for result in cut_chips(sources, root, workers=workers, progress=bar, chip_size=chip_size):
        if result.chip is None:
            continue
        record = by_path[result.source.path]
        chips.append(result.chip)
        low.append(record.age)
        high.append(record.age if record.age_high is None else record.age_high)
        splits.append(result.source.split)
    data = {
        "chips": np.stack(chips),
        "ages": np.asarray(low, np.int32),
        "age_low": np.asarray(low, np.int32),
        "age_high": np.asarray(high, np.int32),
        "split": np.asarray(splits),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **data)  # type: ignore[arg-type]  # numpy's stub reads allow_pickle
    return data


def balanced(data: dict[str, np.ndarray], cap: float, seed: int) -> dict[str, np.ndarray]:
    """``data`` with each age group's faces repeated about sqrt(largest group / group) times
    (at most ``cap``; the fraction by chance), so that rare groups weigh more in training
    without a few faces being repeated dozens of times. Adds ``index``: the original row."""
    rng = np.random.default_rng(seed)
    groups = np.stack([data["age_low"], data["age_high"]], axis=1)
    _groups, group_of, counts = np.unique(groups, axis=0, return_inverse=True, return_counts=True)
    factor = np.minimum(cap, np.sqrt(counts.max() / counts))[group_of.ravel()]
    repeats = np.floor(factor).astype(int) + (rng.random(len(factor)) < factor % 1)
    rows = np.repeat(np.arange(len(factor)), repeats)
    return {**{key: value[rows] for key, value in data.items()}, "index": rows}


def take(data: dict[str, np.ndarray], split: str) -> dict[str, np.ndarray]:
    keep = data["split"] == split
    return {key: value[keep] for key, value in data.items() if key != "split"}


def fairface_sides(records) -> dict[str, str]:
    """FairFace's training photos split 90/10 into ``train`` and ``val`` (seed 0), by path;
    a photo not in it (FairFace's own validation photos) is the build's ``test``."""
    from training.datasets.splits import assign_splits

    pool = [r for r in records if r.path.startswith("train/")]
    return assign_splits(pool, fractions=(0.9, 0.1, 0.0), seed=0)


def utkface_test_sample(records, count: int) -> list:
    """``count`` faces of the UTKFace development split's test side, the same every time."""
    from training.datasets.splits import assign_splits

    sides = assign_splits(records)
    test = [r for r in records if sides[r.path] == "test"]
    order = np.random.default_rng(0).permutation(len(test))[:count]
    return [test[i] for i in sorted(order)]


def held_out_splits(chip_size: int, workers: int, utkface_test: int = 1500):
    """The splits a build is judged on, cut as the build cuts them at ``chip_size``: the
    validation split of FairFace's training photos, FairFace's own validation photos (the
    card's FairFace test), and the ``utkface_test`` faces of UTKFace's test side that a build
    with ``--utkface-test`` of that size samples. Cached in FACEAGE_CHIP_CACHE_DIR."""
    from training.datasets.fairface import read_fairface
    from training.datasets.utkface import read_utkface

    root = Path(settings.FACEAGE_DATASETS_DIR)
    records, _ = read_fairface(root / "fairface")
    sides = fairface_sides(records)
    wanted = [r for r in records if sides.get(r.path, "test") != "train"]
    fair = chips_for(
        wanted,
        root / "fairface",
        lambda r: sides.get(r.path, "test"),
        workers,
        "fairface-valtest",
        chip_size,
    )
    utk_test = utkface_test_sample(read_utkface(root / "utkface")[0], utkface_test)
    utk = chips_for(utk_test, root / "utkface", lambda r: "test", workers, "utkface", chip_size)
    return take(fair, "val"), take(fair, "test"), utk


def calibration_figures(network, val: dict, test: dict, utk: dict) -> tuple[float, dict, dict]:
    """A shipped network's temperature and the figures of its 80% intervals.

    The temperature is fitted on FairFace's validation split ``val`` (age groups): the
    smallest whose intervals hold 80% of the ages in expectation
    (training.pipeline.calibration.calibrate). Returns the temperature, the calibration report
    on the UTKFace test faces ``utk`` (before and after: the model page's table), and the
    card's interval figures on ``utk``, ``val`` and FairFace's own validation photos
    ``test``."""
    from training.pipeline.calibration import calibrate, interval_report, split_probabilities

    temperature, report = calibrate(network, val, utk)
    report["fitted_on"] = (
        "FairFace validation split (age groups): 80% of the ages inside the 80% interval, "
        "in expectation with the age uniform in its group"
    )
    test_p = split_probabilities(network, test["chips"])
    return (
        temperature,
        report,
        {
            "utkface_test_intervals": report["after"],
            "fairface_validation_intervals": report["validation"],
            "fairface_test_intervals": interval_report(
                test_p, test["age_low"], network.class_ages, temperature, test["age_high"]
            ),
        },
    )


class Command(BaseCommand):
    help = "Train the default model that ships in the repository (FairFace only)."

    def add_arguments(self, parser):
        # The network the default serves: refused (below) while a card serves its weights, as
        # faceage-v6 serves faceage-v5's with a second opinion.
        parser.add_argument("--name", default=shipped_weights_name(DEFAULT_SHIPPED_MODEL))
        parser.add_argument("--epochs", type=int, default=6)
        parser.add_argument("--learning-rate", type=float, default=5e-4)
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--steps-per-epoch", type=int, default=None)
        parser.add_argument(
            "--chip-size",
            type=int,
            default=CHIP_SIZE,
            help="side of the aligned face chip the network reads, in pixels (the dlib "
            f"network was trained on {CHIP_SIZE}; its weights fit any size)",
        )
        parser.add_argument(
            "--seed", type=int, default=0, help="the training run's random seed (default 0)"
        )
        parser.add_argument(
            "--soup",
            type=int,
            default=1,
            metavar="N",
            help="train N networks, with seeds SEED to SEED+N-1, and ship the mean of their "
            "weights (a model soup: one network, served at one network's cost; default 1)",
        )
        parser.add_argument(
            "--soup-with",
            action="append",
            default=[],
            metavar="NAME",
            help="a network shipped in predictor/vision/models/, fine-tuned from the same start "
            "at the same chip size, whose weights join the soup's mean (repeat for more)",
        )
        parser.add_argument(
            "--replaces",
            default=DEFAULT_SHIPPED_MODEL,
            metavar="NAME",
            help="the shipped network this build replaces as the default: the registry (model "
            "page, /api/v1/models/) sets the build's figures beside it (default: the current "
            "default; the dlib network where the build overwrites it)",
        )
        parser.add_argument("--utkface-test", type=int, default=1500)
        parser.add_argument("--workers", type=int, default=settings.FACEAGE_PREPARE_WORKERS)
        parser.add_argument("--out", type=Path, default=MODELS_DIR)
        parser.add_argument(
            "--teacher",
            default=None,
            metavar="NAME",
            help="a network shipped in predictor/vision/models/ whose distributions shape the "
            "soft target inside each age group (default: the dlib network the run starts from), "
            "each reading the faces cut at its own chip size",
        )
        parser.add_argument(
            "--distill",
            type=float,
            default=0.0,
            metavar="WEIGHT",
            help="mix the teacher's whole distribution into every face's soft target with this "
            "weight (0: the teacher shapes the target inside the face's age group only)",
        )
        parser.add_argument(
            "--low-resolution",
            type=float,
            default=0.0,
            metavar="SHARE",
            help="the share of training chips that augmentation also blurs (shrunk to 50-100%% "
            "of their side and enlarged back; 0: none)",
        )
        parser.add_argument(
            "--start",
            default=None,
            metavar="NAME",
            help="fine-tune a network shipped in predictor/vision/models/ (itself a fine-tune "
            "of the dlib start, at this build's chip size) instead of the dlib start",
        )
        parser.add_argument(
            "--scan-look",
            type=float,
            default=0.0,
            metavar="SHARE",
            help="the share of training chips that augmentation also gives the look of a "
            "scanned old print (black and white, sepia or faded; softened; grain; JPEG; 0: none)",
        )
        parser.add_argument(
            "--balance-groups",
            type=float,
            default=1.0,
            metavar="CAP",
            help="repeat the training faces of each age group sqrt(largest group / group) "
            "times, at most CAP times (1: off), so rare groups (0-2, 60-69, 70+) weigh more",
        )

    def handle(self, *args, **options):
        from predictor.vision.age_network import AgeNetwork
        from training.datasets.fairface import read_fairface
        from training.datasets.utkface import read_utkface
        from training.pipeline.fit import FitConfig, FitHooks, fit, soup

        started = time.monotonic()
        if not 0.0 <= options["distill"] < 1.0:
            raise CommandError("--distill is a weight from 0 up to (not including) 1")
        if not 0.0 <= options["low_resolution"] <= 1.0:
            raise CommandError("--low-resolution is a share from 0 to 1")
        if not 0.0 <= options["scan_look"] <= 1.0:
            raise CommandError("--scan-look is a share from 0 to 1")
        if options["soup"] < 1:
            raise CommandError("--soup is the number of networks to average: 1 or more")
        joining = [soup_member(name, options["chip_size"]) for name in options["soup_with"]]
        if options["start"]:
            soup_member(options["start"], options["chip_size"], "--start")
        served_by = [
            name
            for name in shipped_versions()
            if name != options["name"] and shipped_weights_name(name) == options["name"]
        ]
        if served_by and options["out"].resolve() == MODELS_DIR.resolve():
            raise CommandError(
                f"{', '.join(served_by)} serve{'s' if len(served_by) == 1 else ''} the weights "
                f"of {options['name']}: build under "
                "another --name (or --out), and build "
                f"{'its' if len(served_by) == 1 else 'their'} second opinion again for it"
            )
        datasets = Path(settings.FACEAGE_DATASETS_DIR)
        fairface_root, utkface_root = datasets / "fairface", datasets / "utkface"
        for root in (fairface_root, utkface_root):
            if not root.is_dir():
                raise CommandError(f"no dataset folder at {root} (FACEAGE_DATASETS_DIR)")
        records, _ = read_fairface(fairface_root)
        sides = fairface_sides(records)
        utk_test = utkface_test_sample(read_utkface(utkface_root)[0], options["utkface_test"])
        at_size: dict[int, tuple[dict, dict]] = {}

        def splits_at(size: int) -> tuple[dict, dict]:
            """FairFace (train / val / test rows) and the UTKFace test faces, cut at ``size``."""
            if size not in at_size:
                at_size[size] = (
                    chips_for(
                        records,
                        fairface_root,
                        lambda r: sides.get(r.path, "test"),  # FairFace's own val photos: test
                        options["workers"],
                        "fairface",
                        size,
                    ),
                    chips_for(
                        utk_test,
                        utkface_root,
                        lambda r: "test",
                        options["workers"],
                        "utkface",
                        size,
                    ),
                )
            return at_size[size]

        fair, utk = splits_at(options["chip_size"])
        train, val, test = take(fair, "train"), take(fair, "val"), take(fair, "test")
        teacher_path = None
        if options["teacher"]:
            teacher_path = MODELS_DIR / f"{options['teacher']}.keras"
            if not teacher_path.exists():
                raise CommandError(f"no shipped network {options['teacher']!r} at {teacher_path}")
            teacher_size = AgeNetwork.from_keras_file(teacher_path).chip_size
            teacher_train = take(splits_at(teacher_size)[0], "train")
            # The same photos in the same order: cutting fails for a photo at any size or none.
            if not np.array_equal(teacher_train["age_high"], train["age_high"]):
                raise CommandError("the teacher's chips do not line up with the training chips")
            train["teacher_chips"] = teacher_train["chips"]
        if options["balance_groups"] > 1:
            train = balanced(train, options["balance_groups"], seed=0)
        self.stdout.write(
            f"FairFace: {len(train['ages'])} train, {len(val['ages'])} validation, "
            f"{len(test['ages'])} test; UTKFace test {len(utk['ages'])}"
        )

        config = FitConfig(
            epochs=options["epochs"],
            batch_size=options["batch_size"],
            learning_rate=options["learning_rate"],
            steps_per_epoch=options["steps_per_epoch"],
            patience=options["epochs"],
            teacher_model=str(teacher_path) if teacher_path else None,
            distill_weight=options["distill"],
            low_resolution=options["low_resolution"],
            scan_look=options["scan_look"],
        )
        if options["start"]:
            config = dataclasses.replace(
                config, init="active", start_model=str(MODELS_DIR / f"{options['start']}.keras")
            )
        from training.pipeline.tfrecords import PIPELINE_VERSION

        bar = ProgressBar("training")

        def progress(info: dict) -> None:
            bar(round(info["progress"] * 1000), 1000, f"epoch {info['epoch']}")

        members = []
        seeds = list(range(options["seed"], options["seed"] + options["soup"]))
        for seed in seeds:
            # Keyed by the recipe, the member's seed and the chips: the same command resumes
            # an interrupted build (a soup also reuses members built alone with their seed);
            # another recipe (a different chip size or teacher, say), or chips cut by another
            # version of the cutting code, starts afresh instead of reusing its epochs.
            recipe = {key: str(options[key]) for key in MEMBER_OPTIONS}
            for added in ("scan_look", "start"):
                if not options[added]:
                    # Options added with faceage-v4: a build that leaves them off is keyed
                    # as it was before they existed.
                    del recipe[added]
            recipe.update(seed=str(seed), chips=PIPELINE_VERSION)
            recipe_key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
            checkpoints = (
                Path(settings.FACEAGE_TRAINING_DIR) / f"bundled-{options['name']}-{recipe_key[:12]}"
            )
            members.append(
                fit(
                    train,
                    val,
                    dataclasses.replace(config, seed=seed),
                    checkpoints,
                    FitHooks(
                        on_progress=progress,
                        on_epoch=lambda m: self.stdout.write(f"\n{json.dumps(m)}"),
                    ),
                )
            )
        result = members[0]
        together = [m.network for m in members] + joining
        network = soup(together) if len(together) > 1 else result.network
        network.mirrored = True
        temperature, calibration, interval_figures = calibration_figures(network, val, test, utk)
        figures = {
            # The validation split is what choices between builds are made on.
            **held_out_figures(network, val, test, utk),
            **interval_figures,
        }

        def reference(other) -> dict:
            """Another network served as workers serve it, on the same three splits (cut at
            the size it reads)."""
            other = mirrored(other)
            fair_other, utk = splits_at(other.chip_size)
            return held_out_figures(other, take(fair_other, "val"), take(fair_other, "test"), utk)

        figures["bundled_dlib_network"] = reference(AgeNetwork.bundled())
        for name in shipped_versions():
            if (MODELS_DIR / f"{name}.keras").resolve() != (
                options["out"] / f"{options['name']}.keras"
            ).resolve():
                # A candidate beside the versions already in the repository, each served as
                # its card says (faceage-v6: faceage-v5's network with its second opinion).
                figures[f"shipped:{name}"] = reference(AgeNetwork.shipped(name))
        # Beside the network it replaces (measured above unless this build overwrites it;
        # registry_metrics then takes the dlib network).
        figures["registry"] = {
            **registry_metrics(figures, options["replaces"]),
            "calibration": calibration,
        }
        options["out"].mkdir(parents=True, exist_ok=True)
        model_path = options["out"] / f"{options['name']}.keras"
        network.save(model_path)
        card = {
            "name": options["name"],
            "temperature": round(temperature, 4),
            "mirrored": True,
            "chip_size": options["chip_size"],
            "start": (
                f"{options['start']}, shipped in this repository (itself a fine-tune of the "
                "dlib age network, Cydral Technology, CC0)"
                if options["start"]
                else "dlib age network (Cydral Technology, CC0), 101-class head"
            ),
            "teacher": options["teacher"] or "the start",
            "training_data": {
                "dataset": "FairFace (Kärkkäinen and Joo, WACV 2021), training photos",
                "licence": "CC BY 4.0",
                "train_faces": len(np.unique(train["index"]))
                if "index" in train
                else len(train["ages"]),
                "balance_groups": options["balance_groups"],
                "validation_faces": len(val["ages"]),
            },
            "test_data": {
                "fairface": "FairFace validation photos (CC BY 4.0), never trained or tuned on",
                "utkface": "UTKFace development split, test side (non-commercial research "
                "licence: measurement only)",
            },
            "training": {
                # (teacher_model and start_model are this machine's paths: the card's
                # "teacher" and "start_network" name them)
                **{
                    k: v
                    for k, v in config.__dict__.items()
                    if k not in ("teacher_model", "start_model")
                },
                # The shipped network this build fine-tuned (--start), or None: the dlib start.
                "start_network": options["start"],
                "epochs_run": len(result.history),
                "best_epoch": result.best_epoch,
                "history": result.history,
                # A soup's other members (the keys above are the first member's).
                "soup": [
                    {"seed": seed, "best_epoch": m.best_epoch, "history": m.history}
                    for seed, m in zip(seeds[1:], members[1:], strict=True)
                ],
                # Shipped networks whose weights joined the mean (--soup-with).
                "soup_with": options["soup_with"],
                "seconds": round(time.monotonic() - started),
            },
            "figures": figures,
            "command": "manage.py build_bundled_model "
            + " ".join(
                f"--{k.replace('_', '-')} {v}"
                for k, values in options.items()
                if k in (*RECIPE_OPTIONS, "name", "replaces")
                for v in (values if isinstance(values, list) else [values])
                if v is not None
            ),
        }
        (options["out"] / f"{options['name']}.json").write_text(
            json.dumps(card, indent=1, ensure_ascii=False) + "\n"
        )
        self.stdout.write("\n" + json.dumps(figures, indent=1))
        self.stdout.write(self.style.SUCCESS(f"wrote {model_path}"))


def soup_member(name: str, chip_size: int, option: str = "--soup-with"):
    """A shipped network that joins a soup (``--soup-with``) or that a build starts from
    (``--start``, named by ``option`` in the errors): it must exist and read the build's chip
    size (``soup`` itself refuses another architecture)."""
    from predictor.vision.age_network import AgeNetwork

    path = MODELS_DIR / f"{name}.keras"
    if not path.is_file():
        raise CommandError(f"{option}: no shipped network {name!r} at {path}")
    network = AgeNetwork.from_keras_file(path)
    if network.chip_size != chip_size:
        raise CommandError(
            f"{option}: {name} reads {network.chip_size} px chips, this build {chip_size} px"
        )
    return network


def registry_metrics(figures: dict, replaces: str | None = None) -> dict:
    """What the model registry stores for the shipped version (``ModelVersion.metrics``): the
    UTKFace test figures as its test split, both test sets as benchmarks beside the figures of
    the network it replaces (``replaces``, a shipped network measured in the same build; the
    dlib network without one), and the promotion gate's verdict against it."""
    from training.gate import benchmark_results

    reference = f"shipped:{replaces}" if replaces else None
    if reference not in figures:
        replaces, reference = "dlib-age-v1", "bundled_dlib_network"
    ours = {"fairface-val": figures["fairface_test"], "utkface-test": figures["utkface_test"]}
    theirs = figures[reference]
    before = {"fairface-val": theirs["fairface_test"], "utkface-test": theirs["utkface_test"]}
    benchmarks, regressions = benchmark_results(
        [(name, name) for name in ours], ours.__getitem__, before.__getitem__
    )
    return {
        "dataset": "utkface-test",
        "split": "test",
        **figures["utkface_test"],
        "benchmarks": benchmarks,
        "gate": {
            "active_model": replaces,
            "regressions": [regression.as_dict() for regression in regressions],
        },
    }


def mirrored(network):
    network.mirrored = True
    return network


def held_out_figures(network, val: dict, test: dict, utk: dict) -> dict:
    """A network's figures on a build's three held-out splits, as its card records them."""
    return {
        "fairface_validation": group_figures(network, val),
        "fairface_test": group_figures(network, test),
        "utkface_test": age_figures(network, utk),
    }


def age_figures(network, split: dict) -> dict:
    from training.pipeline.evaluation import age_metrics

    ages = network.predict(split["chips"]).ages
    metrics = age_metrics(np.round(ages), split["ages"])
    return {k: metrics[k] for k in ("count", "mae", "cs5", "mae_children_0_12", "mae_by_decade")}


def group_figures(network, split: dict) -> dict:
    """Age-group accuracy: the served (rounded) age falls inside the labelled group."""
    from training.pipeline.evaluation import group_metrics

    ages = network.predict(split["chips"]).ages
    return group_metrics(ages, split["age_low"], split["age_high"])
