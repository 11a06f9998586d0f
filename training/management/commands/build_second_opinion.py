"""Train the face descriptor's age head and ship a network served with it as a second opinion.

    .venv/bin/python manage.py build_second_opinion [--network faceage-v5] [--name faceage-v8] \\
        [--head descriptor-age-v3] [--layers descriptor,stages,stage256,final] [--hidden 256] \\
        [--epochs 30] [--augmented-copies 2] [--seeds 0,1,2] [--precision float16]

The shipped faceage-v8 was built with the defaults; faceage-v7 with ``--name faceage-v7
--head descriptor-age-v2 --replaces faceage-v6 --seeds 0 --precision float32``, and
faceage-v6 with ``--name faceage-v6 --head descriptor-age-v1 --layers descriptor --replaces
faceage-v5 --seeds 0 --precision float32`` (docs/benchmarks.md, "The shipped model:
faceage-v8").

1. Every FairFace photo is cut as ``build_bundled_model`` cuts it (the same cached 64 px
   chips), and dlib's face-recognition network reads each chip, enlarged to its 150 px
   (:mod:`predictor.vision.second_opinion`): its descriptor and the inner layers
   ``--layers`` names (:data:`predictor.vision.face_descriptor.LAYERS`), from one pass.
2. One head for each of ``--layers`` and each of ``--seeds`` (:class:`~predictor.vision.
   second_opinion.DescriptorAgeHead`: one hidden ReLU layer, softmax over the ages 0-100;
   faceage-v8: four layers, three seeds, twelve heads) learns the age
   groups of FairFace's training photos with the product's interval loss, flat inside each
   group: each face as it is, and in ``--augmented-copies`` copies augmented as faceage-v5's
   training was (30% of them given the look of a scanned old print), so that an old print's
   grain is not read as age. All the heads answer together, as the geometric mean of their
   distributions (:class:`~predictor.vision.second_opinion.AgeHeads`): an ensemble of seeds,
   which answers better than any one seed (docs/benchmarks.md). FairFace is CC BY 4.0, so the
   heads may be redistributed. Their weight matrices are stored as ``--precision`` says
   (float16 halves the file), and everything below is measured on the heads as stored, read
   back from the file.
3. The weights that mix ``--network``'s distribution (mirrored, as served) with the head's are
   fitted on the validation split (FairFace's held-out training photos: the likelihood of
   their groups), then the temperature, as every build fits it.
4. The test figures are measured on what was never trained or tuned on: FairFace's own
   validation photos and 1,500 faces of the UTKFace development split's test side (UTKFace
   is non-commercial: measurement only), beside the network alone and the dlib network.

Writes ``predictor/vision/models/<head>.npz`` and ``<head>.json`` (the heads and their card), and
``<name>.json``: the card of a shipped model version whose weights are ``--network``'s file
(``"weights"``), served with the head (``"second_opinion"``). A migration registers it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from training.management.commands.build_bundled_model import (
    MODELS_DIR,
    calibration_figures,
    chips_for,
    fairface_sides,
    held_out_figures,
    mirrored,
    registry_metrics,
    take,
    utkface_test_sample,
)
from training.progress_bar import ProgressBar

# Dropout before each head's output layer: more for the layers that keep positions
# (stage256 and final), which have more inputs to overfit with.
DROPOUT = {"descriptor": 0.2, "stages": 0.2, "stage256": 0.5, "final": 0.5}


def layers_of(chips: np.ndarray, label: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``{layer: (N, width)}`` of the enlarged chips (one forward pass for all the layers),
    each layer cached by the chips' content."""
    from predictor.vision.face_descriptor import LAYERS, FaceDescriptor
    from predictor.vision.second_opinion import enlarge

    digest = hashlib.sha256(b"descriptor-of-enlarged-chips-v1\n")
    digest.update(np.ascontiguousarray(chips).tobytes())
    folder = Path(settings.FACEAGE_CHIP_CACHE_DIR)
    # The descriptor keeps the file name it had when it was the only layer.
    caches = {
        name: folder
        / f"{'descriptors' if name == 'descriptor' else name}-{label}-{digest.hexdigest()[:16]}.npy"
        for name in names
    }
    missing = tuple(name for name in names if not caches[name].exists())
    if missing:
        # Both cores: one session with two threads (the chips arrive in batches).
        descriptor, bar = FaceDescriptor(threads=2), ProgressBar(f"{'+'.join(missing)} ({label})")
        out: dict[str, list] = {name: [] for name in missing}
        for start in range(0, len(chips), 256):
            found = descriptor.layers(enlarge(chips[start : start + 256]), missing)
            for name in missing:
                out[name].append(found[name])
            bar(min(start + 256, len(chips)), len(chips))
        folder.mkdir(parents=True, exist_ok=True)
        for name in missing:
            values = (
                np.concatenate(out[name]) if out[name] else np.zeros((0, LAYERS[name]), np.float32)
            )
            np.save(caches[name], values)
    return {name: np.load(caches[name]) for name in names}


def build_splits(size: int, workers: int, utkface_test: int) -> tuple[dict, dict, dict, dict]:
    """The build's faces, cut at ``size`` (cached in FACEAGE_CHIP_CACHE_DIR): FairFace's
    training photos less the held-out tenth (``train``), that tenth (``val``), FairFace's own
    validation photos (``test``) and ``utkface_test`` faces of UTKFace's test side."""
    from training.datasets.fairface import read_fairface
    from training.datasets.utkface import read_utkface

    root = Path(settings.FACEAGE_DATASETS_DIR)
    records, _ = read_fairface(root / "fairface")
    sides = fairface_sides(records)
    fair = chips_for(
        records, root / "fairface", lambda r: sides.get(r.path, "test"), workers, "fairface", size
    )
    utk_records = utkface_test_sample(read_utkface(root / "utkface")[0], utkface_test)
    utk = chips_for(utk_records, root / "utkface", lambda r: "test", workers, "utkface", size)
    return take(fair, "train"), take(fair, "val"), take(fair, "test"), utk


def augmented_chips(chips: np.ndarray, copy: int) -> np.ndarray:
    """``chips`` as faceage-v5's training saw them (``training.pipeline.fit.augment``: mirror,
    shift, light; a fifth softened; 30% given the look of a scanned old print), the same for
    the same ``copy`` every time."""
    import tensorflow as tf

    from training.pipeline.fit import augment

    def one(chip, index):
        seed = tf.stack([tf.cast(index, tf.int64), tf.constant(1000 + copy, tf.int64)])
        return augment(chip, index, seed, low_resolution=0.2, scan=0.3)[0]

    rows = tf.data.Dataset.from_tensor_slices((chips, np.arange(len(chips))))
    batches = rows.map(one, num_parallel_calls=2).batch(512)
    return np.concatenate(
        [np.clip(np.round(batch.numpy()), 0, 255).astype(np.uint8) for batch in batches]
    )


def training_layers(
    train: dict, layers: tuple[str, ...], copies: int
) -> tuple[list[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """The ``layers`` of the training chips as they are and of ``copies`` augmented looks of
    them (:func:`augmented_chips`), and the age groups that label them, repeated to match."""
    seen = [layers_of(train["chips"], "fairface-train", layers)] + [
        layers_of(augmented_chips(train["chips"], copy), f"fairface-train-look{copy}", layers)
        for copy in range(copies)
    ]
    labels = {key: np.concatenate([train[key]] * (1 + copies)) for key in ("age_low", "age_high")}
    return seen, labels


def train_heads(
    seen: list[dict[str, np.ndarray]],
    labels: dict[str, np.ndarray],
    layers: tuple[str, ...],
    seeds: tuple[int, ...],
    hidden: int,
    epochs: int,
    trained=None,
) -> tuple[dict[int, dict], dict[str, list]]:
    """One head per layer and seed (:func:`train_head`) on :func:`training_layers`' output:
    ``{seed: {layer: head}}``, and each head's losses by epoch, keyed by the layer (and the
    seed, where there are several). ``trained(seed, layer)`` is called after each head."""
    members: dict[int, dict] = {seed: {} for seed in seeds}
    losses: dict[str, list] = {}
    for name in layers:
        features = np.concatenate([layer[name] for layer in seen])
        for seed in seeds:
            key = name if len(seeds) == 1 else f"{name}, seed {seed}"
            members[seed][name], losses[key] = train_head(
                features, labels, hidden, epochs, seed, reads=name
            )
            if trained is not None:
                trained(seed, name)
        del features
    return members, losses


def train_head(
    descriptors: np.ndarray,
    split: dict,
    hidden: int,
    epochs: int,
    seed: int,
    reads: str = "descriptor",
):
    """The head reading ``reads`` (``descriptors`` are that layer's), trained with the
    product's interval loss on ``split``'s age groups (flat inside each group); returns a
    :class:`DescriptorAgeHead`."""
    import keras

    from predictor.vision.second_opinion import AGES, DescriptorAgeHead
    from training.pipeline.fit import SoftLabelAgeLoss, label_table

    keras.utils.set_random_seed(seed)
    labels = label_table(
        {"ages": split["age_low"], "age_low": split["age_low"], "age_high": split["age_high"]}
    )
    mean = descriptors.mean(axis=0)
    variance = descriptors.var(axis=0) + 1e-6
    inputs = keras.Input((descriptors.shape[1],))
    x = keras.layers.Normalization(mean=mean, variance=variance)(inputs)
    regularizer = keras.regularizers.l2(1e-4)
    hidden_layer = keras.layers.Dense(hidden, activation="relu", kernel_regularizer=regularizer)
    x = keras.layers.Dropout(DROPOUT[reads])(hidden_layer(x))
    out_layer = keras.layers.Dense(AGES, activation="softmax", kernel_regularizer=regularizer)
    model = keras.Model(inputs, out_layer(x))
    model.compile(keras.optimizers.Adam(1e-3), SoftLabelAgeLoss())
    history = model.fit(descriptors, labels, batch_size=128, epochs=epochs, verbose=0)
    head = DescriptorAgeHead(
        mean=mean.astype(np.float32),
        variance=variance.astype(np.float32),
        hidden_kernel=np.asarray(hidden_layer.kernel, np.float32),
        hidden_bias=np.asarray(hidden_layer.bias, np.float32),
        kernel=np.asarray(out_layer.kernel, np.float32),
        bias=np.asarray(out_layer.bias, np.float32),
        reads=reads,
    )
    # The NumPy head must answer as the Keras model it was copied from.
    check = descriptors[:256]
    if not np.allclose(head.predict(check), model.predict(check, verbose=0), atol=1e-4):
        raise CommandError("the exported head does not answer as the trained one")
    return head, [round(float(loss), 4) for loss in history.history["loss"]]


class Command(BaseCommand):
    help = "Train the descriptor age heads and write a shipped model card served with them."

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # No abbreviations: the cards of faceage-v6 and faceage-v7 record ``--seed 0``, which
        # would be read as ``--seeds 0`` with the float16 default and build other heads.
        parser.allow_abbrev = False
        return parser

    def _refuse_clashing_names(self, options) -> None:
        """Before anything is read or trained: the version replaced must ship, and the heads'
        file may not be one that another shipped version serves."""
        from predictor.vision.bundled_models import shipped_model_card, shipped_versions

        if options["replaces"] not in shipped_versions():
            raise CommandError(f"--replaces: no shipped version {options['replaces']!r}")
        if options["out"].resolve() != MODELS_DIR.resolve():
            return
        for version in shipped_versions():
            opinion = shipped_model_card(version).get("second_opinion") or {}
            if version != options["name"] and opinion.get("head") == options["head"]:
                raise CommandError(
                    f"--head: {version} serves the heads {options['head']!r}; name new ones"
                )

    def add_arguments(self, parser):
        parser.add_argument("--network", default="faceage-v5", help="a shipped network")
        parser.add_argument("--name", default="faceage-v8", help="the new version's name")
        parser.add_argument("--head", default="descriptor-age-v3", help="the heads' file name")
        parser.add_argument(
            "--layers",
            default="descriptor,stages,stage256,final",
            help="comma-separated layers of the descriptor network, one head reading each "
            "(predictor.vision.face_descriptor.LAYERS; default all four)",
        )
        parser.add_argument(
            "--replaces",
            default="faceage-v7",
            metavar="NAME",
            help="the shipped version this one replaces as the default, measured as it is "
            "served: the registry (model page, /api/v1/models/) sets the figures beside it",
        )
        parser.add_argument("--hidden", type=int, default=256)
        parser.add_argument("--epochs", type=int, default=30)
        parser.add_argument(
            "--augmented-copies",
            type=int,
            default=2,
            help="copies of the training faces, each augmented as faceage-v5's training was "
            "(30%% with a scanned print's look), that the head learns from beside the faces as "
            "they are (default 2)",
        )
        parser.add_argument(
            "--seeds",
            default="0,1,2",
            help="comma-separated training seeds: one set of heads (one per layer) for each, "
            "all answering together (default 0,1,2)",
        )
        parser.add_argument(
            "--precision",
            choices=("float16", "float32"),
            default="float16",
            help="how the heads' weight matrices are stored (default float16: half the file; "
            "the figures are measured on the heads as stored)",
        )
        parser.add_argument("--utkface-test", type=int, default=1500)
        parser.add_argument("--workers", type=int, default=settings.FACEAGE_PREPARE_WORKERS)
        parser.add_argument("--out", type=Path, default=MODELS_DIR)

    def handle(self, *args, **options):
        from predictor.vision.age_network import AgeNetwork
        from predictor.vision.face_descriptor import LAYERS
        from predictor.vision.second_opinion import AgeHeads, SecondOpinion, fit_weights

        started = time.monotonic()
        if options["hidden"] < 1 or options["epochs"] < 1 or options["augmented_copies"] < 0:
            raise CommandError("--hidden and --epochs must be at least 1, --augmented-copies 0+")
        if options["replaces"] == options["name"]:
            raise CommandError("--replaces names the version this one replaces, not itself")
        layers = tuple(dict.fromkeys(name.strip() for name in options["layers"].split(",")))
        if not layers or any(name not in LAYERS for name in layers):
            raise CommandError(f"--layers: comma-separated names among {', '.join(LAYERS)}")
        seeds = _seeds(options["seeds"])
        self._refuse_clashing_names(options)
        weights = MODELS_DIR / f"{options['network']}.keras"
        if not weights.is_file():
            raise CommandError(f"--network: no shipped network {options['network']!r} at {weights}")
        network = mirrored(AgeNetwork.from_keras_file(weights))
        if network.num_classes != 101:
            raise CommandError("--network must give the ages 0-100 (101 classes)")
        datasets = Path(settings.FACEAGE_DATASETS_DIR)
        fairface_root, utkface_root = datasets / "fairface", datasets / "utkface"
        for root in (fairface_root, utkface_root):
            if not root.is_dir():
                raise CommandError(f"no dataset folder at {root} (FACEAGE_DATASETS_DIR)")
        train, val, test, utk = build_splits(
            network.chip_size, options["workers"], options["utkface_test"]
        )
        self.stdout.write(
            f"FairFace: {len(train['ages'])} train, {len(val['ages'])} validation, "
            f"{len(test['ages'])} test; UTKFace test {len(utk['ages'])}"
        )
        seen, labels = training_layers(train, layers, options["augmented_copies"])
        members, losses = train_heads(
            seen, labels, layers, seeds, options["hidden"], options["epochs"]
        )
        del seen
        # Seed by seed, each seed's heads in --layers' order.
        trained = AgeHeads(tuple(members[seed][name] for seed in seeds for name in layers))
        out: Path = options["out"]
        out.mkdir(parents=True, exist_ok=True)
        # Everything below measures the heads as the file holds them. The file goes beside
        # the cards only once the cards are written (below): a build that fails leaves none.
        staging = Path(tempfile.mkdtemp(prefix="faceage-heads-"))
        head_file = trained.save(
            staging / f"{options['head']}.npz", half=options["precision"] == "float16"
        )
        head = AgeHeads.load(head_file)
        held_out = {
            "fairface_validation": layers_of(val["chips"], "fairface-val", layers),
            "fairface_test": layers_of(test["chips"], "fairface-test", layers),
            "utkface_test": layers_of(utk["chips"], "utkface-test", layers),
        }
        descriptor_weights = fit_weights(
            network.predict(val["chips"]).probabilities,
            head.predict(held_out["fairface_validation"]),
            val["age_low"],
            val["age_high"],
        )
        head_alone = {
            "fairface_validation": _head_groups(head, val, held_out["fairface_validation"]),
            "fairface_test": _head_groups(head, test, held_out["fairface_test"]),
            "utkface_test": _head_ages(head, utk, held_out["utkface_test"]),
        }
        alone = held_out_figures(network, val, test, utk)
        network.second_opinion = SecondOpinion(options["head"], head, *descriptor_weights)
        temperature, calibration, interval_figures = calibration_figures(network, val, test, utk)
        figures = {
            **held_out_figures(network, val, test, utk),
            **interval_figures,
            f"shipped:{options['network']}": alone,
            "descriptor_head_alone": head_alone,
        }

        def reference(other) -> dict:
            return held_out_figures(mirrored(other), val, test, utk)

        figures["bundled_dlib_network"] = reference(AgeNetwork.bundled())
        if f"shipped:{options['replaces']}" not in figures:
            try:  # served as its card says (faceage-v6: with its own second opinion)
                replaced = AgeNetwork.shipped(options["replaces"])
            except (FileNotFoundError, ValueError) as error:
                raise CommandError(f"--replaces: {error}") from error
            figures[f"shipped:{options['replaces']}"] = reference(replaced)
        figures["registry"] = {
            **registry_metrics(figures, options["replaces"]),
            "calibration": calibration,
        }
        seconds = round(time.monotonic() - started)
        recorded = options | {
            "layers": ",".join(layers),
            "seeds": ",".join(str(seed) for seed in seeds),
        }
        command = "manage.py build_second_opinion " + " ".join(
            f"--{key.replace('_', '-')} {recorded[key]}"
            for key in (
                "network",
                "name",
                "replaces",
                "head",
                "layers",
                "hidden",
                "epochs",
                "augmented_copies",
                "seeds",
                "precision",
            )
        )
        head_card = {
            "name": options["head"],
            "reads": "dlib's face-recognition network (dlib_face_recognition_resnet_model_v1, "
            "public domain, from the face_recognition_models wheel) on the age network's 64 px "
            "chip enlarged to 150 px: " + ", ".join(layers),
            "layers": f"one head per layer read and seed: normalisation, {options['hidden']} ReLU "
            "units, softmax over the ages 0-100; the heads' distributions' normalised geometric "
            f"mean; weight matrices stored as {options['precision']}",
            "training_data": {
                "dataset": "FairFace (Kärkkäinen and Joo, WACV 2021), training photos",
                "licence": "CC BY 4.0",
                "train_faces": len(train["ages"]),
            },
            "training": {
                "epochs": options["epochs"],
                "seeds": list(seeds),
                # Each training face as it is, and in this many augmented copies.
                "augmented_copies": options["augmented_copies"],
                "augmentation": "training.pipeline.fit.augment, low_resolution 0.2, scan 0.3",
                "loss": losses,
            },
            "figures": head_alone,
            "command": command,
        }
        card = {
            "name": options["name"],
            "weights": options["network"],
            "second_opinion": network.second_opinion.settings(),
            "temperature": round(temperature, 4),
            "mirrored": True,
            "chip_size": network.chip_size,
            "start": f"{options['network']}, shipped in this repository, unchanged; served with "
            f"the opinion of the {options['head']} heads ({', '.join(layers)}) mixed in",
            "training_data": head_card["training_data"] | {"validation_faces": len(val["ages"])},
            "test_data": {
                "fairface": "FairFace validation photos (CC BY 4.0), never trained or tuned on",
                "utkface": "UTKFace development split, test side (non-commercial research "
                "licence: measurement only)",
            },
            "training": {"head": options["head"], "seconds": seconds},
            "figures": figures,
            "command": command,
        }
        for name, content in ((options["head"], head_card), (options["name"], card)):
            (out / f"{name}.json").write_text(
                json.dumps(content, indent=1, ensure_ascii=False) + "\n"
            )
        shutil.move(head_file, out / head_file.name)
        shutil.rmtree(staging, ignore_errors=True)
        self.stdout.write("\n" + json.dumps({"weights": descriptor_weights, **figures}, indent=1))
        self.stdout.write(self.style.SUCCESS(f"wrote {out / options['name']}.json in {seconds} s"))


def _seeds(text: str) -> tuple[int, ...]:
    """``--seeds``: distinct integers 0 or more, comma-separated."""
    try:
        seeds = tuple(dict.fromkeys(int(part) for part in text.split(",")))
    except ValueError:
        seeds = ()
    if not seeds or any(not 0 <= seed < 2**32 for seed in seeds):
        raise CommandError("--seeds: comma-separated whole numbers 0 or more, such as 0,1,2")
    return seeds


def _head_groups(head, split: dict, layers: dict) -> dict:
    from training.pipeline.evaluation import group_metrics

    ages = head.predict(layers) @ np.arange(101.0)
    return group_metrics(ages, split["age_low"], split["age_high"])


def _head_ages(head, split: dict, layers: dict) -> dict:
    from training.pipeline.evaluation import age_metrics

    ages = head.predict(layers) @ np.arange(101.0)
    metrics = age_metrics(np.round(ages), split["ages"])
    return {k: metrics[k] for k in ("count", "mae", "cs5", "mae_children_0_12", "mae_by_decade")}
