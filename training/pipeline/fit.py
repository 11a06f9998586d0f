"""Fine-tuning the age network with Keras: the 101-class head, the loss, the input, the loop.

Everything here is plain Python + TensorFlow (no Django): the training task and the
``train`` management command pass callbacks in to report progress and to ask whether
the run was cancelled.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from predictor.vision.age_network import (
    LOGITS_LAYER,
    AgeNetwork,
    build_age_network,
    load_onnx_weights,
)
from predictor.vision.bundled_models import AGE_CLASS_AGES, CHIP_SIZE

NUM_CLASSES = 101  # ages 0..100 in whole years
CLASS_AGES = np.arange(NUM_CLASSES, dtype=np.float32)


@dataclass
class FitConfig:
    """Training parameters. Ages in years; ``learning_rate`` is the peak of the cosine schedule."""

    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 1e-3
    init: str = "bundled"  # or "scratch", or "active" (from start_model)
    start_model: str | None = None  # the .keras file an "active" start loads
    label_sigma: float = 2.0  # years: width of the soft label around the true age
    l1_weight: float = 0.1  # weight of |expected age - age| next to the cross-entropy
    weight_decay: float = 1e-4
    patience: int = 3  # epochs without a better validation MAE before stopping
    steps_per_epoch: int | None = None  # None: one pass over the training split
    seed: int = 0
    augment: bool = True
    # The share of training chips that augmentation also blurs: shrunk to a random 50-100% of
    # their side and enlarged back, so a network reading a large chip cannot lean on fine
    # texture that a soft or compressed photo lacks (0: never).
    low_resolution: float = 0.0
    # The share of training chips that augmentation also gives the look of a scanned old print
    # (:func:`scan_look`: black and white, sepia or faded colour; softened; grain; JPEG), so
    # that texture a scan adds is not read as age (0: never).
    scan_look: float = 0.0
    # Inside an age interval (an age group), the soft target follows the starting network's
    # own distribution ("teacher") or is flat ("flat").
    interval_prior: str = "teacher"
    # The teacher's .keras file, when it is not the start (None: the start). A teacher that
    # reads another chip size than the run's takes the split's "teacher_chips" (the same faces
    # cut at its size), or else the run's chips resized.
    teacher_model: str | None = None
    # Knowledge distillation: the weight of the teacher's whole distribution in every soft
    # target (0: the teacher only shapes the target inside an interval). The target is then
    # ``(1 - w) * label + w * teacher``, so a face also learns what the teacher says outside
    # its age group.
    distill_weight: float = 0.0


@dataclass
class FitHooks:
    """How the loop talks to its caller (all optional)."""

    on_progress: Callable[[dict], None] | None = None  # every ``report_every`` steps
    on_epoch: Callable[[dict], None] | None = None  # after each epoch, with its metrics
    should_stop: Callable[[], bool] | None = None  # polled with progress: cancel the run
    report_every: int = 20


@dataclass
class FitResult:
    network: AgeNetwork
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val_mae: float = math.inf
    stopped_early: bool = False
    cancelled: bool = False
    seconds: float = 0.0
    images_seen: int = 0


def head_101_from_81(weights: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Initialise the 101-class head (ages 0..100) from the bundled 81-class head.

    Class ``k`` copies the bundled class for age ``k`` (0 takes the 0.25-year class), so the
    network starts out predicting as the bundled one does. Ages 81..100, which the bundled
    network cannot express, copy the 80-year class with a bias 8 lower: they start nearly
    silent (e^-8 of the 80-year probability) and training raises them where the data says so.
    """
    bundled_ages = AGE_CLASS_AGES
    new_weights = np.zeros((weights.shape[0], NUM_CLASSES), dtype=np.float32)
    new_bias = np.zeros(NUM_CLASSES, dtype=np.float32)
    for age in range(NUM_CLASSES):
        source = int(np.argmin(np.abs(bundled_ages - min(age, 80))))
        new_weights[:, age] = weights[:, source]
        new_bias[age] = bias[source] - (8.0 if age > 80 else 0.0)
    return new_weights, new_bias


def build_training_model(
    init: str, start_model: str | None = None, chip_size: int | None = None
) -> keras.Model:
    """A 101-class age model: from the bundled dlib weights (``"bundled"``), random
    (``"scratch"``), or the ``.keras`` file ``start_model`` (``"active"``: the model being
    served, so a fine-tune builds on it rather than on the dlib network). ``chip_size``: the
    input's side in pixels (default: the start model's, 64 for the dlib network); the dlib
    weights fit any size, a start model's must be read at its own."""
    if init == "active":
        if not start_model:
            raise ValueError("init 'active' needs the start model's .keras file")
        model = keras.saving.load_model(start_model, compile=False)
        if int(model.output_shape[-1]) != NUM_CLASSES:
            raise ValueError(f"{start_model} has {model.output_shape[-1]} classes, not 101")
        if chip_size is not None and int(model.input_shape[1]) != chip_size:
            raise ValueError(
                f"{start_model} reads {model.input_shape[1]} px chips, not {chip_size}"
            )
        return model
    if init not in ("bundled", "scratch"):
        raise ValueError(f"init must be 'bundled', 'scratch' or 'active', not {init!r}")
    model = build_age_network(NUM_CLASSES, chip_size or CHIP_SIZE)
    if init == "bundled":
        bundled = build_age_network(len(AGE_CLASS_AGES))
        load_onnx_weights(bundled)
        for layer in bundled.layers:
            if layer.name == LOGITS_LAYER or not layer.weights:
                continue
            model.get_layer(layer.name).set_weights(layer.get_weights())
        weights, bias = bundled.get_layer(LOGITS_LAYER).get_weights()
        model.get_layer(LOGITS_LAYER).set_weights(list(head_101_from_81(weights, bias)))
    return model


def label_table(
    split: dict[str, np.ndarray],
    prior: np.ndarray | None = None,
    teacher: np.ndarray | None = None,
) -> np.ndarray:
    """The training labels of a split: ``(N, 2 + 101)`` float32 rows ``[low, high, prior]``,
    or ``(N, 2 + 2 * 101)`` rows ``[low, high, prior, teacher]`` with ``teacher``.

    A face's age is an interval ``[low, high]`` in whole years: an exact age has
    ``low == high`` (``split["ages"]``), an age group such as FairFace's ``20-29`` has
    ``split["age_low"]`` and ``split["age_high"]``. ``prior`` (``(N, 101)``, optional) shapes
    the soft target inside an interval, for example the starting network's own distribution
    (:func:`teacher_prior`); without it the target is flat across the interval. ``teacher``
    (``(N, 101)``, optional) is a teacher's whole distribution, mixed into the target by
    :class:`SoftLabelAgeLoss`'s ``distill_weight``.
    """
    ages = np.asarray(split["ages"], dtype=np.float32)
    low = np.asarray(split.get("age_low", ages), dtype=np.float32)
    high = np.asarray(split.get("age_high", ages), dtype=np.float32)
    if prior is None:
        prior = np.ones((len(ages), NUM_CLASSES), dtype=np.float32)
    # The prior only shapes intervals: an exact age keeps its Gaussian around the age.
    prior = np.where((low == high)[:, None], 1.0, prior).astype(np.float32)
    parts = [low[:, None], high[:, None], prior]
    if teacher is not None:
        if teacher.shape != (len(ages), NUM_CLASSES):
            raise ValueError(
                f"teacher: expected shape {(len(ages), NUM_CLASSES)}, got {teacher.shape}"
            )
        parts.append(np.asarray(teacher, dtype=np.float32))
    return np.concatenate(parts, axis=1)


def teacher_prior(model: keras.Model, chips: np.ndarray, floor: float = 0.02) -> np.ndarray:
    """The starting network's distributions over ages 0..100 (``(N, 101)``), each mixed with
    ``floor`` of a flat one so no age inside an interval is ruled out. Used as the soft target's
    shape inside an age group: the fine-tune then moves the network into the right group
    while keeping its finer ordering of ages within it."""
    from training.pipeline.calibration import split_probabilities

    size = int(model.input_shape[1])
    if chips.shape[1] != size:
        # A start read at its own size (the dlib network at 64 px for larger chips).
        chips = resize_chips(chips, size)
    probabilities = split_probabilities(AgeNetwork(model, CLASS_AGES), chips)
    return (1 - floor) * probabilities + floor / NUM_CLASSES


def resize_chips(chips: np.ndarray, size: int, batch: int = 1024) -> np.ndarray:
    """``(N, S, S, 3)`` uint8 chips resized to ``size`` (area-averaged when smaller)."""
    out = np.empty((len(chips), size, size, 3), np.uint8)
    for start in range(0, len(chips), batch):
        part = tf.image.resize(
            tf.constant(chips[start : start + batch]), (size, size), antialias=True
        )
        out[start : start + batch] = tf.cast(tf.round(tf.clip_by_value(part, 0, 255)), tf.uint8)
    return out


def _interval_parts(y_true):
    labels = tf.cast(y_true, tf.float32)
    return labels[:, 0:1], labels[:, 1:2], labels[:, 2 : 2 + NUM_CLASSES]


def _outside(values, low, high):
    """How far ``values`` lie outside ``[low, high]`` (0 inside), in years."""
    return tf.nn.relu(low - values) + tf.nn.relu(values - high)


@keras.saving.register_keras_serializable(package="faceage")
class SoftLabelAgeLoss(keras.losses.Loss):
    """Cross-entropy against a soft label for an age interval, plus L1 of the expected age
    outside the interval. ``y_true``: :func:`label_table` rows; ``y_pred``: (N, 101)
    probabilities.

    The soft label is the prior times 1 inside ``[low, high]`` and a Gaussian fall-off of
    ``sigma`` years outside it, normalised: for an exact age (``low == high``, flat prior) that
    is the Gaussian around the age, and the L1 term is ``|expected - age|``. For an interval, a
    prediction anywhere inside it costs no L1 at all.

    With ``distill_weight`` w > 0 and rows that carry a teacher's distribution (see
    :func:`label_table`), the cross-entropy's target is ``(1 - w) * soft + w * teacher``; rows
    without one (the validation split's) keep the soft label alone."""

    def __init__(
        self, sigma: float = 2.0, l1_weight: float = 0.1, distill_weight: float = 0.0, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.sigma = sigma
        self.l1_weight = l1_weight
        self.distill_weight = distill_weight

    def call(self, y_true, y_pred):
        low, high, prior = _interval_parts(y_true)
        probabilities = tf.cast(y_pred, tf.float32)
        class_ages = tf.constant(CLASS_AGES)[None, :]
        soft = prior * tf.exp(-0.5 * tf.square(_outside(class_ages, low, high) / self.sigma))
        soft = soft / tf.reduce_sum(soft, axis=1, keepdims=True)
        if self.distill_weight and y_true.shape[-1] == 2 + 2 * NUM_CLASSES:
            teacher = tf.cast(y_true, tf.float32)[:, 2 + NUM_CLASSES :]
            soft = (1.0 - self.distill_weight) * soft + self.distill_weight * teacher
        cross_entropy = -tf.reduce_sum(soft * tf.math.log(probabilities + 1e-7), axis=1)
        expected = tf.reduce_sum(probabilities * class_ages, axis=1, keepdims=True)
        return cross_entropy + self.l1_weight * _outside(expected, low, high)[:, 0]

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "sigma": self.sigma,
            "l1_weight": self.l1_weight,
            "distill_weight": self.distill_weight,
        }


@keras.saving.register_keras_serializable(package="faceage")
class ExpectedAgeMAE(keras.metrics.MeanMetricWrapper):
    """Mean absolute error, in years, of the distribution's expected age: its distance to the
    label's interval (for an exact age, ``|expected - age|``)."""

    def __init__(self, name: str = "mae", **kwargs) -> None:
        def error(y_true, y_pred):
            low, high, _ = _interval_parts(y_true)
            expected = tf.reduce_sum(
                tf.cast(y_pred, tf.float32) * CLASS_AGES[None, :], axis=1, keepdims=True
            )
            return _outside(expected, low, high)[:, 0]

        super().__init__(error, name=name, **kwargs)

    def get_config(self) -> dict:
        return {"name": self.name}


# ITU-R BT.601 luma, and the common sepia toning of it (per output channel).
_LUMA = tf.constant([0.299, 0.587, 0.114], tf.float32)
_SEPIA_TONE = tf.constant([1.351, 1.203, 0.937], tf.float32)


def scan_look(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """``image`` (S, S, 3) float32 in 0-255, as an old print that was scanned might show it:

    - its colour: black and white, sepia, or faded (30-100% of the saturation, 60-100% of the
      contrast around a lifted grey, a warm cast), one of the three with equal chance;
    - softened: shrunk to 40-100% of its side and enlarged back;
    - grain: Gaussian noise, sigma 0-12 grey levels, one draw per pixel, the same in R, G, B;
    - saved as a JPEG of quality 25-95.

    The strengths are drawn afresh for each chip; the same ``seed`` gives the same look."""
    size = int(image.shape[0])
    seeds = tf.random.experimental.stateless_split(seed, 8)

    def draw(i: int, low: float, high: float) -> tf.Tensor:
        return tf.random.stateless_uniform([], seeds[i], low, high)

    luma = tf.tensordot(image, _LUMA, axes=1)[..., None]
    kind = tf.random.stateless_uniform([], seeds[0], 0, 3, dtype=tf.int32)
    grey = tf.repeat(luma, 3, axis=-1)
    sepia = luma * _SEPIA_TONE
    faded = luma + draw(1, 0.3, 1.0) * (image - luma)
    contrast = draw(2, 0.6, 1.0)
    faded = contrast * faded + (1.0 - contrast) * 150.0
    faded = faded * tf.stack([draw(3, 1.0, 1.1), 1.0, draw(4, 0.8, 1.0)])
    image = tf.clip_by_value(tf.gather(tf.stack([grey, sepia, faded]), kind), 0.0, 255.0)
    side = tf.cast(tf.round(size * draw(5, 0.4, 1.0)), tf.int32)
    image = tf.image.resize(
        tf.image.resize(image, tf.stack([side, side]), antialias=True), (size, size)
    )
    # (The grain's strength and its noise share a seed, so the strength is tied to the first
    # noise value drawn; kept, since faceage-v4 was trained with exactly these draws.)
    noise = tf.random.stateless_normal([size, size, 1], seeds[6]) * draw(6, 0.0, 12.0)
    image = tf.clip_by_value(image + noise, 0.0, 255.0)
    compressed = tf.image.stateless_random_jpeg_quality(
        tf.cast(tf.round(image), tf.uint8), 25, 95, seeds[7]
    )
    return tf.reshape(tf.cast(compressed, tf.float32), (size, size, 3))


def augment(
    chip: tf.Tensor,
    label: tf.Tensor,
    seed: tf.Tensor,
    low_resolution: float = 0.0,
    scan: float = 0.0,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Mirror, shift by up to 3 px of a 64 px chip (scaled for other sizes), and jitter
    brightness/contrast: what alignment leaves variable between photos of one face. With
    ``low_resolution`` p, a share p of the chips is also shrunk to 50-100% of its side and
    enlarged back (a softer photo of the same face). With ``scan`` q, a share q of the chips
    is also given :func:`scan_look`. ``chip`` is (S, S, 3) uint8."""
    size = int(chip.shape[0])
    shift = max(1, round(3 * size / 64))
    image = tf.cast(chip, tf.float32)
    seeds = tf.random.experimental.stateless_split(seed, 4)
    image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    padded = tf.pad(image, [[shift, shift], [shift, shift], [0, 0]], mode="REFLECT")
    image = tf.image.stateless_random_crop(padded, (size, size, 3), seeds[1])
    image = tf.image.stateless_random_brightness(image, 20.0, seeds[2])
    image = tf.image.stateless_random_contrast(image, 0.8, 1.2, seeds[3])
    if low_resolution > 0:
        # Seeds of their own: the other draws stay those of a run without it.
        draw, scale_seed = tf.unstack(tf.random.experimental.stateless_split(seeds[3], 2))
        side = tf.cast(
            tf.round(size * tf.random.stateless_uniform([], scale_seed, 0.5, 1.0)), tf.int32
        )
        softer = tf.image.resize(
            tf.image.resize(image, tf.stack([side, side]), antialias=True), (size, size)
        )
        blur = tf.random.stateless_uniform([], draw) < low_resolution
        image = tf.where(blur, softer, image)
    image = tf.clip_by_value(image, 0.0, 255.0)
    if scan > 0:
        # Seeds of their own again, so the draws above stay those of a run without it.
        draw, look_seed = tf.unstack(tf.random.experimental.stateless_split(seeds[2], 2))
        image = tf.cond(
            tf.random.stateless_uniform([], draw) < scan,
            lambda: scan_look(image, look_seed),
            lambda: image,
        )
    return image, label


def make_input(
    chips: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    training: bool,
    seed: int,
    do_augment: bool,
    low_resolution: float = 0.0,
    scan: float = 0.0,
) -> tf.data.Dataset:
    """tf.data input: (N, 64, 64, 3) uint8 chips and :func:`label_table` rows -> float32
    batches."""
    data = tf.data.Dataset.from_tensor_slices((chips, labels.astype(np.float32)))
    if training:
        data = data.shuffle(len(chips), seed=seed, reshuffle_each_iteration=True).repeat()
        if do_augment:
            counter = tf.data.Dataset.counter(seed).map(
                lambda i: tf.stack([i, tf.cast(seed, tf.int64)])
            )
            data = tf.data.Dataset.zip((data, counter)).map(
                lambda pair, s: augment(pair[0], pair[1], s, low_resolution, scan),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        else:
            data = data.map(lambda c, a: (tf.cast(c, tf.float32), a))
    else:
        data = data.map(lambda c, a: (tf.cast(c, tf.float32), a))
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


class _Reporter(keras.callbacks.Callback):
    def __init__(self, hooks: FitHooks, steps_per_epoch: int, total_epochs: int, first_epoch: int):
        super().__init__()
        self.hooks = hooks
        self.steps_per_epoch = steps_per_epoch
        self.total_epochs = total_epochs
        self.first_epoch = first_epoch
        self.started = time.monotonic()
        self.epoch = first_epoch
        self.cancelled = False

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        step = batch + 1
        if step % self.hooks.report_every and step != self.steps_per_epoch:
            return
        done = (self.epoch - self.first_epoch) * self.steps_per_epoch + step
        remaining = (self.total_epochs - self.epoch) * self.steps_per_epoch - step
        elapsed = time.monotonic() - self.started
        if self.hooks.on_progress:
            self.hooks.on_progress(
                {
                    "epoch": self.epoch + 1,
                    "step": step,
                    "steps_per_epoch": self.steps_per_epoch,
                    "progress": (self.epoch * self.steps_per_epoch + step)
                    / (self.total_epochs * self.steps_per_epoch),
                    "eta_seconds": elapsed / done * remaining if done else None,
                    "loss": float((logs or {}).get("loss", float("nan"))),
                    "mae": float((logs or {}).get("mae", float("nan"))),
                }
            )
        if self.hooks.should_stop and self.hooks.should_stop():
            self.cancelled = True
            self.model.stop_training = True


def _configure_device() -> None:
    """On a GPU: mixed precision and XLA. On a CPU (the normal case here): neither."""
    if tf.config.list_physical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
        tf.config.optimizer.set_jit(True)


def _shapes_intervals(split: dict[str, np.ndarray], config: FitConfig) -> bool:
    """Whether the teacher shapes the soft targets inside age intervals: only where the split
    has intervals, and not from a random start (it knows nothing)."""
    if config.interval_prior != "teacher" or config.init == "scratch" or "age_low" not in split:
        return False
    return bool(np.any(split["age_low"] != split["age_high"]))


def _teacher(split: dict[str, np.ndarray], config: FitConfig) -> np.ndarray | None:
    """The teacher's distributions over the split's faces, where the run needs them (None
    where it does not): computed afresh from the teacher, so a resumed run gets the same
    targets."""
    if not (_shapes_intervals(split, config) or config.distill_weight > 0):
        return None
    if config.init == "scratch" and not config.teacher_model:
        raise ValueError("distillation from a random start needs a teacher_model")
    # The teacher as it was trained: the dlib network at 64 px, a model at its own size.
    if config.teacher_model:
        teacher = keras.saving.load_model(config.teacher_model, compile=False)
    else:
        teacher = build_training_model(config.init, config.start_model)
    chips = split.get("teacher_chips")
    if chips is None or chips.shape[1] != teacher.input_shape[1]:
        chips = split["chips"]
    return teacher_prior(teacher, chips)


def fit(
    train: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    config: FitConfig,
    checkpoint_dir: Path,
    hooks: FitHooks | None = None,
) -> FitResult:
    """Train (or resume) a 101-class age model.

    ``train``/``val`` hold ``chips`` (N, 64, 64, 3) uint8 and ``ages`` (N,) years, and for
    age groups ``age_low`` and ``age_high`` (N,) years (see :func:`label_table`).
    ``checkpoint_dir`` receives ``last.keras`` (model + optimizer) and ``state.json`` after
    every epoch, and ``best.keras`` whenever the validation MAE improves; a later call with
    the same folder resumes after the last finished epoch.
    """
    hooks = hooks or FitHooks()
    _configure_device()
    keras.utils.set_random_seed(config.seed)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    state_file = checkpoint_dir / "state.json"
    last, best = checkpoint_dir / "last.keras", checkpoint_dir / "best.keras"
    steps = config.steps_per_epoch or max(1, len(train["chips"]) // config.batch_size)

    state = json.loads(state_file.read_text()) if state_file.exists() and last.exists() else None
    if state is not None:
        model = keras.saving.load_model(last)  # optimizer and schedule position included
        if int(model.input_shape[1]) != int(train["chips"].shape[1]):
            raise ValueError(
                f"the checkpoint in {checkpoint_dir} reads {model.input_shape[1]} px chips, "
                f"the training split has {train['chips'].shape[1]} px chips"
            )
    else:
        model = build_training_model(config.init, config.start_model, int(train["chips"].shape[1]))
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0,
            decay_steps=max(1, config.epochs * steps - min(steps, 100)),
            warmup_target=config.learning_rate,
            warmup_steps=min(steps, 100),
            alpha=0.02,
        )
        model.compile(
            optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
            loss=SoftLabelAgeLoss(config.label_sigma, config.l1_weight, config.distill_weight),
            metrics=[ExpectedAgeMAE()],
        )
        state = {"epoch": 0, "history": [], "best_val_mae": None, "best_epoch": 0, "wait": 0}

    result = FitResult(
        network=AgeNetwork(model, CLASS_AGES),
        history=list(state["history"]),
        best_epoch=state["best_epoch"],
        best_val_mae=state["best_val_mae"] if state["best_val_mae"] is not None else math.inf,
    )
    teacher = _teacher(train, config)
    train_labels = label_table(
        train,
        teacher if _shapes_intervals(train, config) else None,
        teacher if config.distill_weight > 0 else None,
    )
    train_input = make_input(
        train["chips"],
        train_labels,
        config.batch_size,
        True,
        config.seed,
        config.augment,
        config.low_resolution,
        config.scan_look,
    )
    val_input = make_input(val["chips"], label_table(val), 256, False, config.seed, False)
    reporter = _Reporter(hooks, steps, config.epochs, state["epoch"])
    started = time.monotonic()

    for epoch in range(state["epoch"], config.epochs):
        logs = model.fit(
            train_input,
            epochs=epoch + 1,
            initial_epoch=epoch,
            steps_per_epoch=steps,
            callbacks=[reporter],
            shuffle=False,  # the tf.data input shuffles itself
            verbose=0,
        ).history
        result.images_seen += steps * config.batch_size
        if reporter.cancelled:
            result.cancelled = True
            break
        val_loss, val_mae = model.evaluate(val_input, verbose=0)
        metrics = {
            "epoch": epoch + 1,
            "loss": float(logs["loss"][-1]),
            "mae": float(logs["mae"][-1]),
            "val_loss": float(val_loss),
            "val_mae": float(val_mae),
            "learning_rate": float(model.optimizer.learning_rate),
        }
        result.history.append(metrics)
        if val_mae < result.best_val_mae:
            result.best_val_mae, result.best_epoch, state["wait"] = float(val_mae), epoch + 1, 0
            model.save(best)
        else:
            state["wait"] += 1
        model.save(last)
        state.update(
            epoch=epoch + 1,
            history=result.history,
            best_val_mae=result.best_val_mae,
            best_epoch=result.best_epoch,
        )
        state_file.write_text(
            json.dumps(state)
        )  # after the model: a crash in between reruns the epoch
        if hooks.on_epoch:
            hooks.on_epoch(metrics)
        if state["wait"] >= config.patience:
            result.stopped_early = True
            break

    result.seconds = time.monotonic() - started
    if best.exists():
        result.network = AgeNetwork(keras.saving.load_model(best, compile=False), CLASS_AGES)
    return result


def soup(networks: Sequence[AgeNetwork], shares: Sequence[float] | None = None) -> AgeNetwork:
    """One network whose every weight is the mean of ``networks``' (a "model soup",
    Wortsman et al., ICML 2022), or their sum weighted by ``shares``. It serves at one
    network's cost; it only makes sense for networks fine-tuned from one start, which share a
    basin of the loss. The networks must have the same layers and shapes; the first one's
    class ages are kept."""
    if not networks:
        raise ValueError("a soup needs at least one network")
    if shares is None:
        shares = [1 / len(networks)] * len(networks)
    if len(shares) != len(networks):
        raise ValueError(f"{len(shares)} shares for {len(networks)} networks")
    first = networks[0].model
    layers = [(layer.name, [w.shape for w in layer.get_weights()]) for layer in first.layers]
    weights = [network.model.get_weights() for network in networks]
    for network in networks[1:]:
        other = [
            (layer.name, [w.shape for w in layer.get_weights()]) for layer in network.model.layers
        ]
        if other != layers or network.model.input_shape != first.input_shape:
            raise ValueError("a soup's networks must share one architecture, layer by layer")
    model = keras.models.clone_model(first)
    model.set_weights(
        [
            np.tensordot(np.asarray(shares, np.float32), np.stack(arrays), axes=1)
            for arrays in zip(*weights, strict=True)
        ]
    )
    return AgeNetwork(model, networks[0].class_ages)


def describe(config: FitConfig) -> dict:
    return asdict(config)
