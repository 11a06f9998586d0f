"""Does fine-tuning the face descriptor network for age beat a head on its frozen layers?

    .venv/bin/python bench/descriptor_finetune.py --augmented-copies 2 --epochs 6 \\
        --learning-rates 1e-5 [--served faceage-v7]

faceage-v7's second opinion reads dlib's face-recognition network as it is (frozen): its heads
learn age from layers that were trained to tell people apart. The next step up would be to
train the network itself for age. On this 2-core CPU only its last level is within reach:
everything after the last 128-channel stage (8 x 8 positions; four residual blocks of 256
channels, 4.4 million weights) down to the ``final`` layer (2 x 2 x 256) that the descriptor
averages. The level is rebuilt in Keras with dlib's own weights (checked against the ONNX
graph on 64 faces), and its input is computed once per chip and cached.

Rows, each a head of 256 hidden units trained with the product's interval loss, as
``manage.py build_second_opinion`` trains its heads:

- **as shipped**: the ``--served`` model's own heads (faceage-v7: four, one on ``final``);
- **frozen**: a head trained on the frozen level's ``final`` output for 30 epochs, as the
  build trains faceage-v7's ``final`` head;
- **fine-tuned**: the frozen row's head and the level trained together, from dlib's weights,
  at each learning rate, one row per epoch.

Columns: the head alone, then **served**: the ``--served`` model with its ``final`` head's
answers replaced by the row's, mixed with its network as the build mixes them (the two
weights fitted on the validation side).

The data are the build's: FairFace's training photos less the held-out tenth (23,335 faces,
with ``--augmented-copies`` augmented copies of each), chosen on the held-out tenth (``FF val``:
2,665 faces, the likelihood of their age groups and their accuracy) and reported on FairFace's
own validation photos (``FF test``, 3,000) and 1,500 faces of the UTKFace test side.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.tables import print_table  # noqa: E402

LEVEL_INPUT = (8, 8, 128)


def level_input_graph():
    """dlib's network as :func:`~predictor.vision.face_descriptor.build_onnx_model` builds it,
    with one more output: the last 128-channel ReLU (``level_input``, N x 128 x 8 x 8)."""
    import onnx
    from onnx import helper, shape_inference

    from predictor.vision.face_descriptor import build_onnx_model, read_face_recognition_network

    network = read_face_recognition_network()
    model = build_onnx_model(network)
    shapes = {
        info.name: [dim.dim_value for dim in info.type.tensor_type.shape.dim]
        for info in shape_inference.infer_shapes(model).graph.value_info
    }
    relus = [node.output[0] for node in model.graph.node if node.op_type == "Relu"]
    last = [name for name in relus if shapes.get(name, [])[1:] == [128, 8, 8]][-1]
    model.graph.node.append(helper.make_node("Identity", [last], ["level_input"]))
    model.graph.output.append(
        helper.make_tensor_value_info("level_input", onnx.TensorProto.FLOAT, ["N", 128, 8, 8])
    )
    return network, model


def level_inputs(model, chips: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 8, 8, 128)`` float16 inputs of the last level and the ``(N, 1024)`` ``final``
    layer (dlib's channel-first order) for ``chips`` enlarged as served, cached by content."""
    import onnxruntime
    from django.conf import settings

    from predictor.vision.second_opinion import enlarge

    digest = hashlib.sha256(b"descriptor-level-input-v1\n")
    digest.update(np.ascontiguousarray(chips).tobytes())
    cache = (
        Path(settings.FACEAGE_CHIP_CACHE_DIR) / f"level128-{label}-{digest.hexdigest()[:16]}.npz"
    )
    if cache.exists():
        with np.load(cache) as saved:
            return saved["inputs"], saved["final"]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    inputs, finals = [], []
    for start in range(0, len(chips), 256):
        batch = enlarge(chips[start : start + 256]).astype(np.float32)
        level, final = session.run(["level_input", "final"], {"chips": batch})
        inputs.append(level.transpose(0, 2, 3, 1).astype(np.float16))
        finals.append(final)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, inputs=np.concatenate(inputs), final=np.concatenate(finals))
    return np.concatenate(inputs), np.concatenate(finals)


def build_level(network):
    """The network's layers after the last 128-channel stage, in Keras (NHWC), with dlib's
    weights: ``(N, 8, 8, 128)`` in, the ``final`` layer ``(N, 2 * 2 * 256)`` out (flattened
    NHWC). dlib's conventions, as the ONNX graph has them: no padding for a strided
    convolution or pool, and ``add_prev`` adds over the common corner (zero-padding the smaller
    tensor at the end of each axis)."""
    import keras
    import tensorflow as tf

    class Affine(keras.layers.Layer):
        """dlib's affine layer (a folded batch norm), trainable."""

        def __init__(self, scale: np.ndarray, shift: np.ndarray) -> None:
            super().__init__()
            self.start = (np.asarray(scale, np.float32), np.asarray(shift, np.float32))

        def build(self, shape) -> None:
            scale, shift = self.start
            self.scale = self.add_weight(
                shape=scale.shape, initializer=keras.initializers.Constant(scale)
            )
            self.shift = self.add_weight(
                shape=shift.shape, initializer=keras.initializers.Constant(shift)
            )

        def call(self, x):
            return x * self.scale + self.shift

    def padded(x, shape):
        ends = [size - have for size, have in zip(shape, x.shape[1:], strict=True)]
        return x if not any(ends) else tf.pad(x, [[0, 0], *[[0, end] for end in ends]])

    layers = network.layers
    first = next(i for i, ((kind, arg), _) in enumerate(layers) if kind == "con" and arg[0] == 256)
    start = max(i for i in range(first) if layers[i][0] == ("tag", 1))
    inputs = keras.Input(LEVEL_INPUT)
    x, tagged = inputs, {}
    for (kind, argument), weights in layers[start:]:
        if kind == "tag":
            tagged[argument] = x
        elif kind == "skip":
            x = tagged[argument]
        elif kind == "con":
            filters, kernel, stride = argument
            kernel_weights, biases = weights
            x = keras.layers.Conv2D(
                filters,
                kernel,
                strides=stride,
                padding="same" if stride == 1 else "valid",
                kernel_initializer=keras.initializers.Constant(
                    np.transpose(kernel_weights, (2, 3, 1, 0))
                ),
                bias_initializer=keras.initializers.Constant(biases),
            )(x)
        elif kind == "affine":
            x = Affine(*weights)(x)
        elif kind == "relu":
            x = keras.layers.ReLU()(x)
        elif kind == "avg_pool":
            window, stride = argument
            if window == 0:  # the descriptor's average over everything: the level ends here
                break
            x = keras.layers.AveragePooling2D(window, stride)(x)
        elif kind == "add_prev":
            other = tagged[argument]
            shape = tuple(max(a, b) for a, b in zip(x.shape[1:], other.shape[1:], strict=True))
            x = keras.layers.Lambda(
                lambda pair, shape=shape: padded(pair[0], shape) + padded(pair[1], shape)
            )([x, other])
        else:
            raise ValueError(f"unexpected layer {kind} in the last level")
    return keras.Model(inputs, keras.layers.Flatten()(x))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--augmented-copies", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs")
    parser.add_argument("--learning-rates", default="1e-4,1e-5")
    parser.add_argument("--served", default="faceage-v7", help="a shipped second opinion's model")
    parser.add_argument("--utkface-test", type=int, default=1500)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceage_site.settings")
    import django

    django.setup()
    import keras
    from django.conf import settings

    from predictor.vision.age_network import AgeNetwork
    from predictor.vision.bundled_models import shipped_model_card
    from predictor.vision.second_opinion import AGES, fit_weights, from_settings, mix
    from training.management.commands.build_second_opinion import (
        augmented_chips,
        build_splits,
        layers_of,
    )
    from training.pipeline.fit import SoftLabelAgeLoss, label_table

    started = time.perf_counter()
    rates = [float(rate) for rate in args.learning_rates.split(",")]
    network, graph = level_input_graph()
    train, val, test, utk = build_splits(64, settings.FACEAGE_PREPARE_WORKERS, args.utkface_test)
    data = {"val": val, "test": test, "utk": utk}
    labels_of = {"val": "fairface-val", "test": "fairface-test", "utk": "utkface-test"}
    seen = [level_inputs(graph, train["chips"], "fairface-train")[0]] + [
        level_inputs(graph, augmented_chips(train["chips"], copy), f"fairface-train-look{copy}")[0]
        for copy in range(args.augmented_copies)
    ]
    x_train = np.concatenate(seen)
    del seen
    copies = 1 + args.augmented_copies
    labels = label_table(
        {
            "ages": np.concatenate([train["age_low"]] * copies),
            "age_low": np.concatenate([train["age_low"]] * copies),
            "age_high": np.concatenate([train["age_high"]] * copies),
        }
    )
    held = {side: level_inputs(graph, data[side]["chips"], labels_of[side]) for side in data}
    print(f"{len(x_train)} training inputs ({time.perf_counter() - started:.0f} s)", flush=True)

    level = build_level(network)
    x_val, final_val = held["val"][0][:64].astype(np.float32), held["val"][1][:64]
    mine = level.predict(x_val, verbose=0)
    as_dlib = mine.reshape(-1, 2, 2, 256).transpose(0, 3, 1, 2).reshape(len(mine), -1)
    gap = float(np.abs(as_dlib - final_val).max())
    if gap > 1e-2 * float(np.abs(final_val).max()):
        raise SystemExit(f"the Keras level does not answer as the ONNX graph (max gap {gap})")

    # The served model: its network's distribution, and each of its heads' log-probabilities.
    card = shipped_model_card(args.served)
    served_network = AgeNetwork.shipped(card["weights"])
    served_network.mirrored = True
    heads = from_settings(card["second_opinion"]).head
    p = {side: served_network.predict(data[side]["chips"]).probabilities for side in data}
    logs = {}
    for side in data:
        layers = layers_of(data[side]["chips"], labels_of[side], heads.reads)
        logs[side] = [member.log_probabilities(layers[member.reads]) for member in heads.members]
    years = np.arange(AGES)

    def groups(probabilities: np.ndarray, truth: dict) -> tuple[float, float]:
        inside = (years[None] >= truth["age_low"][:, None]) & (
            years[None] <= truth["age_high"][:, None]
        )
        likelihood = np.log(np.maximum((probabilities * inside).sum(axis=1), 1e-12)).mean()
        ages = np.round(probabilities @ years)
        return 100 * ((ages >= truth["age_low"]) & (ages <= truth["age_high"])).mean(), likelihood

    def crops(probabilities: np.ndarray) -> tuple[float, float]:
        errors = np.abs(np.round(probabilities @ years) - utk["ages"])
        return errors.mean(), errors[utk["ages"] <= 12].mean()

    def alone(answers: dict) -> list[str]:
        accuracy, likelihood = groups(answers["val"], data["val"])
        mae, children = crops(answers["utk"])
        return [f"{accuracy:.1f}%", f"{likelihood:.4f}", f"{mae:.2f}", f"{children:.2f}"]

    def served(replacing: dict | None) -> list[str]:
        """The served model's mix, with its ``final`` head's answers replaced."""
        q = {}
        for side in data:
            members = [
                replacing[side] if replacing and member.reads == "final" else member_logs
                for member, member_logs in zip(heads.members, logs[side], strict=True)
            ]
            mean = np.mean(members, axis=0)
            q[side] = np.exp(mean - mean.max(axis=1, keepdims=True))
            q[side] /= q[side].sum(axis=1, keepdims=True)
        truth = data["val"]
        a, b = fit_weights(p["val"], q["val"], truth["age_low"], truth["age_high"])
        answers = {side: mix(p[side], q[side], a, b) for side in data}
        val_accuracy, val_likelihood = groups(answers["val"], truth)
        test_accuracy, _ = groups(answers["test"], data["test"])
        mae, children = crops(answers["utk"])
        return [
            f"p^{a:g} q^{b:g}",
            f"{val_accuracy:.1f}%",
            f"{val_likelihood:.4f}",
            f"{test_accuracy:.1f}%",
            f"{mae:.2f}",
            f"{children:.2f}",
        ]

    frozen_train = level.predict(x_train, batch_size=512, verbose=0)
    mean, variance = frozen_train.mean(axis=0), frozen_train.var(axis=0) + 1e-6
    width = frozen_train.shape[1]

    def head_model():
        keras.utils.set_random_seed(0)
        regularizer = keras.regularizers.l2(1e-4)
        inputs = keras.Input((width,))
        x = keras.layers.Normalization(mean=mean, variance=variance)(inputs)
        x = keras.layers.Dense(256, activation="relu", kernel_regularizer=regularizer)(x)
        x = keras.layers.Dropout(0.5)(x)
        out = keras.layers.Dense(AGES, activation="softmax", kernel_regularizer=regularizer)(x)
        return keras.Model(inputs, out)

    def answers_of(model) -> dict:
        return {
            side: model.predict(held[side][0].astype(np.float32), batch_size=512, verbose=0)
            for side in data
        }

    def log_of(answers: dict) -> dict:
        return {side: np.log(np.maximum(answers[side], 1e-30)) for side in data}

    head = head_model()
    head.compile(keras.optimizers.Adam(1e-3), SoftLabelAgeLoss())
    head.fit(frozen_train, labels, batch_size=128, epochs=30, verbose=0)
    del frozen_train
    inputs = keras.Input(LEVEL_INPUT)
    frozen = answers_of(keras.Model(inputs, head(level(inputs))))
    rows = [
        [f"{args.served} as shipped", "", "", "", "", "", *served(None)],
        ["frozen level, head 30 epochs", "", *alone(frozen), *served(log_of(frozen))],
    ]
    print(" | ".join(rows[0]), flush=True)
    print(" | ".join(rows[1]), f"({time.perf_counter() - started:.0f} s)", flush=True)
    for rate in rates:
        tuned_level, tuned_head = build_level(network), head_model()
        tuned_head.set_weights(head.get_weights())
        inputs = keras.Input(LEVEL_INPUT)
        whole = keras.Model(inputs, tuned_head(tuned_level(inputs)))
        whole.compile(keras.optimizers.Adam(rate), SoftLabelAgeLoss())
        for epoch in range(1, args.epochs + 1):
            epoch_started = time.perf_counter()
            whole.fit(x_train, labels, batch_size=128, epochs=1, verbose=0)
            seconds = time.perf_counter() - epoch_started
            answers = answers_of(whole)
            rows.append(
                [
                    f"fine-tuned, learning rate {rate:g}",
                    str(epoch),
                    *alone(answers),
                    *served(log_of(answers)),
                ]
            )
            print(" | ".join(rows[-1]), f"({seconds:.0f} s an epoch)", flush=True)
    headers = [
        "level", "epoch", "alone: FF val acc", "val LL", "UTK test MAE", "children",
        "served: mix", "FF val acc", "val LL", "FF test acc", "UTK test MAE", "children",
    ]  # fmt: skip
    print_table(headers, rows)
    print(f"{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
